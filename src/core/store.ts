import { randomBytes } from 'node:crypto'
import { constants } from 'node:fs'
import { mkdir, open, readdir, readFile, rename, rm, stat, unlink, utimes } from 'node:fs/promises'
import { hostname } from 'node:os'
import { join } from 'node:path'
import pLimit from 'p-limit'
import { verifyImage } from './image'
import { readImageHeader } from './image-header'
import { CACHE_VERSION, sha256 } from './key'
import { isAlive, KeyLock } from './lock'
import type { CacheHit, CacheRecord, ImageSettings } from './types'

const KEY = /^[0-9a-f]{64}$/
const EXTS = new Set(['png', 'jpg', 'webp'])
/**
 * Entries checked or read at once. Callers ask for thousands together (a build with 20,000 images); unbounded, the
 * opens run out of file descriptors (EMFILE), and a failed read looks like a miss: a placeholder, or a paid image.
 */
const IO_CONCURRENCY = 64

/** What is stored with an image besides its bytes. */
export interface PutMeta {
  prompt: string
  settings: ImageSettings
  responseId?: string
  /** USD the image was estimated to cost; `null`: unknown. */
  cost?: number | null
}

/**
 * The cache: images addressed by cache key, each verified on the way in and on the way out. The engine and the
 * emitters see only this; a remote store would be a second implementation.
 */
export interface Store {
  /** A verified entry, or `undefined` (a broken entry is a miss, never used). */
  get(key: string): Promise<CacheHit | undefined>
  /** The bytes of a hit, checked once more against its sha256; `undefined` when they changed. */
  read(hit: CacheHit): Promise<Buffer | undefined>
  /** Verifies the image, then stores it and its record so that a crash leaves either the whole entry or none. */
  put(key: string, bytes: Buffer, meta: PutMeta): Promise<CacheHit>
  /** Every key with a record. */
  keys(): Promise<string[]>
  /** Removes a key's record and images. */
  remove(key: string): Promise<void>
}

/**
 * The file-system store, addressed by cache key. Layout under `<dir>/v1/`:
 * - `ab/<key>.json`: the record, written last: an entry exists exactly when its record does;
 * - `ab/<key>-<sha16>.<ext>`: the image, named by its own hash, so a record can only ever point at the bytes it describes;
 * - `tmp/`: files being written (moved into place with rename, removed by a later run if their writer died);
 * - `locks/<key>.lock`: who is generating a key right now, across processes and plugin instances.
 */
export class FileStore implements Store {
  readonly root: string
  /** Who is generating which key: lives in the store's folder, but knows nothing of images. */
  readonly locks: KeyLock
  private readonly tmp: string
  private readonly io = pLimit(IO_CONCURRENCY)

  constructor(dir: string) {
    this.root = join(dir, `v${CACHE_VERSION}`)
    this.tmp = join(this.root, 'tmp')
    this.locks = new KeyLock(join(this.root, 'locks'))
  }

  recordPath(key: string): string {
    return join(this.root, key.slice(0, 2), `${key}.json`)
  }

  imagePath(record: Pick<CacheRecord, 'key' | 'sha256' | 'ext'>): string {
    return join(this.root, record.key.slice(0, 2), `${record.key}-${record.sha256.slice(0, 16)}.${record.ext}`)
  }

  /**
   * A verified entry, or `undefined`. Size must match the record; the bytes are re-hashed unless the mtime is the
   * one recorded at write time. A mismatch is a miss and the broken entry is removed, never used.
   */
  get(key: string): Promise<CacheHit | undefined> {
    return this.io(() => this.check(key))
  }

  private async check(key: string): Promise<CacheHit | undefined> {
    if (!KEY.test(key)) return undefined
    const record = await this.readRecord(key)
    if (!record) return undefined
    const file = this.imagePath(record)
    const info = await stat(file).catch(() => undefined)
    if (info?.isFile() && info.size === record.size) {
      // Within a millisecond: a restored mtime comes back a few ns off (float seconds), so an exact match would never recur.
      if (Math.abs(info.mtimeMs - record.mtimeMs) < 1) return { record, file }
      const bytes = await readFile(file).catch(() => undefined)
      if (bytes && sha256(bytes) === record.sha256) {
        // Verified: restore the recorded mtime so the next read can trust it again (a git checkout resets mtimes).
        // In seconds, not a Date: a Date keeps whole ms and often lands 1 ms below, and the next read would re-hash again.
        await utimes(file, info.atime, record.mtimeMs / 1000).catch(() => {})
        return { record, file }
      }
    }
    await this.discard(record)
    return undefined
  }

  /** The bytes of a hit, checked against the record's sha256 once more: what is emitted is what was paid for. */
  read(hit: CacheHit): Promise<Buffer | undefined> {
    return this.io(() => this.readVerified(hit))
  }

