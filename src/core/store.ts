import fs from 'node:fs'
import { readdir, readFile, rm, stat, utimes } from 'node:fs/promises'
import { join } from 'node:path'
import pLimit from 'p-limit'
import { listSync, refuseLinks, removeDeadTemp, writeAtomic } from './cache-fs'
import type { Stats } from 'node:fs'
import { inBatches, readText, statOf, SyncBudget } from './fs-read'
import { verifyImage } from './image'
import { readImageHeader } from './image-header'
import { CACHE_VERSION, sha256 } from './key'
import { KeyLock } from './lock'
import { Roots } from './roots'
import type { CacheHit, CacheRecord, ImageSettings } from './types'

const KEY = /^[0-9a-f]{64}$/
/** A shard folder: the first two hex digits of its keys. */
const SHARD_NAME = /^[0-9a-f]{2}$/
const EXTS = new Set(['png', 'jpg', 'webp'])
/** An image file of the store: `<key>-<sha16>.<ext>`. */
const IMAGE_NAME = /^([0-9a-f]{64})-([0-9a-f]{16})\.(png|jpg|webp)$/
/** A variant file of the store: `<source key>~<variant key>-<sha16>.<webp|avif>`. */
/** How long a folder found real is trusted by `write` before it is checked for a link again. */
const LINK_CHECK_MS = 1000
const VARIANT_NAME = /^([0-9a-f]{64})~([0-9a-f]{64})-([0-9a-f]{16})\.(webp|avif)$/
/** A variant's record: `<source key>~<variant key>.json`. */
const VARIANT_RECORD_NAME = /^([0-9a-f]{64})~([0-9a-f]{64})\.json$/
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

/** Time windows of the store's upkeep; tests shorten them or move the clock instead of sleeping. */
export interface StoreOptions {
  /** An image file without its record is removed once older than this. Default 5 minutes. */
  orphanAgeMs?: number
  /** A lock whose holder stopped refreshing it this long ago is taken over. Default 1 minute. */
  lockStaleMs?: number
  /** How long a run's keys protect their entries from prune. Default 30 days. */
  rootsMaxAgeMs?: number
  now?: () => number
}

/** One entry that failed `verify()`. */
export interface Damaged {
  /** The cache key of the image (for a variant: of its source). */
  key: string
  prompt: string
  reason: string
  /** Set when what was damaged is a web variant of `key`'s image (made again from it by the next build, unpaid). */
  variant?: { key: string; format: VariantMeta['format'] | null; width: number | null }
}

/**
 * The cache: images addressed by cache key, each verified on the way in and on the way out. The engine and the
 * emitters see only this; a remote store would be a second implementation.
 */
export interface Store {
  /** A verified entry, or `undefined` (a broken entry is a miss, never used). */
  get(key: string): Promise<CacheHit | undefined>
  /**
   * The bytes of a hit, checked once more against its sha256 (a file store: unless it hashed that very file before
   * and a stat says it has not changed since); `undefined` when they changed. With `into` (longer than
   * the record's size), read into that buffer and returned as a view of it: valid until the caller reuses `into`.
   * `now`: read with sync calls, the event loop given a turn every few ms (a build's emitter: nothing else waits).
   */
  read(hit: CacheHit, into?: Buffer, now?: boolean): Promise<Buffer | undefined>
  /** Verifies the image, then stores it and its record so that a crash leaves either the whole entry or none. */
  put(key: string, bytes: Buffer, meta: PutMeta): Promise<CacheHit>
  /** Every key with a record. */
  keys(): Promise<string[]>
  /** Removes a key's record and images, and its variants. */
  remove(key: string): Promise<void>
  /** A verified variant of `source` (variants.ts), or `undefined`: a broken one is a miss and is removed. */
  getVariant(source: string, key: string): Promise<VariantHit | undefined>
  /** The bytes of a variant hit, checked once more against its sha256; `undefined` when they changed. */
  readVariant(hit: VariantHit): Promise<Buffer | undefined>
  /** Stores a variant of `source` and its record atomically, beside the source. */
  putVariant(source: string, key: string, bytes: Buffer, meta: VariantMeta): Promise<VariantHit>
}

