// Issue 4, point 9: Ctrl-C during `flux-assets generate`, and a cancelled build, abort the requests in flight and
// leave the cache consistent: every entry verifies, no temp file or lock is left behind after the next run, and the
// next run pays only for the images that were not finished.
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { watch } from 'rollup'
import { afterEach, describe, expect, it } from 'vitest'
import flux from '../../src/rollup'
import { startFakeTogether, type FakeTogether } from '../fake-together.mjs'
import {
  assertCacheConsistent,
  type Cli,
  expectedKeys,
  fakeEnv,
  lockFiles,
  makeTemp,
  readManifest,
  recordFiles,
  removeTemp,
  runCli,
  SENTINEL,
  SIZE,
  scriptWith,
  silent,
  spawnCli,
  spawnViteBuild,
  tempFiles,
  validImages,
  viteBuild,
  waitFor,
  writeApp,
  writeScripts,
} from './helpers'

const fakes: FakeTogether[] = []
const children: Cli[] = []
let root: string | undefined
afterEach(async () => {
  for (const c of children.splice(0)) if (c.child.exitCode === null && c.child.signalCode === null) c.child.kill('SIGKILL')
  await Promise.all(fakes.splice(0).map(f => f.close()))
  await removeTemp(root)
  root = undefined
})
const start = async (options: Parameters<typeof startFakeTogether>[0] = {}) => {
  const fake = await startFakeTogether(options)
  fakes.push(fake)
  return fake
}

/** Ten minutes: an answer that can only arrive if nothing was aborted (the test times out long before). */
const FOREVER = 600_000

/**
 * A fake where the first `instant` generations answer at once and every later one would take FOREVER: after those,
 * the run is stuck with `concurrency` requests in flight, which is when the signal must land.
 */
async function stuckFake(instant: number) {
  const fake = await start({ latencyMs: FOREVER })
  fake.enqueue(...Array.from({ length: instant }, () => ({ status: 200, delayMs: 0 })))
  return fake
}

/** Waits until `instant` entries are committed and `inFlight` requests are held by the fake. */
async function midGeneration(cacheDir: string, fake: FakeTogether, instant: number, inFlight: number, process?: Cli) {
  await waitFor(
    () => (recordFiles(cacheDir).length >= instant && fake.stats.inFlight === inFlight) || (process && process.child.exitCode !== null),
    'the run to be mid-generation',
  )
  if (process) expect(process.child.exitCode, `finished before it could be interrupted:\n${process.stderr}`).toBeNull()
  // Nothing has been answered since: every later answer would need FOREVER.
  expect(fake.stats.generations).toBe(instant)
}

/** After the interruption: the fake saw every in-flight request hung up on, and none of them was answered. */
async function assertInFlightAborted(fake: FakeTogether, instant: number, inFlight: number) {
  await waitFor(() => fake.stats.inFlight === 0, 'the fake to see the connections close')
  expect(fake.stats.clientAborts).toBe(inFlight)
  expect(fake.stats.generations).toBe(instant)
}

/** The next run, against a fresh fake: pays exactly for what is missing, and leaves no lock or temp file. */
async function resumeWithCli(total: number, finished: number) {
  const cacheDir = join(root!, '.flux-cache')
  const fake = await start()
  const run = await runCli(['generate', ...SIZE, '--strict'], { cwd: root!, env: fakeEnv(fake.baseURL) })
  expect(run.code, run.stderr).toBe(0)
  expect(fake.stats.generations).toBe(total - finished)
  const keys = await expectedKeys(root!)
  expect(await validImages(cacheDir, keys)).toBe(total)
  expect(await assertCacheConsistent(cacheDir)).toEqual(keys)
  expect(lockFiles(cacheDir)).toEqual([])
  expect(tempFiles(cacheDir)).toEqual([])
}

