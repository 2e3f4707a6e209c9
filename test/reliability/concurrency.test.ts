// Issue 4, point 4: runs started at once on one cache pay each prompt exactly once (per-key lock files), waiters take
// the holder's entry, and a lock whose holder died (or that is far too old) is taken over.
import { mkdir, rm, utimes, writeFile } from 'node:fs/promises'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { FileStore } from '../../src/core/store'
import { generateAssets } from '../../src/core/engine'
import { makeJpeg, startFakeTogether, type FakeTogether } from '../fake-together.mjs'
import {
  assertCacheConsistent,
  cacheRoot,
  deadPid,
  expectedKeys,
  fakeEnv,
  lockFiles,
  makeTemp,
  readManifest,
  removeTemp,
  runCli,
  scanRequests,
  SENTINEL,
  SIZE,
  scriptWith,
  silent,
  spawnCli,
  STACK_LINE,
  validImages,
  viteBuild,
  waitFor,
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

const generate = () => runCli(['generate', ...SIZE, '--strict', '--json'], { cwd: root!, env: fakeEnv(fake.baseURL) })

describe('concurrent processes', () => {
  it('three `flux-assets generate` started at once pay each of 8 prompts exactly once', async () => {
    fake = await startFakeTogether({ latencyMs: 200 })
    root = await makeTemp('concurrent-cli')
    await writeScripts(root, { 'a.script.json': scriptWith(8, 'race') })
    const cacheDir = join(root, '.flux-cache')

    const runs = await Promise.all([generate(), generate(), generate()])
    for (const run of runs) {
      expect(run.code, run.stderr).toBe(0)
      expect(run.stderr).not.toMatch(STACK_LINE)
    }
    expect(fake.stats.generations).toBe(8)
    // Every image was made by exactly one of the three; the others took it from the cache.
    const summaries = runs.map(r => JSON.parse(r.stdout).summary)
    expect(summaries.reduce((n, s) => n + s.generated, 0)).toBe(8)
    for (const s of summaries) expect(s).toMatchObject({ unique: 8, placeholders: 0, failed: 0 })
    const keys = await expectedKeys(root)
    expect(await validImages(cacheDir, keys)).toBe(8)
    expect(await assertCacheConsistent(cacheDir)).toEqual(keys)
    expect(lockFiles(cacheDir)).toEqual([])
  })

  it('a CLI run, a vite build and generateAssets at once on one cache pay each prompt once', async () => {
    fake = await startFakeTogether({ latencyMs: 200 })
    root = await makeTemp('concurrent-mixed')
    await writeScripts(root, { 'a.script.json': scriptWith(8, 'mixed') })
    await writeApp(root, ['a.script.json'])
    const options = { apiKey: SENTINEL, baseURL: fake.baseURL }
    const [cli, , programmatic] = await Promise.all([
      generate(),
      viteBuild(root, options),
      generateAssets({ ...options, root, width: 256, height: 256, logger: silent, strict: true }),
    ])
    expect(cli.code, cli.stderr).toBe(0)
    expect(fake.stats.generations).toBe(8)
    expect(programmatic.assets.every(a => !a.placeholder)).toBe(true)
    expect((await readManifest(join(root, 'dist'))).every(e => !e.placeholder)).toBe(true)
    expect(await assertCacheConsistent(join(root, '.flux-cache'))).toHaveLength(8)
  })

  it('a run waits for a live lock holder and takes its entry instead of paying', async () => {
    fake = await startFakeTogether({ latencyMs: 300 })
    root = await makeTemp('concurrent-wait')
    await writeScripts(root, { 'a.script.json': scriptWith(2, 'wait') })
    const cacheDir = join(root, '.flux-cache')
    const [held, other] = await scanRequests(root)
    // This test process holds the lock of the first image, as another build would.
    const lock = join(cacheRoot(cacheDir), 'locks', `${held!.key}.lock`)
    await mkdir(join(lock, '..'), { recursive: true })
    await writeFile(lock, JSON.stringify({ pid: process.pid, host: hostname(), at: Date.now() }))

    const cli = await spawnCli(['generate', ...SIZE, '--strict', '--json'], { cwd: root, env: fakeEnv(fake.baseURL) })
    // Once the other image is being generated, the run has reached the locked one too (concurrency 4).
    await waitFor(() => fake.stats.generationRequests >= 1 || cli.child.exitCode !== null, 'the run to start generating')
    expect(cli.child.exitCode).toBeNull()
    // The holder finishes its entry, then releases the lock.
    await new FileStore(cacheDir).put(held!.key, makeJpeg('made by the holder', 2048, 256, 256), { prompt: held!.prompt, settings: held!.settings })
    await rm(lock)

    const { code } = await cli.exited
    expect(code, cli.stderr).toBe(0)
    expect(fake.stats.generations).toBe(1)
    expect(fake.log.filter(e => e.method === 'POST').map(e => (e.body as { prompt?: string })?.prompt)).toEqual([other!.prompt])
    expect(JSON.parse(cli.stdout).summary).toMatchObject({ generated: 1, cached: 1 })
    expect(await validImages(cacheDir, [held!.key, other!.key])).toBe(2)
  })

  it('stale locks are taken over: a dead holder on this host, and an unrefreshed lock from another host', async () => {
    fake = await startFakeTogether({})
    root = await makeTemp('concurrent-stale')
    await writeScripts(root, { 'a.script.json': scriptWith(2, 'stale') })
    const cacheDir = join(root, '.flux-cache')
    const keys = await expectedKeys(root)
    const locks = join(cacheRoot(cacheDir), 'locks')
    await mkdir(locks, { recursive: true })
    await writeFile(join(locks, `${keys[0]}.lock`), JSON.stringify({ pid: deadPid(), host: hostname(), at: Date.now() }))
    await writeFile(join(locks, `${keys[1]}.lock`), JSON.stringify({ pid: 1, host: 'another-machine', at: Date.now() - 11 * 60_000 }))
    // Not refreshed for 11 minutes (a holder refreshes its lock's mtime while it works: locks.test.ts).
    const old = new Date(Date.now() - 11 * 60_000)
    await utimes(join(locks, `${keys[1]}.lock`), old, old)

    const run = await generate()
    expect(run.code, run.stderr).toBe(0)
    expect(fake.stats.generations).toBe(2)
    expect(await validImages(cacheDir, keys)).toBe(2)
    expect(lockFiles(cacheDir)).toEqual([])
  })
})