/** What is stored with a variant besides its bytes. */
export interface VariantMeta {
  /** `blur`: the tiny blurred WebP of the blur placeholder, `color` beside it. */
  format: 'webp' | 'avif' | 'blur'
  width: number
  height: number
  /** The dominant colour (`#rrggbb`), for `blur`. */
  color?: string
}

/** The JSON record of a variant: what it is, what it was made from, and how to verify its bytes. */
export interface VariantRecord extends VariantMeta {
  version: number
  /** The variant key: the source's sha256, the transform and the encoder, hashed (variants.ts). */
  key: string
  /** The cache key of the image it was made from. */
  source: string
  ext: 'webp' | 'avif'
  size: number
  sha256: string
  mtimeMs: number
}

export interface VariantHit {
  record: VariantRecord
  file: string
}

/** The extension of a WebP or AVIF variant by its bytes (WebP whole, by its RIFF length), or `undefined`. */
function variantExt(bytes: Buffer): 'webp' | 'avif' | undefined {
  if (bytes.length >= 12 && bytes.toString('latin1', 0, 4) === 'RIFF' && bytes.toString('latin1', 8, 12) === 'WEBP') return bytes.readUInt32LE(4) + 8 === bytes.length ? 'webp' : undefined
  if (bytes.length >= 12 && bytes.toString('latin1', 4, 8) === 'ftyp' && ['avif', 'avis'].includes(bytes.toString('latin1', 8, 12))) return 'avif'
  return undefined
}

/**
 * The file-system store, addressed by cache key. Layout under `<dir>/v1/`:
 * - `ab/<key>.json`: the record, written last: an entry exists exactly when its record does;
 * - `ab/<key>-<sha16>.<ext>`: the image, named by its own hash, so a record can only ever point at the bytes it describes;
 * - `ab/<key>~<variant key>.json` and `ab/<key>~<variant key>-<sha16>.<webp|avif>`: a web variant of the key's image
 *   (variants.ts), beside its source and written and verified the same way; removed with it;
 * - `tmp/`: files being written (moved into place with rename, removed by a later run if their writer died);
 * - `locks/<key>.lock`: who is generating a key right now, across processes and plugin instances;
 * - `roots/run-….json`: which keys recent runs used (git-ignored), so prune spares them.
 * It never works through a symbolic link in its own folders, and deletes only names it made itself.
 */
export class FileStore implements Store {
  readonly root: string
  /** Who is generating which key: lives in the store's folder, but knows nothing of images. */
  readonly locks: KeyLock
  /** Which keys recent runs used. */
  readonly roots: Roots
  private readonly tmp: string
  private readonly io = pLimit(IO_CONCURRENCY)
  /** Gets asked and not yet looked at (see `drain`). */
  private pending: Array<{ key: string; resolve: (hit: CacheHit | undefined | Promise<CacheHit | undefined>) => void }> = []
  private draining = false
  private readonly orphanAgeMs: number
  private readonly now: () => number
  /**
   * Files whose bytes this store hashed and found right, with what a stat said of them just before they were read:
   * while it still says so (same inode, size, mtime and ctime, which any write or `utimes` moves), they are the same
   * bytes and are not hashed again. Dev serves each image on every page load; a build reads each image once.
   */
  private readonly verified = new Map<string, string>()
  /** `readNow`'s sync reads: at most BATCH_MS of them between two turns of the event loop. */
  private readonly syncBudget = new SyncBudget()
  /** When each folder was last found not to be a link (performance.now() ms), for `write`. */
  private readonly linkChecked = new Map<string, number>()

