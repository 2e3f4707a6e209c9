// Issue 11, point 6: a lock is never taken from a live holder. Holders refresh their lock while they work; a lock is
// stale only when its holder's process is gone (same host) or its last refresh is older than about a minute.
import { mkdir, readdir, readFile, stat, utimes, writeFile } from 'node:fs/promises'
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

  it('an empty lock left by a crash between creating and writing it is cleared, not waited on for the stale window', async () => {
    // The old way (open O_EXCL, then write the holder) left an empty lock when killed between the two: sweep skipped
    // it and tryAcquire judged it by its mtime only, so the key stayed blocked for staleMs (60 s) after a resume.
    root = await makeTemp('lock-empty')
    const dir = join(root, 'locks')
    await mkdir(dir, { recursive: true })
    const [swept, taken, fresh] = ['b', 'c', 'd'].map(c => c.repeat(64))
    await writeFile(join(dir, `${swept}.lock`), '')
    await utimes(join(dir, `${swept}.lock`), ago(10_000), ago(10_000))
    // Just made: maybe a holder of the old way between its two steps, so it is left alone.
    await writeFile(join(dir, `${fresh}.lock`), '')
    const locks = new KeyLock(dir)
    expect(await locks.sweep()).toBe(1)
    expect(await readdir(dir)).toEqual([`${fresh}.lock`])
    // One made after the sweep: the first try clears it, the second takes the key.
    await writeFile(join(dir, `${taken}.lock`), '{"pid":')
    await utimes(join(dir, `${taken}.lock`), ago(10_000), ago(10_000))
    expect(await locks.tryAcquire(taken)).toBeUndefined()
    expect(await readdir(dir)).toEqual([`${fresh}.lock`])
    const release = await locks.tryAcquire(taken)
    expect(release).toBeDefined()
    expect(JSON.parse(await readFile(join(dir, `${taken}.lock`), 'utf8'))).toMatchObject({ pid: process.pid, host: hostname() })
    await release!()
    expect(await locks.tryAcquire(fresh)).toBeUndefined()
    expect(await readdir(dir)).toEqual([`${fresh}.lock`])
  })

  it('a lock is created with its holder through a temp file beside it, which never stays behind', async () => {
    root = await makeTemp('lock-temp')
    const dir = join(root, 'locks')
    const key = 'e'.repeat(64)
    const locks = new KeyLock(dir)
    const release = await locks.tryAcquire(key)
    expect((await readdir(dir)).filter(n => n.endsWith('.lock'))).toEqual([`${key}.lock`])
    // Released: neither the lock nor its temp file is left.
    await release!()
    expect(await readdir(dir)).toEqual([])
    // A lock writer killed before it removed its temp file is swept with the dead locks; a live writer's is kept.
    const dead = `${hostname()}~${deadPid()}~0123456789ab.tmp`
    const live = `${hostname()}~${process.pid}~0123456789ab.tmp`
    for (const name of [dead, live]) await writeFile(join(dir, name), '{}')
    expect(await locks.sweep()).toBe(1)
    expect(await readdir(dir)).toEqual([live])
  })
})
