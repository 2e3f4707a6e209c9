import { mkdir, open, readdir, readFile, rm, stat } from 'node:fs/promises'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { abortError, sleep } from './retry'

/** A held lock: release it exactly once, whatever happened meanwhile. */
export type Release = () => Promise<void>

/**
 * Cross-process locks by cache key: one file per key (`<dir>/<key>.lock`, created with O_EXCL), holding who took it.
 * Who generates a key right now, across processes and plugin instances. A lock whose holder died on this host, or
 * that is older than `staleMs` (another host), is taken over. Knows nothing of images: the store is its own piece.
 */
export class KeyLock {
  constructor(
    private readonly dir: string,
    private readonly staleMs = 10 * 60_000,
  ) {}

  /**
   * Takes the key's lock, or returns `undefined` without waiting when another holder has it. `acquire()` waits;
   * this lets a caller look at the store between tries (the holder may have finished the image meanwhile).
   */
  async tryAcquire(key: string): Promise<Release | undefined> {
    const lock = join(this.dir, `${key}.lock`)
    await mkdir(this.dir, { recursive: true })
    const handle = await open(lock, 'wx').catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'EEXIST') return undefined
      throw error
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
    let released = false
    return async () => {
      if (released) return
      released = true
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
      // Empty while another process is between creating its lock and writing it: not ours to judge, skip it.
      const holder = await readHolder(join(this.dir, name))
      if (holder?.host === hostname() && !isAlive(Number(holder.pid))) {
        await rm(join(this.dir, name), { force: true })
        removed++
      }
    }
    return removed
  }

  private async isStale(lock: string): Promise<boolean> {
    try {
      const holder = JSON.parse(await readFile(lock, 'utf8')) as { pid: number; host: string; at: number }
      return (holder.host === hostname() && !isAlive(holder.pid)) || Date.now() - holder.at > this.staleMs
    } catch (error) {
      // Gone (released), or not written yet by a holder that has just created it: judge by age.
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false
      const info = await stat(lock).catch(() => undefined)
      return !!info && Date.now() - info.mtimeMs > 10_000
    }
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