  constructor(
    private readonly dir: string,
    options: StoreOptions = {},
  ) {
    this.root = join(dir, `v${CACHE_VERSION}`)
    this.tmp = join(this.root, 'tmp')
    this.now = options.now ?? Date.now
    this.orphanAgeMs = options.orphanAgeMs ?? 5 * 60_000
    this.locks = new KeyLock(join(this.root, 'locks'), options.lockStaleMs, this.now)
    this.roots = new Roots(join(this.root, 'roots'), (file, bytes) => this.write(file, bytes), options.rootsMaxAgeMs, this.now)
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
    return new Promise(resolve => {
      this.pending.push({ key, resolve })
      if (!this.draining) {
        this.draining = true
        queueMicrotask(() => void this.drain())
      }
    })
  }

  /**
   * The gets asked so far, with sync calls in batches of at most BATCH_MS (fs-read.ts), the event loop free in
   * between: a plan asks for 20,000 keys at once, and on a 2-core machine the thread pool's round trips cost about
   * three times the calls themselves (bench scenario 3). A trusted entry (record read, image size + mtime as recorded)
   * is answered there; anything else takes `check`'s async path (the re-hash, the discard), bounded by IO_CONCURRENCY.
   */
  private async drain(): Promise<void> {
    while (this.pending.length > 0) {
      const batch = this.pending
      this.pending = []
      await inBatches(batch, ({ key, resolve }) => {
        const quick = this.trusted(key)
        resolve(quick === CHECK ? this.io(() => this.check(key)) : quick)
      })
    }
    this.draining = false
  }

  /** `check`'s fast path, sync: the hit, `undefined` for a key without a usable record (a miss there too), or CHECK. */
  private trusted(key: string): CacheHit | undefined | typeof CHECK {
    if (!KEY.test(key)) return undefined
    let text: string
    try {
      text = fs.readFileSync(this.recordPath(key), 'utf8')
    } catch (error) {
      return (error as NodeJS.ErrnoException).code === 'ENOENT' ? undefined : CHECK
    }
    const record = parseRecord(text, key)
    if (!record) return undefined
    const file = this.imagePath(record)
    try {
      const info = fs.statSync(file, { throwIfNoEntry: false })
      if (info?.isFile() && trusts(info, record)) return { record, file }
    } catch {
      // EACCES and the like: check says what to do with it.
    }
    return CHECK
  }

  private async check(key: string): Promise<CacheHit | undefined> {
    if (!KEY.test(key)) return undefined
    const record = await this.readRecord(key)
    if (!record) return undefined
    const file = this.imagePath(record)
    if (await intact(file, record, this.verified)) return { record, file }
    await this.discard(record)
    return undefined
  }

  /** The bytes of a hit, checked against the record's sha256 once more: what is emitted is what was paid for. */
  read(hit: CacheHit, into?: Buffer, now = false): Promise<Buffer | undefined> {
    if (now) return this.readNow(hit, into)
    return this.io(async () => {
      const seen = await this.seen(hit.file)
      const bytes = await (into && into.length > hit.record.size ? readInto(hit.file, into) : readBytes(hit.file)).catch(() => undefined)
      if (this.accepts(hit, bytes, seen)) return bytes
      // Broken on disk although stat looked right: drop the entry, or every later run would trust it and fail again.
      await this.discard(hit.record)
      return undefined
    })
  }

  /**
   * `read(hit, into, true)`: without the thread pool, for a build's emitter: open, fstat, one read, close as sync
   * calls (a 150 KB image from the page cache takes ~0.1 ms; through the pool each call is a round trip, and a build's
   * main thread has nothing else to do meanwhile: bench scenario 2 saw it idle for 40% of the emit). The same checks
   * as `read()` (`accepts`). The event loop gets a turn every BATCH_MS.
   */
  private async readNow(hit: CacheHit, into?: Buffer): Promise<Buffer | undefined> {
    await this.syncBudget.due()
    let bytes: Buffer | undefined
    let seen = ''
    try {
      const fd = fs.openSync(hit.file, 'r')
      try {
        seen = stamp(fs.fstatSync(fd))
        // One byte more than the record says: a file that grew reads as longer, never cut to fit.
        const buffer = into && into.length > hit.record.size ? into : Buffer.allocUnsafe(hit.record.size + 1)
        bytes = buffer.subarray(0, fs.readSync(fd, buffer, 0, buffer.length, 0))
      } finally {
        fs.closeSync(fd)
      }
    } catch {
      bytes = undefined
    }
    if (this.accepts(hit, bytes, seen)) return bytes
    await this.discard(hit.record)
    return undefined
  }