  private async readVerified(hit: CacheHit): Promise<Buffer | undefined> {
    const bytes = await readFile(hit.file).catch(() => undefined)
    if (bytes && bytes.length === hit.record.size && sha256(bytes) === hit.record.sha256) return bytes
    // Broken on disk although stat looked right: drop the entry, or every later run would trust it and fail again.
    await this.discard(hit.record)
    return undefined
  }

  /** Verifies the image, then writes it and its record atomically. */
  async put(key: string, bytes: Buffer, meta: PutMeta): Promise<CacheHit> {
    const ext = verifyImage(bytes)
    // The size received, whatever was asked: models size differently (Kontext by aspect ratio).
    const header = readImageHeader(bytes)
    const hash = sha256(bytes)
    const file = this.imagePath({ key, sha256: hash, ext })
    await this.writeAtomic(file, bytes)
    const { mtimeMs } = await stat(file)
    const record: CacheRecord = {
      version: CACHE_VERSION,
      key,
      prompt: meta.prompt,
      settings: meta.settings,
      ext,
      size: bytes.length,
      sha256: hash,
      ...(header ? { width: header.width, height: header.height } : {}),
      ...(meta.cost !== undefined ? { cost: meta.cost } : {}),
      mtimeMs,
      ...(meta.responseId ? { responseId: meta.responseId } : {}),
      createdAt: new Date().toISOString(),
    }
    await this.writeAtomic(this.recordPath(key), Buffer.from(`${JSON.stringify(record, null, 2)}\n`))
    return { record, file }
  }

  /** Every key with a record (verified or not). */
  async keys(): Promise<string[]> {
    const shards = await readdir(this.root).catch(() => [] as string[])
    const keys: string[] = []
    for (const shard of shards.filter(s => /^[0-9a-f]{2}$/.test(s))) {
      for (const name of await readdir(join(this.root, shard)).catch(() => [] as string[])) {
        const key = name.slice(0, -5)
        if (name.endsWith('.json') && KEY.test(key)) keys.push(key)
      }
    }
    return keys.sort()
  }

  /** Removes a key's record and every image file of that key. */
  async remove(key: string): Promise<void> {
    if (!KEY.test(key)) return
    const shard = join(this.root, key.slice(0, 2))
    await rm(this.recordPath(key), { force: true })
    for (const name of await readdir(shard).catch(() => [] as string[])) {
      if (name.startsWith(`${key}-`)) await rm(join(shard, name), { force: true })
    }
  }

  /**
   * Removes temp files whose writer is gone (dead pid on this host, or older than a day): a killed run's half
   * writes. Returns how many were removed.
   */
  async removeOrphanTemp(): Promise<number> {
    let removed = 0
    for (const name of await readdir(this.tmp).catch(() => [] as string[])) {
      const [host, pid] = name.split('~')
      const path = join(this.tmp, name)
      const age = Date.now() - ((await stat(path).catch(() => undefined))?.mtimeMs ?? 0)
      if ((host === hostname() && !isAlive(Number(pid))) || age > 86_400_000) {
        await rm(path, { force: true })
        removed++
      }
    }
    return removed
  }

  /** Drops one broken entry: its image, and its record if no writer has replaced it meanwhile. */
  private async discard(record: CacheRecord): Promise<void> {
    await rm(this.imagePath(record), { force: true })
    const current = await this.readRecord(record.key)
    if (!current || current.sha256 === record.sha256) await rm(this.recordPath(record.key), { force: true })
  }

  private async readRecord(key: string): Promise<CacheRecord | undefined> {
    try {
      const record = JSON.parse(await readFile(this.recordPath(key), 'utf8')) as CacheRecord
      const ok =
        record.version === CACHE_VERSION &&
        record.key === key &&
        KEY.test(record.sha256) &&
        EXTS.has(record.ext) &&
        Number.isSafeInteger(record.size) &&
        record.size > 0 &&
        typeof record.mtimeMs === 'number'
      return ok ? record : undefined
    } catch {
      return undefined
    }
  }

  /** Temp file in the cache's own folder, fsync, rename into place; the temp file never outlives a failure. */
  private async writeAtomic(target: string, bytes: Buffer): Promise<void> {
    await mkdir(this.tmp, { recursive: true })
    await mkdir(join(target, '..'), { recursive: true })
    const temp = join(this.tmp, `${hostname()}~${process.pid}~${randomBytes(6).toString('hex')}.tmp`)
    try {
      const handle = await open(temp, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY)
      try {
        await handle.writeFile(bytes)
        await handle.sync()
      } finally {
        await handle.close()
      }
      await rename(temp, target).catch(async (error: NodeJS.ErrnoException) => {
        // Windows refuses to replace a file another process holds; an existing complete entry is success.
        if (!['EEXIST', 'EPERM', 'EBUSY'].includes(error.code ?? '') || !(await stat(target).catch(() => undefined))) throw error
      })
    } finally {
      await unlink(temp).catch(() => {})
    }
  }
}

