// FileStore on a real disk: round trip, the record, atomic writes, integrity misses, keys/remove, and (through the
// engine and the fake) that a broken entry is replaced and that placeholders are never cached.
import fs, { watch } from 'node:fs'
import { mkdir, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { FileStore } from '../src/core/store'
import { ImageError } from '../src/core/errors'
import { CACHE_VERSION, cacheKey, sha256 } from '../src/core/key'
import type { CacheRecord, ImageSettings } from '../src/core/types'
import { makeJpeg, makePng, startFakeTogether, type FakeTogether } from './fake-together.mjs'
import { cachedKeys, fakeOptions, relFilesUnder, removeDir, runEngine, scene, tempDir, turnsDuring, writeScripts } from './core-helpers'

let dir: string
let cache: FileStore
beforeEach(async () => {
  dir = await tempDir('cache')
  cache = new FileStore(join(dir, '.flux-cache'))
})
afterEach(async () => removeDir(dir))

const SETTINGS: ImageSettings = { provider: 'together', model: 'black-forest-labs/FLUX.1-schnell', width: 64, height: 64, steps: 4, outputFormat: 'jpeg' }
const keyOf = (prompt: string) => cacheKey(prompt, SETTINGS)
const put = (prompt: string, bytes: Buffer = makeJpeg(prompt, 2048, 64, 64), responseId: string | undefined = 'resp-1') =>
  cache.put(keyOf(prompt), bytes, { prompt, settings: SETTINGS, responseId })
const readRecord = async (key: string): Promise<CacheRecord> => JSON.parse(await readFile(cache.recordPath(key), 'utf8'))

describe('put / get / read', () => {
  it('writes the image and the record under a temp name and renames them into place: a final name is never written to', async () => {
    // inotify tells a rename into the folder ('rename') from bytes written to a file there ('change'). Events come
    // in order: once the marker written after put() is seen, every event of put() has been seen too.
    const key = keyOf('watched write')
    const shard = join(cache.root, key.slice(0, 2))
    await mkdir(shard, { recursive: true })
    const events: Array<[string, string]> = []
    const watcher = watch(shard, (event, name) => events.push([event, String(name)]))
    try {
      await put('watched write', makeJpeg('watched write', 256 * 1024, 64, 64))
      await writeFile(join(shard, 'marker'), 'x')
      for (let i = 0; i < 500 && !events.some(([, name]) => name === 'marker'); i++) await new Promise(r => setTimeout(r, 10))
    } finally {
      watcher.close()
    }
    const entry = events.filter(([, name]) => name.startsWith(key))
    // Both files of the entry arrived, each by exactly one rename and no write.
    expect(new Set(entry.map(([, name]) => name)).size).toBe(2)
    expect(entry.every(([event]) => event === 'rename')).toBe(true)
  })

  it('round trips: what was put is what get finds and read returns', async () => {
    const bytes = makeJpeg('a lighthouse', 4096, 64, 64)
    const key = keyOf('a lighthouse')
    const written = await put('a lighthouse', bytes)
    const hit = await cache.get(key)
    expect(hit).toEqual(written)
    expect(await cache.read(hit!)).toEqual(bytes)
    expect(await readFile(hit!.file)).toEqual(bytes)
  })

  it('lays out v1/ab/<key>.json and v1/ab/<key>-<sha16>.<ext from the bytes>', async () => {
    const jpeg = makeJpeg('one', 0, 64, 64)
    const png = makePng(64, 64, 'two')
    const a = await put('one', jpeg)
    const b = await put('two', png)
    const [ka, kb] = [keyOf('one'), keyOf('two')]
    expect(a.file).toBe(join(cache.root, ka.slice(0, 2), `${ka}-${sha256(jpeg).slice(0, 16)}.jpg`))
    expect(b.file).toBe(join(cache.root, kb.slice(0, 2), `${kb}-${sha256(png).slice(0, 16)}.png`))
    expect(cache.root).toBe(join(dir, '.flux-cache', `v${CACHE_VERSION}`))
    expect((await relFilesUnder(cache.root)).sort()).toEqual(
      [`${ka.slice(0, 2)}/${ka}.json`, `${ka.slice(0, 2)}/${ka}-${sha256(jpeg).slice(0, 16)}.jpg`, `${kb.slice(0, 2)}/${kb}.json`, `${kb.slice(0, 2)}/${kb}-${sha256(png).slice(0, 16)}.png`].sort(),
    )
  })

  it('records the prompt, settings, sha256, byte size, the size read from the image, response id and creation time', async () => {
    const bytes = makeJpeg('record me', 3000, 96, 64)
    const before = Date.now()
    await put('record me', bytes, 'fake-123')
    const record = await readRecord(keyOf('record me'))
    expect(record).toStrictEqual({
      version: CACHE_VERSION,
      key: keyOf('record me'),
      prompt: 'record me',
      settings: SETTINGS,
      ext: 'jpg',
      size: bytes.length,
      sha256: sha256(bytes),
      // From the JPEG's SOF header: what was received, whatever the settings asked for (64×64).
      width: 96,
      height: 64,
      mtimeMs: expect.any(Number),
      responseId: 'fake-123',
      createdAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
    })
    expect(Date.parse(record.createdAt)).toBeGreaterThanOrEqual(before - 1000)
    expect(Date.parse(record.createdAt)).toBeLessThanOrEqual(Date.now() + 1000)
    // No response id: the field is absent, not null.
    await cache.put(keyOf('no id'), makeJpeg('no id', 0, 64, 64), { prompt: 'no id', settings: SETTINGS })
    expect(await readRecord(keyOf('no id'))).not.toHaveProperty('responseId')
  })

  it('refuses bytes that are not a whole image and writes nothing', async () => {
    await expect(put('junk', Buffer.from('<html>oops</html>'))).rejects.toBeInstanceOf(ImageError)
    const truncated = makePng(64, 64, 'cut').subarray(0, 60)
    await expect(put('cut', truncated)).rejects.toThrow(/^PNG: truncated/)
    expect(await relFilesUnder(cache.root)).toEqual([])
    expect(await cache.get(keyOf('junk'))).toBeUndefined()
  })

  it('leaves no temp files behind, after many writes at once', async () => {
    await Promise.all(Array.from({ length: 12 }, (_, i) => put(`prompt ${i}`)))
    // Same key written twice at once: one complete entry, still no debris.
    await Promise.all([put('twice'), put('twice')])
    const files = await relFilesUnder(cache.root)
    expect(files.filter(f => f.startsWith('tmp/') || f.endsWith('.tmp'))).toEqual([])
    expect(files).toHaveLength(13 * 2)
    for (let i = 0; i < 12; i++) expect(await cache.get(keyOf(`prompt ${i}`))).toBeDefined()
    expect(await cache.get(keyOf('twice'))).toBeDefined()
  })

  it('checks many entries in batches and lets the event loop run between them (a plan asks for 20,000 at once)', async () => {
    const prompts = Array.from({ length: 30 }, (_, i) => `batch ${i}`)
    for (const p of prompts) await put(p)
    const { result: hits, marks, turns } = await turnsDuring(mark => Promise.all(prompts.map(p => cache.get(keyOf(p)).then(hit => (mark(), hit)))))
    expect(hits.every(h => h !== undefined)).toBe(true)
    expect(marks).toBe(30)
    expect(turns).toBeGreaterThanOrEqual(3)
  })

  it('a build\'s sync reads (read(hit, into, true)) check the bytes as read() does and let the event loop run every few ms', async () => {
    const prompts = Array.from({ length: 30 }, (_, i) => `now ${i}`)
    for (const p of prompts) await put(p)
    const hits = await Promise.all(prompts.map(p => cache.get(keyOf(p))))
    const { result: read, turns } = await turnsDuring(mark => Promise.all(hits.map(hit => cache.read(hit!, undefined, true).then(bytes => (mark(), bytes)))))
    expect(read.map((bytes, i) => bytes && sha256(bytes) === hits[i]!.record.sha256)).toEqual(prompts.map(() => true))
    expect(turns).toBeGreaterThanOrEqual(3)
    // Damaged behind a trusted size: refused and dropped, as read() does.
    const damaged = hits[0]!
    const bytes = await readFile(damaged.file)
    bytes[bytes.length - 3] ^= 0xff
    await writeFile(damaged.file, bytes)
    expect(await cache.read(damaged, undefined, true)).toBeUndefined()
    expect(await cache.get(damaged.record.key)).toBeUndefined()
  })

  it('a record the sync read cannot open (EMFILE, EACCES) is looked up again the async way, not taken for a miss (a miss is paid for)', async () => {
    await put('busy')
    const real = fs.readFileSync
    const spy = vi.spyOn(fs, 'readFileSync').mockImplementation(((path: unknown, ...rest: unknown[]) => {
      if (String(path).endsWith('.json')) throw Object.assign(new Error('EMFILE: too many open files'), { code: 'EMFILE' })
      return (real as (...args: unknown[]) => unknown)(path, ...rest)
    }) as typeof fs.readFileSync)
    try {
      expect((await cache.get(keyOf('busy')))?.record.prompt).toBe('busy')
      expect(spy).toHaveBeenCalled()
    } finally {
      spy.mockRestore()
    }
  })

  it('a key that is not 64 hex characters is never looked up on disk', async () => {
    await put('x')
    expect(await cache.get('../../etc/passwd')).toBeUndefined()
    expect(await cache.get(keyOf('x').toUpperCase())).toBeUndefined()
    expect(await cache.get(keyOf('x').slice(0, 63))).toBeUndefined()
  })
})

describe('integrity', () => {
  it('a size mismatch is a miss, and the broken entry is removed', async () => {
    const { file } = await put('shrunk')
    const key = keyOf('shrunk')
    await writeFile(file, (await readFile(file)).subarray(0, 100))
    expect(await cache.get(key)).toBeUndefined()
    expect(await relFilesUnder(cache.root)).toEqual([])
  })

  it('a sha256 mismatch of the same size (mtime changed) is a miss, and the entry is removed', async () => {
    const { file, record } = await put('flipped')
    const bytes = await readFile(file)
    bytes[Math.floor(bytes.length / 2)]! ^= 0xff
    await writeFile(file, bytes)
    await utimes(file, new Date(), new Date(record.mtimeMs + 60_000))
    expect(await cache.get(keyOf('flipped'))).toBeUndefined()
    expect(await relFilesUnder(cache.root)).toEqual([])
  })

  it('a missing image file, or an unreadable record, is a miss', async () => {
    const { file } = await put('gone')
    await writeFile(file + '.bak', '') // unrelated debris does not make it a hit
    await rm(file)
    expect(await cache.get(keyOf('gone'))).toBeUndefined()

    await put('garbled')
    await writeFile(cache.recordPath(keyOf('garbled')), '{ not json')
    expect(await cache.get(keyOf('garbled'))).toBeUndefined()

    const { record } = await put('wrong key inside')
    await writeFile(cache.recordPath(keyOf('wrong key inside')), JSON.stringify({ ...record, key: keyOf('another') }))
    expect(await cache.get(keyOf('wrong key inside'))).toBeUndefined()
  })

  it('a verified re-hash restores the recorded mtime, so the next get trusts it without hashing', async () => {
    const { file, record } = await put('touched')
    const good = await readFile(file)
    const altered = Buffer.from(good)
    altered[altered.length >> 1]! ^= 0x01
    // Many times: the restore must land where the next get trusts it every time (through a Date it often did not).
    for (let i = 0; i < 40; i++) {
      await utimes(file, new Date(), new Date(record.mtimeMs + 60_000 + i)) // e.g. a git checkout
      expect(await cache.get(keyOf('touched'))).toBeDefined() // re-hashed, verified, mtime restored
      const restored = (await stat(file)).mtimeMs
      expect(Math.abs(restored - record.mtimeMs)).toBeLessThan(1)
      // Trusted now: same size and the restored mtime pass without a hash (read() is what re-verifies).
      await writeFile(file, altered)
      await utimes(file, new Date(), restored / 1000)
      expect(await cache.get(keyOf('touched')), `iteration ${i}`).toBeDefined()
      await writeFile(file, good)
    }
  })

  it('read() re-verifies the bytes: altered bytes with the recorded size and mtime are refused and dropped', async () => {
    const { file, record } = await put('sneaky')
    const hit = (await cache.get(keyOf('sneaky')))!
    const bytes = await readFile(file)
    bytes[bytes.length >> 1]! ^= 0x01
    await writeFile(file, bytes)
    await utimes(file, new Date(), record.mtimeMs / 1000) // seconds: as precise as utimes gets
    expect(await cache.get(keyOf('sneaky'))).toBeDefined() // stat alone cannot tell
    expect(await cache.read(hit)).toBeUndefined()
    expect(await cache.get(keyOf('sneaky'))).toBeUndefined()
  })

  it('the engine replaces a broken entry with a fresh image (one request) and never uses the broken one', async () => {
    const fake: FakeTogether = await startFakeTogether()
    try {
      await writeScripts(dir, { 'a.script.json': scene({ hero: 'heal me', other: 'stays intact' }) })
      const first = await runEngine(dir, fakeOptions(fake))
      const hero = first.assets.find(a => a.id === 'hero')!
      const good = await readFile(hero.file!)
      await writeFile(hero.file!, good.subarray(0, good.length - 10))
      fake.reset()

      const second = await runEngine(dir, fakeOptions(fake))
      expect(fake.stats.generations).toBe(1)
      expect(generationPrompts(fake)).toEqual(['heal me'])
      expect(second.summary).toMatchObject({ generated: 1, cached: 1, placeholders: 0 })
      const healed = second.assets.find(a => a.id === 'hero')!
      const bytes = await readFile(healed.file!)
      expect(sha256(bytes)).toBe((await readRecord(healed.key)).sha256)
      expect(bytes.length).toBe(good.length)
    } finally {
      await fake.close()
    }
  })
})

describe('keys / remove', () => {
  it('keys() lists every recorded key, sorted; other files are ignored', async () => {
    expect(await cache.keys()).toEqual([])
    await put('k1')
    await put('k2')
    await put('k3')
    await writeFile(join(cache.root, 'README.txt'), 'not a key')
    await writeFile(join(cache.root, keyOf('k1').slice(0, 2), 'notes.json'), '{}')
    expect(await cache.keys()).toEqual([keyOf('k1'), keyOf('k2'), keyOf('k3')].sort())
  })

  it('remove() deletes one key: its record and every image of that key, nothing else', async () => {
    await put('keep')
    await put('drop', makeJpeg('drop v1', 0, 64, 64))
    // An older image of the same key left beside the current one.
    const stale = join(cache.root, keyOf('drop').slice(0, 2), `${keyOf('drop')}-0000000000000000.jpg`)
    await writeFile(stale, makeJpeg('drop v0', 0, 64, 64))
    await cache.remove(keyOf('drop'))
    expect(await cache.keys()).toEqual([keyOf('keep')])
    expect((await relFilesUnder(cache.root)).filter(f => f.includes(keyOf('drop')))).toEqual([])
    expect(await cache.get(keyOf('keep'))).toBeDefined()
    // Not a key: nothing happens.
    await cache.remove('..')
    expect(await cache.keys()).toEqual([keyOf('keep')])
  })
})

describe('KeyLock.sweep', () => {
  it('removes the lock of a dead process, keeps a live one, and skips a lock another process has created but not yet written', async () => {
    const locks = join(dir, '.flux-cache', `v${CACHE_VERSION}`, 'locks')
    await mkdir(locks, { recursive: true })
    const host = hostname()
    const [dead, live, empty] = ['a', 'b', 'c'].map(c => `${c.repeat(64)}.lock`)
    await writeFile(join(locks, dead!), JSON.stringify({ pid: 2 ** 22 + 1, host, at: Date.now() }))
    await writeFile(join(locks, live!), JSON.stringify({ pid: process.pid, host, at: Date.now() }))
    await writeFile(join(locks, empty!), '')
    // Not a name KeyLock makes: never its to remove, even with a dead holder's content.
    await writeFile(join(locks, 'notes.txt'), JSON.stringify({ pid: 2 ** 22 + 1, host }))
    await expect(cache.locks.sweep()).resolves.toBe(1)
    expect((await readdir(locks)).sort()).toEqual([live, empty, 'notes.txt'].sort())
  })
})

describe('placeholders are never cached', () => {
  let fake: FakeTogether
  beforeEach(async () => {
    fake = await startFakeTogether()
  })
  afterEach(async () => fake.close())

  it('no key, offline and failed assets leave the cache without any entry', async () => {
    await writeScripts(dir, { 'a.script.json': scene({ a: 'first placeholder', b: 'second placeholder' }) })
    const cacheDir = join(dir, '.flux-cache')
    const noKey = await runEngine(dir, { baseURL: fake.baseURL })
    const offline = await runEngine(dir, fakeOptions(fake, { offline: true }))
    fake.set({ faults: { status500: 1 } })
    const failed = await runEngine(dir, fakeOptions(fake, { retries: 0 }))
    for (const run of [noKey, offline, failed]) expect(run.summary).toMatchObject({ placeholders: 2, generated: 0 })
    expect(await cachedKeys(cacheDir)).toEqual([])
    expect((await relFilesUnder(cacheDir)).filter(f => !f.startsWith('v1/locks/'))).toEqual([])
    // A later run with a working API still generates both: nothing remembered the placeholders.
    fake.set({ faults: {} })
    fake.reset()
    const real = await runEngine(dir, fakeOptions(fake))
    expect(real.summary).toMatchObject({ generated: 2, placeholders: 0 })
    expect(fake.stats.generations).toBe(2)
  })
})

function generationPrompts(fake: FakeTogether): unknown[] {
  return fake.log.filter(e => e.method === 'POST').map(e => (e.body as { prompt: string }).prompt)
}
