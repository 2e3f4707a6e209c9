import { link, mkdir, open, readFile, rm, stat, unlink, utimes, writeFile } from 'node:fs/promises'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { diskError, isAlive, listSync, removeDeadTemp, tempName } from './cache-fs'
import { abortError, sleep } from './retry'

/** A held lock: release it exactly once, whatever happened meanwhile. */
export type Release = () => Promise<void>

/** The only lock names KeyLock makes, and the only ones it removes (its temp files: cache-fs TEMP_NAME). */
const LOCK_NAME = /^[0-9a-f]{64}\.lock$/

/**
 * How old an empty or unreadable lock must be to be cleared. Locks are created with their content (link()), so one is
 * never legitimately empty; only a holder of the open-then-write way (a file system without hard links, an older
 * version of this plugin) is, for the instant between its two steps. Left by a crash there, it blocked its key for
 * `staleMs` (60 s): a resumed run waited a minute for a lock nobody held.
 */
const UNREADABLE_GRACE_MS = 2_000

/** link() errors that mean the file system has no hard links (FAT, some network shares; link(2): EPERM on Linux): create, then write. */
const NO_LINKS = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS', 'EINVAL', 'EXDEV', 'EMLINK'])

/**
 * Cross-process locks by cache key: one file per key (`<dir>/<key>.lock`), holding who took it. It is created with its
 * content in one step: the holder is written to a temp file beside it, which is hard-linked to the lock's name (EEXIST:
 * held), so a process killed at any point leaves either no lock or a complete one.
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
    const holder = JSON.stringify({ pid: process.pid, host: hostname(), at: Date.now() })
    const created = await this.create(lock, holder)
    if (!created) {
      if (await this.isStale(lock)) await rm(lock, { force: true })
      return undefined
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
      await created.cleaned
      await rm(lock, { force: true })
    }
  }

  /**
   * Creates `lock` holding `holder`, or `false` when it exists (EEXIST). Once taken, the temp file is removed while the
   * caller goes on (`cleaned`: release waits for it): a request slot does not wait for it, and a process killed
   * meanwhile leaves a temp file sweep() removes.
   */
  private async create(lock: string, holder: string): Promise<false | { cleaned: Promise<void> }> {
    const temp = tempName(this.dir)
    let linking = false
    try {
      await writeFile(temp, holder, { flag: 'wx' }).catch(async (error: NodeJS.ErrnoException) => {
        // The folder is made on first use (or again, if something removed it meanwhile).
        if (error.code !== 'ENOENT') throw error
        await mkdir(this.dir, { recursive: true })
        await writeFile(temp, holder, { flag: 'wx' })
      })
      linking = true
      await link(temp, lock)
    } catch (error) {
      await unlink(temp).catch(() => {})
      const code = (error as NodeJS.ErrnoException).code ?? ''
      if (linking && code === 'EEXIST') return false
      if (linking && NO_LINKS.has(code)) return (await createThenWrite(lock, holder)) && { cleaned: Promise.resolve() }
      throw diskError(error, lock)
    }
    return { cleaned: unlink(temp).catch(() => {}) }
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

  /**
   * Removes locks whose holder on this host died (a killed run could not release them), empty or unreadable locks past
   * a short grace (see UNREADABLE_GRACE_MS), and the temp files of lock writers that died. Refuses (FLUX_CACHE_LINK)
   * a lock folder that is a symbolic link (removeDeadTemp checks it, right before this listing). Returns how many.
   */
  async sweep(): Promise<number> {
    let removed = await removeDeadTemp(this.dir, this.staleMs, this.now)
    for (const name of listSync(this.dir)) {
      if (!LOCK_NAME.test(name)) continue
      const lock = join(this.dir, name)
      const holder = await readHolder(lock)
      const dead = holder ? holder.host === hostname() && !isAlive(Number(holder.pid)) : await this.unreadableAndOld(lock)
      if (dead) await rm(lock, { force: true }).then(() => removed++, () => {})
    }
    return removed
  }

  /** Dead holder on this host, or no refresh (mtime) for `staleMs`; an unreadable lock once past the grace. */
  private async isStale(lock: string): Promise<boolean> {
    const info = await stat(lock).catch(() => undefined)
    // Gone: released meanwhile.
    if (!info) return false
    if (this.now() - info.mtimeMs > this.staleMs) return true
    const holder = await readHolder(lock)
    if (!holder) return this.unreadableAndOld(lock)
    return holder.host === hostname() && !isAlive(Number(holder.pid))
  }

  /** An empty or unparseable lock older than the grace: a crash between create and write, never a live holder. */
  private async unreadableAndOld(lock: string): Promise<boolean> {
    const info = await stat(lock).catch(() => undefined)
    return !!info && this.now() - info.mtimeMs > UNREADABLE_GRACE_MS && !(await readHolder(lock))
  }
}

/** The lock the open-then-write way, for file systems without hard links: empty for an instant (see the grace). */
async function createThenWrite(lock: string, holder: string): Promise<boolean> {
  const handle = await open(lock, 'wx').catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'EEXIST') return undefined
    throw diskError(error, lock)
  })
  if (!handle) return false
  try {
    await handle.writeFile(holder)
  } catch (error) {
    // Not left empty for the grace to clear: nobody holds it.
    await handle.close().catch(() => {})
    await unlink(lock).catch(() => {})
    throw diskError(error, lock)
  }
  await handle.close()
  return true
}

function readHolder(path: string): Promise<{ pid?: number; host?: string } | undefined> {
  return readFile(path, 'utf8')
    .then(t => JSON.parse(t) as { pid?: number; host?: string })
    .catch(() => undefined)
}

export { isAlive }
