// Issue 4, point 2: `flux-assets generate` killed with SIGKILL mid-run leaves only complete, verified images at final
// cache paths; its temp files are ignored, then cleaned by the next run; the resumed run pays only for what is missing.
import { mkdir, writeFile } from 'node:fs/promises'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { makeJpeg, startFakeTogether, type FakeTogether } from '../fake-together.mjs'
import {
  assertCacheConsistent,
  cacheRoot,
  deadPid,
  expectedKeys,
  fakeEnv,
  lockFiles,
  makeTemp,
  recordFiles,
  removeTemp,
  runCli,
  SIZE,
  scriptWith,
  spawnCli,
  tempFiles,
  validImages,
  waitFor,
  writeScripts,
} from './helpers'

const fakes: FakeTogether[] = []
let root: string | undefined
afterEach(async () => {
  await Promise.all(fakes.splice(0).map(f => f.close()))
  await removeTemp(root)
  root = undefined
})
const start = async (options: Parameters<typeof startFakeTogether>[0]) => {
  const fake = await startFakeTogether(options)
  fakes.push(fake)
  return fake
}

/** Starts a generate run, waits until `ready()`, SIGKILLs it, and returns what the cache holds afterwards. */
async function killMidRun(args: string[], fake: FakeTogether, ready: () => boolean) {
  const cli = await spawnCli(['generate', ...SIZE, ...args], { cwd: root!, env: fakeEnv(fake.baseURL) })
  await waitFor(() => ready() || cli.child.exitCode !== null, 'the run to be mid-generation', 30_000, 2)
  expect(cli.child.exitCode, `finished before it could be killed:\n${cli.stderr}`).toBeNull()
  cli.child.kill('SIGKILL')
  expect(await cli.exited).toMatchObject({ signal: 'SIGKILL' })
  return cli
}

/** The resume: a fresh fake (the killed run's answers cannot leak into the count), its generations counted. */
async function resume(total: number) {
  const cacheDir = join(root!, '.flux-cache')
  const finished = (await assertCacheConsistent(cacheDir)).length
  const fake = await start({})
  const run = await runCli(['generate', ...SIZE, '--strict'], { cwd: root!, env: fakeEnv(fake.baseURL) })
  expect(run.code, run.stderr).toBe(0)
  expect(fake.stats.generations).toBe(total - finished)
  const keys = await expectedKeys(root!)
  expect(await validImages(cacheDir, keys)).toBe(total)
  expect(await assertCacheConsistent(cacheDir)).toEqual(keys)
  expect(lockFiles(cacheDir)).toEqual([])
  return { finished, run }
}

describe('crash safety (SIGKILL)', () => {
  it('killed while requests are in flight: committed entries verify, stale locks and temp files are recovered, resume pays only the rest', async () => {
    root = await makeTemp('crash')
    await writeScripts(root, { 'a.script.json': scriptWith(12, 'crash') })
    const cacheDir = join(root, '.flux-cache')
    // Four answers come at once, every later one would take a minute: the kill lands with three requests in flight.
    const fake = await start({ latencyMs: 60_000 })
    fake.enqueue(...Array.from({ length: 4 }, () => ({ status: 200, delayMs: 0 })))
    await killMidRun(['--concurrency', '3'], fake, () => recordFiles(cacheDir).length >= 4 && fake.stats.inFlight === 3)

    // Every record is a complete, verified image; the dead run's locks are still there (it could not release them).
    const committed = await assertCacheConsistent(cacheDir)
    expect(committed).toHaveLength(4)
    // Three for the requests in flight, plus any committed entry whose lock was not yet released at the kill (a
    // request slot is freed once its answer is in, before the write and the release).
    expect(lockFiles(cacheDir).length).toBeGreaterThanOrEqual(3)
    expect(lockFiles(cacheDir).length).toBeLessThanOrEqual(3 + committed.length)
    // A run killed between committing an entry and releasing its lock: the next run finds a hit and never asks for
    // that lock, so the lock must be cleaned up like the temp files.
    const locks = join(cacheRoot(cacheDir), 'locks')
    await writeFile(join(locks, `${committed[0]}.lock`), JSON.stringify({ pid: deadPid(), host: hostname(), at: Date.now() }))

    // Stray temp files: a dead writer's partial image (to be cleaned) and a live writer's (to be left alone).
    const tmp = join(cacheRoot(cacheDir), 'tmp')
    await mkdir(tmp, { recursive: true })
    const partial = makeJpeg('half', 4096).subarray(0, 2000)
    const dead = `${hostname()}~${deadPid()}~0123456789ab.tmp`
    const live = `${hostname()}~${process.pid}~ba9876543210.tmp`
    await writeFile(join(tmp, dead), partial)
    await writeFile(join(tmp, live), partial)
    // Ignored: a temp file is never taken for an entry.
    expect(await assertCacheConsistent(cacheDir)).toHaveLength(4)

    const { finished } = await resume(12)
    expect(finished).toBe(4)
    expect(tempFiles(cacheDir)).toEqual([live])
  })

  it('killed while large images are being written: no partial file at a final path, resume pays only the rest', async () => {
    root = await makeTemp('crash-write')
    await writeScripts(root, { 'a.script.json': scriptWith(16, 'write') })
    const cacheDir = join(root, '.flux-cache')
    // 8 MB images, no latency: the process spends its time receiving, decoding and writing. Killed the moment a
    // temp file is seen after the first entries are committed (a write in progress), or after a few entries.
    const fake = await start({ imageBytes: 8 * 1024 * 1024 })
    await killMidRun(['--concurrency', '4'], fake, () => {
      const records = recordFiles(cacheDir).length
      return (records >= 1 && tempFiles(cacheDir).length > 0) || records >= 6
    })

    await assertCacheConsistent(cacheDir)
    const { finished } = await resume(16)
    expect(finished).toBeGreaterThanOrEqual(1)
    expect(finished).toBeLessThan(16)
    expect(tempFiles(cacheDir)).toEqual([])
  })
})
