// Issue 11, points 3, 4, 7 and 12: hostile caches and disks. A full or read-only disk stops the buying at once and
// fails the run; a read-only cache with a damaged entry is read as a miss; orphan images are cleaned up; a symbolic
// link in the cache is refused and never followed. Disks are faked in the child (fs-faults.mjs): tests run as root.
import { copyFile, mkdir, readFile, stat, symlink, utimes, writeFile } from 'node:fs/promises'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { removeDeadTemp } from '../../src/core/cache-fs'
import { sha256 } from '../../src/core/key'
import { KeyLock } from '../../src/core/lock'
import { startFakeTogether, type FakeTogether } from '../fake-together.mjs'
import { cacheRoot, deadPid, exists, expectedKeys, fakeEnv, listFiles, makeTemp, recordFiles, removeTemp, runCli, SIZE, scriptWith, STACK_LINE, validImages, writeScripts } from './helpers'

let fake: FakeTogether | undefined
let root: string | undefined
afterEach(async () => {
  await fake?.close()
  await removeTemp(root)
  fake = root = undefined
})

const FAULTS = new URL('./fs-faults.mjs', import.meta.url).href
/** The child's environment with `code` on every write under `folder`. */
const faulty = (code: string, folder: string) => ({ ...fakeEnv(fake!.baseURL), NODE_OPTIONS: `--import=${FAULTS}`, FLUX_FS_FAULT: `${code}:${folder}` })
const ago = (ms: number) => new Date(Date.now() - ms)

async function project(name: string, assets: number) {
  fake = await startFakeTogether({ latencyMs: 20 })
  root = await makeTemp(name)
  await writeScripts(root, { 'a.script.json': scriptWith(assets, name) })
  return { cacheDir: join(root, '.flux-cache'), keys: await expectedKeys(root) }
}

const cli = (args: string[], env = fakeEnv(fake!.baseURL)) => runCli([...SIZE, ...args], { cwd: root!, env })

describe('a disk that takes no writes', () => {
  // 3. With the cache on a full file system a run paid for 22 images and stored 7.
  it.each(['ENOSPC', 'EDQUOT', 'EROFS', 'EACCES'])('%s on image writes: no further generation request, the run fails saying what was lost', async code => {
    const { cacheDir } = await project(`disk-${code.toLowerCase()}`, 12)
    // Locks still work (a few bytes); the images, written through tmp/, do not.
    const run = await cli(['generate', '--concurrency', '2'], faulty(code, join(cacheRoot(cacheDir), 'tmp')))
    expect(run.code, run.stderr).toBe(1)
    // Only the requests already in flight when the first write failed were paid for: a slot is free again once its
    // answer is in (the write overlaps the next request), so at most twice the concurrency, never the 12.
    expect(fake!.stats.generations).toBeGreaterThanOrEqual(1)
    expect(fake!.stats.generations).toBeLessThanOrEqual(4)
    const lost = fake!.stats.generations
    expect(run.stderr).toContain(`the cache cannot be written (${code} writing `)
    expect(run.stderr).toContain(`generation stopped; ${lost} paid image${lost === 1 ? '' : 's'} could not be stored`)
    expect(run.stderr).not.toMatch(STACK_LINE)
    expect(recordFiles(cacheDir)).toEqual([])
  })

  it('a disk that cannot even take a lock file: nothing is bought, the run fails', async () => {
    const { cacheDir } = await project('disk-locks', 4)
    const run = await cli(['generate'], faulty('ENOSPC', cacheDir))
    expect(run.code, run.stderr).toBe(1)
    expect(run.stderr).toContain('the cache cannot be written (ENOSPC writing ')
    expect(run.stderr).toContain('generation stopped; 0 paid images could not be stored')
    expect(fake!.stats.generationRequests).toBe(0)
  })

  // 4. A read-only cache with one damaged entry aborted `generate --offline` and `status` with `EROFS ... unlink`.
  it('a read-only cache holding a damaged entry: generate --offline and status treat it as a miss', async () => {
    const { cacheDir, keys } = await project('readonly', 3)
    expect((await cli(['generate'])).code).toBe(0)
    const record = JSON.parse(await readFile(join(cacheRoot(cacheDir), keys[0]!.slice(0, 2), `${keys[0]}.json`), 'utf8'))
    const image = join(cacheRoot(cacheDir), keys[0]!.slice(0, 2), `${keys[0]}-${record.sha256.slice(0, 16)}.${record.ext}`)
    await writeFile(image, (await readFile(image)).subarray(0, 500))
    const before = listFiles(cacheDir)

    const offline = await cli(['generate', '--offline', '--json'], faulty('EROFS', cacheDir))
    expect(offline.code, offline.stderr).toBe(0)
    expect(JSON.parse(offline.stdout).summary).toMatchObject({ cached: 2, placeholders: 1 })
    const status = await cli(['status', '--json'], faulty('EROFS', cacheDir))
    expect(status.code, status.stderr).toBe(0)
    expect(JSON.parse(status.stdout)).toMatchObject({ cached: 2, missing: 1 })
    for (const run of [offline, status]) expect(run.stderr).not.toMatch(/unlink|unexpected|EROFS: simulated/)
    // Nothing could be removed, and nothing was.
    expect(listFiles(cacheDir)).toEqual(before)
  })
})

