// Issue 11, point 6: a lock is never taken from a live holder. Holders refresh their lock while they work; a lock is
// stale only when its holder's process is gone (same host) or its last refresh is older than about a minute.
import { mkdir, readFile, stat, utimes, writeFile } from 'node:fs/promises'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { KeyLock } from '../../src/core/lock'
import { startFakeTogether, type FakeTogether } from '../fake-together.mjs'
import { cacheRoot, deadPid, expectedKeys, fakeEnv, lockFiles, makeTemp, removeTemp, runCli, SIZE, scriptWith, spawnCli, validImages, waitFor, writeScripts } from './helpers'

let fake: FakeTogether | undefined
let root: string | undefined
afterEach(async () => {
  await fake?.close()
  await removeTemp(root)
  fake = root = undefined
})

const ago = (ms: number) => new Date(Date.now() - ms)

describe('locks', () => {
  it('a lock taken 11 minutes ago by a holder still at work is waited for, not taken over: the image is paid once', async () => {
    // Each answer takes a while: the first run holds its lock all that time.
    fake = await startFakeTogether({ latencyMs: 1_500 })
    root = await makeTemp('lock-live')
    await writeScripts(root, { 'a.script.json': scriptWith(1, 'live holder') })
    const cacheDir = join(root, '.flux-cache')
    const [key] = await expectedKeys(root)
    const first = await spawnCli(['generate', ...SIZE], { cwd: root, env: fakeEnv(fake.baseURL) })
    await waitFor(() => fake!.stats.inFlight >= 1, 'the first run to be generating')
    // As if it had been working for 11 minutes (5 attempts × a 120 s timeout and backoff take longer than that).
    const lock = join(cacheRoot(cacheDir), 'locks', `${key}.lock`)
    const holder = JSON.parse(await readFile(lock, 'utf8'))
    expect(holder.pid).toBe(first.child.pid)
    await writeFile(lock, JSON.stringify({ ...holder, at: Date.now() - 11 * 60_000 }))

    const second = await runCli(['generate', ...SIZE, '--json'], { cwd: root, env: fakeEnv(fake.baseURL) })
    expect(second.code, second.stderr).toBe(0)
    expect((await first.exited).code, first.stderr).toBe(0)
    expect(JSON.parse(second.stdout).summary).toMatchObject({ generated: 0, cached: 1 })
    expect(fake.stats.generations).toBe(1)
    expect(await validImages(cacheDir, [key!])).toBe(1)
  })

  it('a holder refreshes its lock while it holds it, so another process does not see it stale', async () => {
    root = await makeTemp('lock-refresh')
    const dir = join(root, 'locks')
    const key = 'a'.repeat(64)
    const holder = new KeyLock(dir, 60_000, Date.now, 20)
    const release = await holder.tryAcquire(key)
    expect(release).toBeDefined()
    const lock = join(dir, `${key}.lock`)
    // Back-dated past the stale window: only a refresh can bring it back.
    await utimes(lock, ago(5 * 60_000), ago(5 * 60_000))
    await waitFor(async () => Date.now() - (await stat(lock)).mtimeMs < 60_000, 'the holder to refresh its lock')
    expect(await new KeyLock(dir).tryAcquire(key)).toBeUndefined()
    await release!()
    const after = new KeyLock(dir)
    const mine = await after.tryAcquire(key)
    expect(mine).toBeDefined()
    await mine!()
  })

  it('stale locks are taken over: a holder on this host that stopped refreshing, another host\'s unrefreshed lock, a dead pid', async () => {
    fake = await startFakeTogether({})
    root = await makeTemp('lock-stale')
    await writeScripts(root, { 'a.script.json': scriptWith(3, 'stale') })
    const cacheDir = join(root, '.flux-cache')
    const keys = await expectedKeys(root)
    const locks = join(cacheRoot(cacheDir), 'locks')
    await mkdir(locks, { recursive: true })
    // This test process is alive but hung as far as the lock says: no refresh for 2 minutes.
    await writeFile(join(locks, `${keys[0]}.lock`), JSON.stringify({ pid: process.pid, host: hostname(), at: Date.now() - 120_000 }))
    await utimes(join(locks, `${keys[0]}.lock`), ago(120_000), ago(120_000))
    await writeFile(join(locks, `${keys[1]}.lock`), JSON.stringify({ pid: 1, host: 'another-machine', at: Date.now() - 120_000 }))
    await utimes(join(locks, `${keys[1]}.lock`), ago(120_000), ago(120_000))
    await writeFile(join(locks, `${keys[2]}.lock`), JSON.stringify({ pid: deadPid(), host: hostname(), at: Date.now() }))

    const run = await runCli(['generate', ...SIZE], { cwd: root, env: fakeEnv(fake.baseURL) })
    expect(run.code, run.stderr).toBe(0)
    expect(fake.stats.generations).toBe(3)
    expect(await validImages(cacheDir, keys)).toBe(3)
    expect(lockFiles(cacheDir)).toEqual([])
  })
})