  /**
   * Whether `bytes`, read from `hit.file` after a stat that said `seen`, are the recorded ones: the size, then the
   * sha256 unless this store hashed the same unchanged file before. Found right, the file is remembered as verified.
   */
  private accepts(hit: { file: string; record: { size: number; sha256: string } }, bytes: Buffer | undefined, seen: string): bytes is Buffer {
    if (!bytes || bytes.length !== hit.record.size) return false
    const known = seen !== '' && this.verified.get(hit.file) === seen
    if (!known && sha256(bytes) !== hit.record.sha256) return false
    if (seen) this.verified.set(hit.file, seen)
    return true
  }

  /**
   * A file's stat as `verified` keeps it, taken before its bytes are read: a change after it (during the read too)
   * moves the ctime, so the next read hashes again. `''`: no such file.
   */
  private async seen(file: string): Promise<string> {
    const info = await statOf(file).catch(() => undefined)
    return info ? stamp(info) : ''
  }

  /** Verifies the image, then writes it and its record atomically. */
  async put(key: string, bytes: Buffer, meta: PutMeta): Promise<CacheHit> {
    const ext = verifyImage(bytes)
    // The size received, whatever was asked: models size differently (Kontext by aspect ratio).
    const header = readImageHeader(bytes)
    const hash = sha256(bytes)
    const file = this.imagePath({ key, sha256: hash, ext })
    await this.write(file, bytes)
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
    await this.write(this.recordPath(key), Buffer.from(`${JSON.stringify(record, null, 2)}\n`))
    return { record, file }
  }

  /** Every key with a record (verified or not). */
  async keys(): Promise<string[]> {
    const keys: string[] = []
    for (const shard of await this.shards()) {
      for (const name of await readdir(join(this.root, shard)).catch(() => [] as string[])) {
        const key = name.slice(0, -5)
        if (name.endsWith('.json') && KEY.test(key)) keys.push(key)
      }
    }
    return keys.sort()
  }

  /** The record of a key, unverified (for listing), or `undefined`. */
  info(key: string): Promise<CacheRecord | undefined> {
    return KEY.test(key) ? this.readRecord(key) : Promise.resolve(undefined)
  }

  /** Removes a key's record, every image file of that key, and its variants (their fate is their source's). */
  async remove(key: string): Promise<void> {
    if (!KEY.test(key)) return
    const shard = join(this.root, key.slice(0, 2))
    refuseLinks([...this.folders(), shard])
    await rm(this.recordPath(key), { force: true })
    for (const name of await readdir(shard).catch(() => [] as string[])) {
      if (name.startsWith(`${key}-`) || name.startsWith(`${key}~`)) await rm(join(shard, name), { force: true })
    }
  }

  variantRecordPath(source: string, key: string): string {
    return join(this.root, source.slice(0, 2), `${source}~${key}.json`)
  }

  variantPath(record: Pick<VariantRecord, 'source' | 'key' | 'sha256' | 'ext'>): string {
    return join(this.root, record.source.slice(0, 2), `${record.source}~${record.key}-${record.sha256.slice(0, 16)}.${record.ext}`)
  }

  getVariant(source: string, key: string): Promise<VariantHit | undefined> {
    return this.io(async () => {
      if (!KEY.test(source) || !KEY.test(key)) return undefined
      const record = await this.readVariantRecord(source, key)
      if (!record) return undefined
      const file = this.variantPath(record)
      if (await intact(file, record, this.verified)) return { record, file }
      await this.discardVariant(record)
      return undefined
    })
  }

