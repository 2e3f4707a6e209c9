import { mkdir, open, readdir, readFile, rm, stat, utimes } from 'node:fs/promises'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { diskError } from './cache-fs'
import { abortError, sleep } from './retry'

/** A held lock: release it exactly once, whatever happened meanwhile. */
export type Release = () => Promise<void>

/** The only names KeyLock makes, and the only ones it removes. */
const LOCK_NAME = /^[0-9a-f]{64}\.lock$/

/**
 * Cross-process locks by cache key: one file per key (`<dir>/<key>.lock`, created with O_EXCL), holding who took it.
 * Who generates a key right now, across processes and plugin instances. The holder refreshes its lock's mtime every
 * `staleMs / 4` while it works (an image can take minutes: 5 attempts of a 120 s timeout); a lock is taken over when
 * its holder's process is gone (same host) or its last refresh is older than `staleMs` (a holder that hangs, or died
 * on another host). Knows nothing of images: the store is its own piece.
 */
export class KeyLock {
  constructor(
    private readonly dir: string,
    private readonly staleMs = 60_000,
    private readonly now: () => number = Date.now,
    private readonly refreshMs = staleMs / 4,
  ) {}

  /**
   * Takes the key's lock, or returns `undefined` without waiting when another holder has it. `acquire()` waits;
   * this lets a caller look at the store between tries (the holder may have finished the image meanwhile).
   */
  async tryAcquire(key: string): Promise<Release | undefined> {
    const lock = join(this.dir, `${key}.lock`)
    await mkdir(this.dir, { recursive: true }).catch(error => Promise.reject(diskError(error, this.dir)))
    const handle = await open(lock, 'wx').catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'EEXIST') return undefined
      throw diskError(error, lock)
    })
    if (!handle) {
      if (await this.isStale(lock)) await rm(lock, { force: true })
      return undefined
    }
    try {
      await handle.writeFile(JSON.stringify({ pid: process.pid, host: hostname(), at: Date.now() }))
    } finally {
      await handle.close()
    }
    // The heartbeat: a refresh that fails (the lock was taken over, the disk is gone) is the taker's business.
    const heartbeat = setInterval(() => {
      const at = new Date()
      utimes(lock, at, at).catch(() => {})
    }, this.refreshMs)
    heartbeat.unref()
    let released = false
    return async () => {
      if (released) return
      released = true
      clearInterval(heartbeat)
      await rm(lock, { force: true })
    }
  }

  /**
   * Waits for the key's lock (backing off from 25 to 250 ms) until `ready()` says waiting is pointless (e.g. the
   * holder finished the entry): then `undefined`. Aborts with the signal's reason.
   */
  async acquire<T>(key: string, ready: () => Promise<T | undefined>, signal?: AbortSignal): Promise<{ release: Release } | { ready: T }> {
    for (let wait = 25; ; wait = Math.min(wait * 2, 250)) {
      if (signal?.aborted) throw abortError(signal)
      const release = await this.tryAcquire(key)
      if (release) return { release }
      const done = await ready()
      if (done !== undefined) return { ready: done }
      await sleep(wait, signal)
    }
  }

  /** Removes locks whose holder on this host died (a killed run could not release them). Returns how many. */
  async sweep(): Promise<number> {
    let removed = 0
    for (const name of await readdir(this.dir).catch(() => [] as string[])) {
      if (!LOCK_NAME.test(name)) continue
      // Empty while another process is between creating its lock and writing it: not ours to judge, skip it.
      const holder = await readHolder(join(this.dir, name))
      if (holder?.host === hostname() && !isAlive(Number(holder.pid))) await rm(join(this.dir, name), { force: true }).then(() => removed++, () => {})
    }
    return removed
  }

  /** Dead holder on this host, or no refresh (mtime) for `staleMs`; an unreadable lock by its mtime alone. */
  private async isStale(lock: string): Promise<boolean> {
    const info = await stat(lock).catch(() => undefined)
    // Gone: released meanwhile.
    if (!info) return false
    if (this.now() - info.mtimeMs > this.staleMs) return true
    // Empty or half written while its holder is between creating and writing it: only the age can judge it.
    const holder = await readHolder(lock)
    return holder?.host === hostname() && !isAlive(Number(holder.pid))
  }
}

function readHolder(path: string): Promise<{ pid?: number; host?: string } | undefined> {
  return readFile(path, 'utf8')
    .then(t => JSON.parse(t) as { pid?: number; host?: string })
    .catch(() => undefined)
}

/** Whether a process of this host is running (EPERM: it is, as another user). */
export function isAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}
