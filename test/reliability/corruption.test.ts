// Issue 4, point 3: a cached image truncated or altered on disk is detected through its recorded size / sha256,
// regenerated once, and never emitted by a build. Issue 11, point 5: even behind a trusted mtime, never a failed build.
import { readFile, utimes, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { FileStore } from '../../src/core/store'
import { sha256 } from '../../src/core/key'
import type { CacheRecord } from '../../src/core/types'
import { startFakeTogether, type FakeTogether } from '../fake-together.mjs'
import {
  assertCacheConsistent,
  expectedKeys,
  fakeEnv,
  listFiles,
  makeTemp,
  readManifest,
  recordingLogger,
  removeTemp,
  runCli,
  SENTINEL,
  SIZE,
  scriptWith,
  runViteBundle,
  validImages,
  viteBuild,
  writeApp,
  writeScripts,
} from './helpers'

let fake: FakeTogether
let root: string | undefined
afterEach(async () => {
  await fake?.close()
  await removeTemp(root)
  root = undefined
})

async function setUp(name: string) {
  fake = await startFakeTogether({ imageBytes: 4096 })
  root = await makeTemp(name)
  await writeScripts(root, { 'a.script.json': scriptWith(3, name) })
  await writeApp(root, ['a.script.json'])
  const cacheDir = join(root, '.flux-cache')
  return { cacheDir, cache: new FileStore(cacheDir), keys: await expectedKeys(root) }
}

async function recordOf(cache: FileStore, key: string): Promise<CacheRecord> {
  return JSON.parse(await readFile(cache.recordPath(key), 'utf8'))
}

/** Cuts the image to half its size. Returns the bad bytes' sha256. */
async function truncate(cache: FileStore, key: string): Promise<string> {
  const file = cache.imagePath(await recordOf(cache, key))
  const bad = (await readFile(file)).subarray(0, 1000)
  await writeFile(file, bad)
  return sha256(bad)
}

/** Flips bytes in the middle, same size; the mtime is set to `mtimeMs` (default: a minute after the recorded one). */
async function flip(cache: FileStore, key: string, mtimeMs?: number): Promise<string> {
  const record = await recordOf(cache, key)
  const file = cache.imagePath(record)
  const bytes = await readFile(file)
  for (let i = 200; i < 260; i++) bytes[i]! ^= 0xff
  await writeFile(file, bytes)
  const when = new Date(mtimeMs ?? record.mtimeMs + 60_000)
  await utimes(file, when, when)
  expect(bytes.length).toBe(record.size)
  return sha256(bytes)
}

/** sha256 of every file a build wrote. */
async function shipped(outDir: string): Promise<Map<string, string>> {
  return new Map(await Promise.all(listFiles(outDir).map(async f => [f, sha256(await readFile(join(outDir, f)))] as const)))
}

const pluginOptions = () => ({ apiKey: SENTINEL, baseURL: fake.baseURL })

describe('corruption', () => {
  it('CLI: a truncated image and a same-size altered one are each regenerated exactly once', async () => {
    const { cacheDir, cache, keys } = await setUp('corrupt-cli')
    const cli = () => runCli(['generate', ...SIZE, '--json'], { cwd: root!, env: fakeEnv(fake.baseURL) })
    expect((await cli()).code).toBe(0)
    expect(fake.stats.generations).toBe(3)

    await truncate(cache, keys[0]!)
    await flip(cache, keys[1]!)
    const run = await cli()
    expect(run.code, run.stderr).toBe(0)
    expect(JSON.parse(run.stdout).summary).toMatchObject({ generated: 2, cached: 1 })
    expect(fake.stats.generations).toBe(5)
    expect(await validImages(cacheDir, keys)).toBe(3)
    expect(await assertCacheConsistent(cacheDir)).toEqual(keys)

    // Once: the repaired entries are trusted again.
    expect((await cli()).code).toBe(0)
    expect(fake.stats.generations).toBe(5)
  })

  it('vite build: corrupted entries are regenerated once and the bundle only ships the recorded bytes', async () => {
    const { cacheDir, cache, keys } = await setUp('corrupt-vite')
    await viteBuild(root!, pluginOptions())
    expect(fake.stats.generations).toBe(3)

    const bad = [await truncate(cache, keys[0]!), await flip(cache, keys[1]!)]
    const outDir = await viteBuild(root!, pluginOptions())
    expect(fake.stats.generations).toBe(5)
    expect(await assertCacheConsistent(cacheDir)).toEqual(keys)

    const files = await shipped(outDir)
    for (const sha of bad) expect([...files.values()]).not.toContain(sha)
    const entries = await readManifest(outDir)
    expect(entries).toHaveLength(3)
    for (const entry of entries) {
      expect(entry.placeholder).toBe(false)
      expect(files.get(entry.file)).toBe((await recordOf(cache, entry.key)).sha256)
    }
  })

  // #11, item 5: with size and mtime unchanged, stat trusts the entry; only the hash at emit time can tell. The build
  // used to fail ("cached image changed on disk... run the build again"); it now makes the image again.
  it('vite build: bytes altered with the recorded size and mtime restored are regenerated, never shipped, never a failed build', async () => {
    const { cacheDir, cache, keys } = await setUp('corrupt-mtime')
    await viteBuild(root!, pluginOptions())
    const bad = await flip(cache, keys[2]!, (await recordOf(cache, keys[2]!)).mtimeMs)
    const logger = recordingLogger()

    const outDir = await viteBuild(root!, { ...pluginOptions(), logger })
    expect(fake.stats.generations).toBe(4)
    for (const sha of (await shipped(outDir)).values()) expect(sha).not.toBe(bad)
    const entry = (await readManifest(outDir)).find(e => e.key === keys[2])!
    expect(entry.placeholder).toBe(false)
    expect((await shipped(outDir)).get(entry.file)).toBe((await recordOf(cache, keys[2]!)).sha256)
    expect(logger.lines.join('\n')).toMatch(/a2: the cached image is damaged on disk .*: making it again/)
    expect(await assertCacheConsistent(cacheDir)).toEqual(keys)
  })

  it('vite build, offline: a damaged trusted entry becomes a placeholder with a warning, and the build succeeds', async () => {
    const { cache, keys } = await setUp('corrupt-offline')
    await viteBuild(root!, pluginOptions())
    const bad = await flip(cache, keys[0]!, (await recordOf(cache, keys[0]!)).mtimeMs)
    const logger = recordingLogger()

    const outDir = await viteBuild(root!, { ...pluginOptions(), offline: true, logger })
    expect(fake.stats.generations).toBe(3)
    for (const sha of (await shipped(outDir)).values()) expect(sha).not.toBe(bad)
    const entry = (await readManifest(outDir)).find(e => e.key === keys[0])!
    expect(entry.placeholder).toBe(true)
    expect(entry.file).toMatch(/\.svg$/)
    // The ?flux module agrees with the manifest: the same placeholder.
    const bundle = runViteBundle(outDir, `app.scripts[0].visual_track[0].assets[${JSON.stringify(entry.id)}]`) as { placeholder: boolean; url: string }
    expect(bundle.placeholder).toBe(true)
    expect(bundle.url).toMatch(/\.svg$/)
    expect(logger.lines.join('\n')).toMatch(/damaged on disk/)
    expect(logger.lines.join('\n')).toMatch(/offline mode is on: using placeholders/)
  })

  it('flux-assets verify re-hashes every entry, reports the damaged ones and removes them; exit 1, then 0', async () => {
    const { cacheDir, cache, keys } = await setUp('corrupt-verify')
    expect((await runCli(['generate', ...SIZE], { cwd: root!, env: fakeEnv(fake.baseURL) })).code).toBe(0)
    await flip(cache, keys[1]!, (await recordOf(cache, keys[1]!)).mtimeMs)
    // generate and status trust it (size and mtime are right): only verify reads every byte.
    const status = await runCli(['status', ...SIZE, '--json'], { cwd: root!, env: fakeEnv(fake.baseURL) })
    expect(JSON.parse(status.stdout)).toMatchObject({ cached: 3, missing: 0 })

    const run = await runCli(['verify'], { cwd: root!, env: fakeEnv(fake.baseURL) })
    expect(run.code, run.stderr).toBe(1)
    expect(run.stdout).toContain(`damaged  ${keys[1]!.slice(0, 12)}  "corrupt-verify prompt number`)
    expect(run.stdout).toMatch(/the image bytes do not match their sha256 \(removed\)\n3 entries and 6 variants checked · 1 damaged and removed/)
    expect(await validImages(cacheDir, keys)).toBe(2)
    const again = await runCli(['verify', '--json'], { cwd: root!, env: fakeEnv(fake.baseURL) })
    expect(again.code).toBe(0)
    // generate made each image's WebP and blur; the damaged source's stay until recover() finds their source gone.
    expect(JSON.parse(again.stdout)).toEqual({ checked: 2, variants: 6, damaged: [] })
    expect(fake.stats.generations).toBe(3)
  })
})