  readVariant(hit: VariantHit): Promise<Buffer | undefined> {
    return this.io(async () => {
      const seen = await this.seen(hit.file)
      const bytes = await readFile(hit.file).catch(() => undefined)
      if (this.accepts(hit, bytes, seen)) return bytes
      await this.discardVariant(hit.record)
      return undefined
    })
  }

  async putVariant(source: string, key: string, bytes: Buffer, meta: VariantMeta): Promise<VariantHit> {
    const ext = variantExt(bytes)
    if (!ext || !KEY.test(source) || !KEY.test(key)) throw new Error(`flux-assets: refusing to store a variant that is not a whole WebP or AVIF image (${bytes.length} bytes)`)
    const hash = sha256(bytes)
    const file = this.variantPath({ source, key, sha256: hash, ext })
    await this.write(file, bytes)
    const { mtimeMs } = await stat(file)
    const record: VariantRecord = { version: CACHE_VERSION, key, source, ...meta, ext, size: bytes.length, sha256: hash, mtimeMs }
    await this.write(this.variantRecordPath(source, key), Buffer.from(`${JSON.stringify(record, null, 2)}\n`))
    return { record, file }
  }

  private async discardVariant(record: VariantRecord): Promise<void> {
    this.verified.delete(this.variantPath(record))
    await rm(this.variantPath(record), { force: true })
    const current = await this.readVariantRecord(record.source, record.key)
    if (!current || current.sha256 === record.sha256) await rm(this.variantRecordPath(record.source, record.key), { force: true })
  }

  private async readVariantRecord(source: string, key: string): Promise<VariantRecord | undefined> {
    try {
      const record = JSON.parse(await readText(this.variantRecordPath(source, key))) as VariantRecord
      const ok =
        record.version === CACHE_VERSION &&
        record.key === key &&
        record.source === source &&
        KEY.test(record.sha256) &&
        (record.ext === 'webp' || record.ext === 'avif') &&
        Number.isSafeInteger(record.size) &&
        record.size > 0 &&
        Number.isSafeInteger(record.width) &&
        Number.isSafeInteger(record.height) &&
        typeof record.mtimeMs === 'number'
      return ok ? record : undefined
    } catch {
      return undefined
    }
  }

  /**
   * What a killed run left behind, once per engine and by prune: temp files whose writer is gone (dead pid on this
   * host, or older than a day), image files without their record older than `orphanAgeMs`, locks whose holder died.
   * Refuses (FLUX_CACHE_LINK) to work in a cache whose folders are links. Returns how many files were removed.
   */
  async recover(): Promise<number> {
    refuseLinks(this.folders())
    // Temp files of a writer that died (or of another host's, after a day).
    let removed = await removeDeadTemp(this.tmp, 86_400_000, this.now)
    // One listing of each shard serves both sweeps: recover() runs at the start of every build. The listings are sync
    // (cache-fs listSync), in batches (fs-read.ts): the scan runs alongside.
    const listed: Array<[string, string[]]> = []
    await inBatches(await this.shards(), shard => void listed.push([join(this.root, shard), listSync(join(this.root, shard))]))
    for (const [dir, names] of listed) removed += (await this.removeOrphanImages(dir, names)) + (await this.removeOrphanVariants(dir, names))
    return removed + (await this.locks.sweep())
  }