describe('Ctrl-C during `flux-assets generate`', () => {
  it('SIGINT with requests in flight: exits 130 at once, hangs up on them, releases its locks; the next run pays only the rest', async () => {
    root = await makeTemp('abort-cli')
    await writeScripts(root, { 'a.script.json': scriptWith(12, 'sigint') })
    const cacheDir = join(root, '.flux-cache')
    const fake = await stuckFake(4)
    const cli = await spawnCli(['generate', ...SIZE, '--concurrency', '3'], { cwd: root, env: fakeEnv(fake.baseURL) })
    children.push(cli)
    await midGeneration(cacheDir, fake, 4, 3, cli)

    cli.child.kill('SIGINT')
    // Exits by itself (not killed by the signal) long before any in-flight answer could come.
    expect(await cli.exited).toEqual({ code: 130, signal: null })
    expect(cli.stderr).toContain('interrupted')
    await assertInFlightAborted(fake, 4, 3)

    // A clean stop: the four finished images verify, no lock and no temp file is left behind.
    expect(await assertCacheConsistent(cacheDir)).toHaveLength(4)
    expect(lockFiles(cacheDir)).toEqual([])
    expect(tempFiles(cacheDir)).toEqual([])
    await resumeWithCli(12, 4)
  })

  it('SIGINT while waiting to retry (429, retry-after 50 s): exits 130 without sending another request', async () => {
    root = await makeTemp('abort-cli-retry')
    await writeScripts(root, { 'a.script.json': scriptWith(4, 'sigint-retry') })
    const cacheDir = join(root, '.flux-cache')
    const fake = await start()
    fake.enqueue(...Array.from({ length: 4 }, () => ({ status: 429, headers: { 'retry-after': '50' } })))
    const cli = await spawnCli(['generate', ...SIZE, '--concurrency', '2'], { cwd: root, env: fakeEnv(fake.baseURL) })
    children.push(cli)
    await waitFor(() => fake.stats.byStatus[429] === 2 || cli.child.exitCode !== null, 'both workers to be told to wait')
    expect(cli.child.exitCode, cli.stderr).toBeNull()

    cli.child.kill('SIGINT')
    expect(await cli.exited).toEqual({ code: 130, signal: null })
    expect(fake.stats.generationRequests).toBe(2)
    expect(recordFiles(cacheDir)).toEqual([])
    expect(lockFiles(cacheDir)).toEqual([])
    await resumeWithCli(4, 0)
  })

  it("SIGINT while waiting for another run's lock: exits 130 and leaves the holder's locks alone", async () => {
    root = await makeTemp('abort-cli-lock')
    await writeScripts(root, { 'a.script.json': scriptWith(3, 'sigint-lock'), 'b.script.json': scriptWith(1, 'sigint-own') })
    const cacheDir = join(root, '.flux-cache')
    const fake = await stuckFake(0)
    // The holder has a's three prompts in flight (and their locks).
    const holder = await spawnCli(['generate', ...SIZE, '--include', 'a.script.json'], { cwd: root, env: fakeEnv(fake.baseURL) })
    children.push(holder)
    await midGeneration(cacheDir, fake, 0, 3, holder)
    const held = lockFiles(cacheDir)
    expect(held).toHaveLength(3)
    // The waiter wants all four: b's request in flight shows it is generating, so a's three are waiting on the locks.
    const waiter = await spawnCli(['generate', ...SIZE], { cwd: root, env: fakeEnv(fake.baseURL) })
    children.push(waiter)
    await midGeneration(cacheDir, fake, 0, 4, waiter)

    waiter.child.kill('SIGINT')
    expect(await waiter.exited).toEqual({ code: 130, signal: null })
    await waitFor(() => fake.stats.inFlight === 3, 'the waiter to hang up')
    expect(fake.stats.clientAborts).toBe(1)
    expect(fake.stats.generationRequests).toBe(4)
    expect(lockFiles(cacheDir)).toEqual(held)
    expect(holder.child.exitCode).toBeNull()

    holder.child.kill('SIGINT')
    expect(await holder.exited).toEqual({ code: 130, signal: null })
    await assertInFlightAborted(fake, 0, 4)
    expect(lockFiles(cacheDir)).toEqual([])
    await resumeWithCli(4, 0)
  })
})