describe('cache upkeep', () => {
  // 7. An image file left without its record by a kill was never removed.
  it('image files without a record are removed by the next run and by prune once older than a few minutes', async () => {
    const { cacheDir, keys } = await project('orphans', 2)
    expect((await cli(['generate'])).code).toBe(0)
    const shard = (key: string) => join(cacheRoot(cacheDir), key.slice(0, 2))
    const record = JSON.parse(await readFile(join(shard(keys[0]!), `${keys[0]}.json`), 'utf8'))
    const source = join(shard(keys[0]!), `${keys[0]}-${record.sha256.slice(0, 16)}.${record.ext}`)
    // As a kill between the image and its record leaves them: images named by their hash, for keys with no record.
    const orphan = async (key: string, age: number) => {
      const bytes = Buffer.concat([await readFile(source), Buffer.from(key)])
      const path = join(shard(key), `${key}-${sha256(bytes).slice(0, 16)}.jpg`)
      await mkdir(shard(key), { recursive: true })
      await writeFile(path, bytes)
      await utimes(path, ago(age), ago(age))
      return path
    }
    const old = await orphan('e'.repeat(64), 10 * 60_000)
    const fresh = await orphan('f'.repeat(64), 0)
    // A second image beside a record that points at the first: a replaced entry's leftover.
    const replaced = join(shard(keys[0]!), `${keys[0]}-${'0'.repeat(16)}.jpg`)
    await copyFile(source, replaced)
    await utimes(replaced, ago(10 * 60_000), ago(10 * 60_000))

    expect((await cli(['generate'])).code).toBe(0)
    expect(await exists(old)).toBe(false)
    expect(await exists(replaced)).toBe(false)
    // A writer may be between its image and its record right now: a young file is left alone.
    expect(await exists(fresh)).toBe(true)
    expect(await validImages(cacheDir, keys)).toBe(2)

    await utimes(fresh, ago(10 * 60_000), ago(10 * 60_000))
    expect((await cli(['prune'])).code).toBe(0)
    expect(await exists(fresh)).toBe(false)
    expect(await validImages(cacheDir, keys)).toBe(2)
  })
})

describe('symbolic links in the cache', () => {
  // 12. With `.flux-cache/v1/tmp -> ../../src` committed, every run deleted every file in src/ older than a day.
  it.each([
    ['v1/tmp', '../../src'],
    ['v1/locks', '../../src'],
    ['v1', '../src'],
  ])('%s linked into the project: refused with a clear message, and no project file is touched', async (link, target) => {
    const { cacheDir } = await project('symlink', 1)
    await mkdir(join(root!, 'src'), { recursive: true })
    const files = ['main.ts', 'a~1~abcdefabcdef.tmp', `${'a'.repeat(64)}.lock`]
    for (const f of files) {
      await writeFile(join(root!, 'src', f), JSON.stringify({ pid: 999_999, host: 'x' }))
      await utimes(join(root!, 'src', f), ago(2 * 86_400_000), ago(2 * 86_400_000))
    }
    await mkdir(join(cacheDir, link, '..'), { recursive: true })
    await symlink(target, join(cacheDir, link))

    for (const args of [['generate', '--offline'], ['generate'], ['prune', '--force']]) {
      const run = await cli(args)
      expect(run.code, `${args.join(' ')}: ${run.stderr}`).toBe(1)
      expect(run.stderr).toContain(`the cache folder ${join(cacheDir, link)} is a symbolic link`)
      expect(run.stderr).not.toMatch(STACK_LINE)
    }
    for (const f of files) expect(await exists(join(root!, 'src', f)), f).toBe(true)
    expect(fake!.stats.generationRequests).toBe(0)
  })

  it('in a real temp folder, files the cache did not make are never deleted, however old', async () => {
    const { cacheDir } = await project('foreign', 1)
    const tmp = join(cacheRoot(cacheDir), 'tmp')
    await mkdir(tmp, { recursive: true })
    const foreign = join(tmp, 'notes.txt')
    const ours = join(tmp, `elsewhere~123~${'0'.repeat(12)}.tmp`)
    for (const f of [foreign, ours]) {
      await writeFile(f, 'x')
      await utimes(f, ago(2 * 86_400_000), ago(2 * 86_400_000))
    }
    expect((await cli(['generate', '--offline'])).code).toBe(0)
    expect(await exists(foreign)).toBe(true)
    expect(await exists(ours)).toBe(false)
    expect((await stat(foreign)).size).toBe(1)
  })

  // Recovery checks the store's folders once at its start; a link made after that must still never be followed:
  // each sweep checks its folder again right before listing it.
  it('the temp and lock sweeps refuse a folder that became a link after the run started, and delete nothing through it', async () => {
    root = await makeTemp('late-link')
    const target = join(root, 'src')
    await mkdir(target, { recursive: true })
    const temp = join(target, `elsewhere~123~${'0'.repeat(12)}.tmp`)
    const lock = join(target, `${'a'.repeat(64)}.lock`)
    for (const f of [temp, lock]) {
      await writeFile(f, JSON.stringify({ pid: deadPid(), host: hostname(), at: 0 }))
      await utimes(f, ago(2 * 86_400_000), ago(2 * 86_400_000))
    }
    const link = join(root, 'linked')
    await symlink(target, link)
    await expect(removeDeadTemp(link, 86_400_000)).rejects.toMatchObject({ code: 'FLUX_CACHE_LINK' })
    await expect(new KeyLock(link).sweep()).rejects.toMatchObject({ code: 'FLUX_CACHE_LINK' })
    expect(await exists(temp)).toBe(true)
    expect(await exists(lock)).toBe(true)
  })
})