  /**
   * Image files no record points at (a run killed between writing an image and its record, or an entry replaced
   * meanwhile), once older than `orphanAgeMs`: a writer in progress is younger. A record is read only when its key
   * has more than one image file.
   */
  private async removeOrphanImages(dir: string, names: string[]): Promise<number> {
    let removed = 0
    const records = new Set(names.filter(n => n.endsWith('.json')).map(n => n.slice(0, -5)))
    const images = names.map(n => IMAGE_NAME.exec(n)).filter(m => m !== null)
    // Image files per key, counted once (a filter per image was quadratic: 20,000 images, ~80 a shard).
    const perKey = new Map<string, number>()
    for (const m of images) perKey.set(m[1]!, (perKey.get(m[1]!) ?? 0) + 1)
    for (const [name, key, sha16] of images) {
      let orphan = !records.has(key!)
      if (!orphan && perKey.get(key!)! > 1) orphan = (await this.readRecord(key!))?.sha256.slice(0, 16) !== sha16
      if (!orphan) continue
      const info = await stat(join(dir, name)).catch(() => undefined)
      if (info && this.now() - info.mtimeMs > this.orphanAgeMs) await rm(join(dir, name), { force: true }).then(() => removed++, () => {})
    }
    return removed
  }

  /**
   * Variant files no variant record points at (a run killed between a variant and its record), and variants whose
   * source record is gone (their source was removed or discarded as damaged: nothing will ever ask for them), once
   * older than `orphanAgeMs`: a writer in progress is younger. Only names `putVariant` makes.
   */
  private async removeOrphanVariants(dir: string, names: string[]): Promise<number> {
    let removed = 0
    const old = async (path: string) => {
      const info = await stat(path).catch(() => undefined)
      return !!info && this.now() - info.mtimeMs > this.orphanAgeMs
    }
    const sources = new Set(names.filter(n => n.endsWith('.json') && KEY.test(n.slice(0, -5))).map(n => n.slice(0, -5)))
    const records = new Set(names.filter(n => VARIANT_RECORD_NAME.test(n)).map(n => n.slice(0, -5)))
    const files = names.map(n => VARIANT_NAME.exec(n)).filter(m => m !== null)
    // Files per variant key, counted once (as for the images: a filter per file is quadratic in the shard).
    const perKey = new Map<string, number>()
    for (const m of files) perKey.set(`${m[1]}~${m[2]}`, (perKey.get(`${m[1]}~${m[2]}`) ?? 0) + 1)
    for (const name of names.filter(n => VARIANT_RECORD_NAME.test(n))) {
      if (sources.has(name.slice(0, 64)) || !(await old(join(dir, name)))) continue
      await rm(join(dir, name), { force: true }).then(() => (records.delete(name.slice(0, -5)), removed++), () => {})
    }
    for (const [name, source, key, sha16] of files) {
      const id = `${source}~${key}`
      let orphan = !sources.has(source!) || !records.has(id)
      if (!orphan && perKey.get(id)! > 1) orphan = (await this.readVariantRecord(source!, key!))?.sha256.slice(0, 16) !== sha16
      if (orphan && (await old(join(dir, name)))) await rm(join(dir, name), { force: true }).then(() => removed++, () => {})
    }
    return removed
  }

  /**
   * Re-hashes every entry (size, sha256, and the image's structure), removing the damaged ones. Returns how many were
   * checked and the damaged ones.
   */
  async verify(): Promise<{ checked: number; variants: number; damaged: Damaged[] }> {
    const keys = await this.keys()
    const damaged: Damaged[] = []
    const prompts = new Map<string, string>()
    await Promise.all(
      keys.map(key =>
        this.io(async () => {
          const record = await this.readRecord(key)
          if (!record) return void damaged.push({ key, prompt: '', reason: 'the record cannot be read' })
          const bytes = await readFile(this.imagePath(record)).catch(() => undefined)
          let reason = !bytes ? 'the image file is missing' : bytes.length !== record.size ? `the image has ${bytes.length} bytes, the record says ${record.size}` : sha256(bytes) !== record.sha256 ? 'the image bytes do not match their sha256' : undefined
          if (!reason) {
            try {
              verifyImage(bytes!, { minSide: 1 })
            } catch (error) {
              reason = (error as Error).message
            }
          }
          if (!reason) return void prompts.set(key, record.prompt)
          damaged.push({ key, prompt: record.prompt, reason })
          await this.discard(record)
        }),
      ),
    )
    const variants = await this.verifyVariants(prompts, damaged)
    return { checked: keys.length, variants, damaged: damaged.sort((a, b) => a.key.localeCompare(b.key) || (a.variant ? 1 : 0) - (b.variant ? 1 : 0)) }
  }