describe('a cancelled build', () => {
  // `vite build` installs no signal handler: Ctrl-C (SIGINT to the process group) or a SIGTERM ends the process at
  // once, which closes its sockets. What must hold is the crash-safety promise: committed entries verify, the dead
  // build's locks and temp files are recovered by the next build, which pays only for the rest.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    it(`a \`vite build\` process receiving ${signal} mid-generation: requests are cut off, the next build pays only the rest`, async () => {
      root = await makeTemp(`abort-vite-${signal}`)
      await writeScripts(root, { 'a.script.json': scriptWith(12, `vite-${signal}`) })
      await writeApp(root, ['a.script.json'])
      const cacheDir = join(root, '.flux-cache')
      const fake = await stuckFake(4)
      const build = await spawnViteBuild(root, { apiKey: SENTINEL, baseURL: fake.baseURL, concurrency: 3 })
      children.push(build)
      await midGeneration(cacheDir, fake, 4, 3, build)

      build.child.kill(signal)
      const exit = await build.exited
      expect(exit.signal === signal || exit.code === 130, `exit ${JSON.stringify(exit)}`).toBe(true)
      expect(build.stdout).not.toContain('built')
      await assertInFlightAborted(fake, 4, 3)
      expect(await assertCacheConsistent(cacheDir)).toHaveLength(4)

      // The next build (in process, fresh fake) takes the dead build's locks back and pays for 8.
      const next = await start()
      const outDir = await viteBuild(root, { apiKey: SENTINEL, baseURL: next.baseURL, strict: true })
      expect(next.stats.generations).toBe(8)
      const manifest = await readManifest(outDir)
      expect(manifest.filter(e => e.placeholder)).toEqual([])
      const keys = await expectedKeys(root)
      expect(await assertCacheConsistent(cacheDir)).toEqual(keys)
      expect(lockFiles(cacheDir)).toEqual([])
      expect(tempFiles(cacheDir)).toEqual([])
    })
  }

  it('a Rollup watch closed mid-generation aborts the requests in flight and releases its locks', async () => {
    root = await makeTemp('abort-rollup-watch')
    await writeScripts(root, { 'a.script.json': scriptWith(12, 'rollup-watch') })
    await writeApp(root, ['a.script.json'])
    const cacheDir = join(root, '.flux-cache')
    const fake = await stuckFake(4)
    const watcher = watch({
      input: join(root, 'main.js'),
      plugins: [flux({ root, apiKey: SENTINEL, baseURL: fake.baseURL, width: 256, height: 256, concurrency: 3, logger: silent })],
      output: { dir: join(root, 'dist'), format: 'es' },
      onwarn: () => {},
    })
    const events: string[] = []
    watcher.on('event', event => {
      events.push(event.code)
      if ('result' in event && event.result) void event.result.close()
    })
    try {
      await midGeneration(cacheDir, fake, 4, 3)
    } finally {
      await watcher.close()
    }
    await assertInFlightAborted(fake, 4, 3)
    // The aborted build settles (its locks released, no write half done) without ever finishing a bundle.
    await waitFor(() => lockFiles(cacheDir).length === 0, 'the cancelled build to release its locks')
    expect(events).not.toContain('BUNDLE_END')
    expect(await assertCacheConsistent(cacheDir)).toHaveLength(4)
    // Rollup settles the closed build after its locks: a write that started (the run's roots file) may still be
    // renaming its temp file here; none may stay.
    await waitFor(() => tempFiles(cacheDir).length === 0, 'no temp file left by the cancelled build')
    await resumeWithCli(12, 4)
  })
})

describe('a closed dev server', () => {
  it('closing the Vite dev server while it generates for a request aborts the requests in flight', async () => {
    root = await makeTemp('abort-vite-dev')
    await writeScripts(root, { 'a.script.json': scriptWith(12, 'vite-dev') })
    await writeApp(root, ['a.script.json'])
    const cacheDir = join(root, '.flux-cache')
    const fake = await stuckFake(4)
    const [{ createServer }, { default: viteFlux }] = await Promise.all([import('vite'), import('../../src/vite')])
    const server = await createServer({
      root,
      configFile: false,
      logLevel: 'silent',
      server: { port: 0, host: '127.0.0.1', ws: false },
      plugins: [viteFlux({ apiKey: SENTINEL, baseURL: fake.baseURL, width: 256, height: 256, concurrency: 3, logger: silent })],
    })
    let closed = false
    try {
      await server.listen()
      const { port } = server.httpServer!.address() as AddressInfo
      // A browser asking for the manifest module: in dev, that is what generates the missing images.
      const response = fetch(`http://127.0.0.1:${port}/@id/virtual:flux-assets`).then(
        r => r.status,
        () => 'no answer',
      )
      await midGeneration(cacheDir, fake, 4, 3)
      await server.close()
      closed = true
      expect(await response).not.toBe(200)
    } finally {
      if (!closed) await server.close()
    }
    await assertInFlightAborted(fake, 4, 3)
    expect(lockFiles(cacheDir)).toEqual([])
    expect(await assertCacheConsistent(cacheDir)).toHaveLength(4)
    // Rollup settles the closed build after its locks: a write that started (the run's roots file) may still be
    // renaming its temp file here; none may stay.
    await waitFor(() => tempFiles(cacheDir).length === 0, 'no temp file left by the cancelled build')
    await resumeWithCli(12, 4)
  })
})
