import { randomBytes } from 'node:crypto'
import fs, { constants } from 'node:fs'
import { mkdir, open, rename, rm, stat, unlink } from 'node:fs/promises'
import { hostname } from 'node:os'
import { dirname, join } from 'node:path'
import { FluxError } from './errors'

/** The file-system steps the store is made of: no cache layout here (store.ts owns that), only how to write safely. */

/** What the store names its temp files; the only names it ever deletes from its temp folder. */
export const TEMP_NAME = /^[^~/\\]+~\d+~[0-9a-f]{12}\.tmp$/

/** A temp file's name in `dir`: `<host>~<pid>~<random>.tmp`, so a later run can tell whether its writer is gone. */
export function tempName(dir: string): string {
  return join(dir, `${hostname()}~${process.pid}~${randomBytes(6).toString('hex')}.tmp`)
}

/**
 * Removes the temp files (TEMP_NAME only) a killed writer left in `dir`: its pid is dead on this host, or the file is
 * older than `maxAgeMs` (another host's writer). A folder that takes no writes keeps them: cleaning up is never worth
 * failing a run for. Refuses (FLUX_CACHE_LINK) a `dir` that is a symbolic link. Returns how many were removed.
 */
export async function removeDeadTemp(dir: string, maxAgeMs: number, now: () => number = Date.now): Promise<number> {
  // Checked here, right before the listing it guards: a caller's check at the start of its recovery leaves a window.
  refuseLinks([dir])
  let removed = 0
  for (const name of listSync(dir)) {
    if (!TEMP_NAME.test(name)) continue
    const [host, pid] = name.split('~')
    const path = join(dir, name)
    const age = now() - ((await stat(path).catch(() => undefined))?.mtimeMs ?? now())
    if ((host === hostname() && !isAlive(Number(pid))) || age > maxAgeMs) await rm(path, { force: true }).then(() => removed++, () => {})
  }
  return removed
}

/** Errors that mean the disk takes no more writes: every further paid image would be lost too. */
const DISK_CODES = new Set(['ENOSPC', 'EDQUOT', 'EROFS', 'EACCES'])

/**
 * A folder's names, or none when it cannot be listed (missing). Synchronous: a build's recovery lists a few small
 * folders, and each thread-pool round trip waited behind the scan's batches (a warm 64-image build: recovery ended
 * 8-14 ms after the scan with async listings; bench scenario 2).
 */
export function listSync(dir: string): string[] {
  try {
    return fs.readdirSync(dir)
  } catch {
    return []
  }
}

/**
 * Refuses to work in a folder that is a symbolic link (a committed `.flux-cache/v1/tmp -> ../../src` would have the
 * cache clean up someone else's files). Missing folders are fine: they are created as real ones. Sync lstats (a few
 * µs each), for the same reason as listSync.
 */
export function refuseLinks(dirs: string[]): void {
  for (const dir of dirs) {
    const info = fs.lstatSync(dir, { throwIfNoEntry: false })
    if (info?.isSymbolicLink()) {
      throw new FluxError('FLUX_CACHE_LINK', `the cache folder ${dir} is a symbolic link: flux-assets never works through a link in its cache (it could write or delete files elsewhere). Replace the link with a real folder.`)
    }
  }
}

/**
 * Temp file in `tmp`, fsync, rename into place; the temp file never outlives a failure. A full or read-only disk is
 * a `FLUX_DISK` error naming the file.
 */
export async function writeAtomic(tmp: string, target: string, bytes: Buffer): Promise<void> {
  try {
    await mkdir(tmp, { recursive: true })
    await mkdir(dirname(target), { recursive: true })
    const temp = tempName(tmp)
    let renamed = false
    try {
      const handle = await open(temp, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY)
      try {
        await handle.writeFile(bytes)
        await handle.sync()
      } finally {
        await handle.close()
      }
      renamed = await rename(temp, target).then(
        () => true,
        async (error: NodeJS.ErrnoException) => {
          // Windows refuses to replace a file another process holds; an existing complete entry is success.
          if (!['EEXIST', 'EPERM', 'EBUSY'].includes(error.code ?? '') || !(await stat(target).catch(() => undefined))) throw error
          return false
        },
      )
    } finally {
      // Renamed into place, the temp file is gone: no unlink to wait for on every write.
      if (!renamed) await unlink(temp).catch(() => {})
    }
  } catch (error) {
    throw diskError(error, target)
  }
}

/** A full or read-only disk as a `FLUX_DISK` error naming the file (the run stops buying); anything else as it is. */
export function diskError(error: unknown, path: string): unknown {
  const code = (error as NodeJS.ErrnoException).code ?? ''
  return DISK_CODES.has(code) ? new FluxError('FLUX_DISK', `the cache cannot be written (${code} writing ${path})`) : error
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