  /**
   * Re-hashes every variant (size, sha256, a whole WebP or AVIF), removing the damaged ones (and an unreadable
   * record with its files): the next build makes them again from their source, never paying for it. Variants of a
   * source that is gone are left to recover(). Returns how many were checked.
   */
  private async verifyVariants(prompts: ReadonlyMap<string, string>, damaged: Damaged[]): Promise<number> {
    const names = (await Promise.all((await this.shards()).map(async shard => (await readdir(join(this.root, shard)).catch(() => [] as string[])).map(n => [shard, n] as const)))).flat()
    const records = names.filter(([, n]) => VARIANT_RECORD_NAME.test(n))
    await Promise.all(
      records.map(([shard, name]) =>
        this.io(async () => {
          const [source, key] = [name.slice(0, 64), name.slice(65, 129)]
          const record = await this.readVariantRecord(source, key)
          const prompt = prompts.get(source) ?? ''
          if (!record) {
            damaged.push({ key: source, prompt, reason: 'a variant record cannot be read', variant: { key, format: null, width: null } })
            // Its record and every file of that variant key: names putVariant made.
            for (const [s, n] of names) if (s === shard && n.startsWith(`${source}~${key}`)) await rm(join(this.root, s, n), { force: true }).catch(() => {})
            return
          }
          const bytes = await readFile(this.variantPath(record)).catch(() => undefined)
          const reason = !bytes ? 'the file is missing' : bytes.length !== record.size ? `it has ${bytes.length} bytes, the record says ${record.size}` : sha256(bytes) !== record.sha256 ? 'its bytes do not match their sha256' : variantExt(bytes) !== record.ext ? `it is not a whole ${record.ext.toUpperCase()} image` : undefined
          if (!reason) return
          const what = record.format === 'blur' ? 'its blur image' : `its ${record.format} variant at ${record.width}w`
          damaged.push({ key: source, prompt, reason: `${what}: ${reason}`, variant: { key, format: record.format, width: record.width } })
          await this.discardVariant(record).catch(() => {})
        }),
      ),
    )
    return records.length
  }

  /**
   * Drops one broken entry: its image, and its record if no writer has replaced it meanwhile. On a read-only cache
   * it stays on disk, and is still just a miss.
   */
  private async discard(record: CacheRecord): Promise<void> {
    this.verified.delete(this.imagePath(record))
    try {
      await rm(this.imagePath(record), { force: true })
      const current = await this.readRecord(record.key)
      if (!current || current.sha256 === record.sha256) await rm(this.recordPath(record.key), { force: true })
    } catch {
      // EROFS, EACCES: nothing to do about it here; the entry is not used either way.
    }
  }

  private async readRecord(key: string): Promise<CacheRecord | undefined> {
    try {
      return parseRecord(await readText(this.recordPath(key)), key)
    } catch {
      return undefined
    }
  }

  /**
   * Every write of the store: the cache's folders checked for links, then temp file, fsync, rename. A folder found
   * real is looked at again after LINK_CHECK_MS, not on every write: a cold run writes two files an image, and the six
   * lstats each took more of the main thread than the write itself (bench scenario 1's profile). recover() and
   * remove() still check every time; a check is a moment's truth either way (the folder can change right after it).
   */
  private async write(target: string, bytes: Buffer): Promise<void> {
    const now = performance.now()
    const due = [...this.folders(), join(target, '..')].filter(dir => !(now - (this.linkChecked.get(dir) ?? -Infinity) < LINK_CHECK_MS))
    refuseLinks(due)
    for (const dir of due) this.linkChecked.set(dir, now)
    await writeAtomic(this.tmp, target, bytes)
  }

  /** The store's own folders, from the cache folder down (shards aside). */
  private folders(): string[] {
    return [this.dir, this.root, this.tmp, join(this.root, 'locks'), join(this.root, 'roots')]
  }

  /**
   * Whether the cache holds no entry at all (no folder yet, or no shard in it): a fresh clone, a first CI run. Then
   * every key is a miss before plan looks. One synchronous listing of the cache folder.
   */
  holdsNothing(): boolean {
    try {
      return !fs.readdirSync(this.root).some(name => SHARD_NAME.test(name))
    } catch (error) {
      return (error as NodeJS.ErrnoException).code === 'ENOENT'
    }
  }

  /** The shard folders (`ab/`) that are real folders. */
  private async shards(): Promise<string[]> {
    const entries = await readdir(this.root, { withFileTypes: true }).catch(() => [])
    return entries.filter(e => e.isDirectory() && SHARD_NAME.test(e.name)).map(e => e.name)
  }
}

/**
 * A file's bytes read into `into`, as a view of it. `into` is longer than the file should be, so a file that grew is
 * seen as longer, not cut to fit. Over fs's callback API, as readBytes: no FileHandle, one promise per file.
 */
function readInto(file: string, into: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    fs.open(file, 'r', (openError, fd) => {
      if (openError) return reject(openError)
      // One read: a regular file's short read is its end (POSIX), so no second call is needed to be told so.
      fs.read(fd, into, 0, into.length, 0, (readError, n) =>
        fs.close(fd, closeError => (readError || closeError ? reject(readError ?? closeError) : resolve(into.subarray(0, n)))),
      )
    })
  })
}

/**
 * A whole file's bytes through fs's callback readFile: `fs/promises`' readFile goes through a FileHandle (open, fstat,
 * read, close, each its own promise), which costs the emit of 300 images tens of ms of main-thread time (bench
 * scenario 2); same bytes, same errors.
 */
function readBytes(file: string): Promise<Buffer> {
  return new Promise((resolve, reject) => fs.readFile(file, (error, bytes) => (error ? reject(error) : resolve(bytes))))
}

/** What `FileStore.verified` keeps of a stat: the inode, size, mtime and ctime. */
function stamp(info: Stats): string {
  return `${info.ino}:${info.size}:${info.mtimeMs}:${info.ctimeMs}`
}

/**
 * Whether a file is the one its record describes: its size, then its recorded mtime trusted, or its stat unchanged
 * since this store hashed it (`verified`), else its bytes re-hashed (and the recorded mtime put back, so the next read
 * can trust it again: a git checkout resets mtimes; a read-only cache cannot, and `verified` spares it the next hash).
 */
async function intact(file: string, record: { size: number; mtimeMs: number; sha256: string }, verified: Map<string, string>): Promise<boolean> {
  const info = await statOf(file).catch(() => undefined)
  if (!info?.isFile() || info.size !== record.size) return false
  if (trusts(info, record)) return true
  if (verified.get(file) === stamp(info)) return true
  const bytes = await readFile(file).catch(() => undefined)
  if (!bytes || sha256(bytes) !== record.sha256) return false
  verified.set(file, stamp(info))
  // In seconds, not a Date: a Date keeps whole ms and often lands 1 ms below, and the next read would re-hash again.
  await utimes(file, info.atime, record.mtimeMs / 1000).catch(() => {})
  return true
}

/** A get the sync path cannot answer alone. */
const CHECK = Symbol('check')

/** A record's text → the record when it is one of `key`'s, or `undefined` (a miss). */
function parseRecord(text: string, key: string): CacheRecord | undefined {
  try {
    const record = JSON.parse(text) as CacheRecord
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

/** Whether a stat of the image lets the record be trusted without a re-hash: its size, and its mtime as recorded. */
function trusts(info: { size: number; mtimeMs: number }, record: { size: number; mtimeMs: number }): boolean {
  // Within a millisecond: a restored mtime comes back a few ns off (float seconds), so an exact match would never recur.
  return info.size === record.size && Math.abs(info.mtimeMs - record.mtimeMs) < 1
}
