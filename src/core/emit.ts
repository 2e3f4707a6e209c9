import { FluxError } from './errors'
import { PLACEHOLDER_COLOR, placeholderSvg } from './placeholder'
import { sha256 } from './key'
import type { Store } from './store'
import type { AssetRecord, CacheHit } from './types'
import type { VariantHit } from './store'
import type { Blur, Variant, VariantSet } from './variants'

/** One image as the bundle ships it. */
export interface OutputImage {
  key: string
  /** Path relative to the output dir, content-hashed: `assets/<id-slug>-<hash8>.<ext>`. */
  fileName: string
  /** What the bundler's emitFile returned (Rollup-like bundlers: a reference for `import.meta.ROLLUP_FILE_URL_`). */
  ref?: string
  /** Its size in bytes. */
  bytes: number
}

/** One file of a record's `<picture>`: a web variant, or the original (or placeholder SVG) that is the fallback. */
export interface PictureFile {
  format: 'webp' | 'avif' | 'jpeg' | 'png' | 'svg'
  width: number
  height: number
  image: OutputImage
}

/** What a record ships: its original (the fallback `src`), its web variants, the fallback last, and its blur. */
export interface Picture {
  src: OutputImage
  /** The web variants in the order of `formats` then `widths`, then the fallback. */
  files: PictureFile[]
  blur: Blur | null
}

/** How a build ships files: the bundler's own emitFile and asset URLs (Vite base, webpack publicPath). */
export interface BuildOutput {
  /** Folder of emitted images, relative to the output dir. */
  assetsDir: string
  /**
   * Emits a file at `fileName` (relative to the output dir); returns the bundler's reference, if it has one. An image
   * also has its `name` (`<id-slug>.<ext>`): a bundler that names assets by its own rules (Rollup-likes'
   * `assetFileNames`) emits by name instead, and its reference then gives the final file name.
   */
  emitFile(file: { fileName: string; name?: string }, source: string | Uint8Array): string | undefined
  /**
   * The bundler copies an asset's bytes inside emitFile (Rolldown, so Vite 8: its binding turns the Uint8Array into a
   * Rust Vec there): the emitter may then read images into a few reused buffers. Rollup, webpack and the others keep
   * the buffer they are given, so each image needs its own.
   */
  copiesSources?: boolean
  /** The manifest is left to the caller (the bundler names the files only after the build's start): see manifest(). */
  deferManifest?: boolean
  /** The JS expression that evaluates to an emitted image's URL in the bundle. */
  url(image: OutputImage): string
}

/** `[a-z0-9-]` only, never empty, at most 40 characters: an id is a label, never a path. */
export function slug(id: string): string {
  const s = id
    .normalize('NFKD')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 40)
    .replace(/-+$/, '')
  return s || 'asset'
}

/**
 * One build's emitted images: each key emitted once (a promise, so concurrent callers share one emit), from the
 * cached bytes verified once more against their sha256, or a placeholder SVG. A new build gets a new Emitter.
 */
/**
 * Makes an image again when its cached bytes turned out damaged at emit time (bit rot behind a trusted mtime): the
 * record as it is now (regenerated, or a placeholder when offline) and its entry, if it has one.
 */
export type Repair = (record: AssetRecord) => Promise<{ record: AssetRecord; hit?: CacheHit }>

export class Emitter {
  private readonly images = new Map<string, Promise<OutputImage>>()
  /** Web variants emitted this build, by variant key. */
  private readonly variants = new Map<string, Promise<OutputImage>>()

  /** Read buffers reused across images where the bundler copies what it is given (BuildOutput.copiesSources). */
  private readonly scratch = new Scratch(SCRATCH_BUFFERS)

  constructor(
    private readonly store: Store,
    private readonly repair?: Repair,
  ) {}

  /** The shippable image of a record; `hit` is the entry the engine already verified, if any. */
  image(record: AssetRecord, out: BuildOutput, hit?: CacheHit): Promise<OutputImage> {
    let image = this.images.get(record.key)
    if (!image) this.images.set(record.key, (image = this.emit(record, out, hit)))
    return image
  }

  /**
   * A record's picture: its image (above) as the fallback, after the web variants `set` holds (variants.ts made or
   * found them in the cache), each emitted once per build, by name like the originals. A placeholder has one file:
   * its SVG, and a flat blur colour.
   */
  async picture(record: AssetRecord, out: BuildOutput, set: VariantSet, hit?: CacheHit, remake?: (variant: Variant) => Promise<VariantHit>): Promise<Picture> {
    const src = await this.image(record, out, hit)
    const fallback: PictureFile = { format: formatOf(src.fileName), width: record.width, height: record.height, image: src }
    if (record.placeholder) return { src, files: [fallback], blur: placeholderBlur(record.width, record.height) }
    const files = await Promise.all(
      set.variants.map(async v => {
        let image = this.variants.get(v.hit.record.key)
        if (!image) this.variants.set(v.hit.record.key, (image = this.emitVariant(record, v, out, remake)))
        return { format: v.format, width: v.width, height: v.height, image: await image }
      }),
    )
    return { src, files: [...files, fallback], blur: set.blur }
  }

  private async emitVariant(record: AssetRecord, variant: Variant, out: BuildOutput, remake?: (variant: Variant) => Promise<VariantHit>): Promise<OutputImage> {
    const { width } = variant
    let hit = variant.hit
    let bytes = await this.store.readVariant(hit)
    // Broken on disk although its size and mtime looked right (readVariant has removed it): made again from the
    // source, which costs an encode, never an API call.
    if (!bytes && remake) bytes = await this.store.readVariant((hit = await remake(variant)))
    const ext = hit.record.ext
    if (!bytes) throw new FluxError('FLUX_CACHE_CHANGED', `${record.script}: ${record.id}: a cached ${ext} variant changed on disk during the build; run the build again`)
    const dir = out.assetsDir.replace(/^\/+|\/+$/g, '')
    const name = `${slug(record.id)}-${width}.${ext}`
    const fileName = `${dir ? `${dir}/` : ''}${slug(record.id)}-${width}-${hit.record.sha256.slice(0, 8)}.${ext}`
    return { key: hit.record.key, fileName, bytes: bytes.length, ref: out.emitFile({ fileName, name }, bytes) }
  }

  private async emit(record: AssetRecord, out: BuildOutput, known?: CacheHit): Promise<OutputImage> {
    const hit = record.file ? (known ?? (await this.store.get(record.key))) : undefined
    if (!hit || !out.copiesSources) return this.emitFrom(record, out, hit)
    // One image at a time per buffer: read, hashed, handed over, and the buffer is free for the next one.
    const buffer = await this.scratch.take(hit.record.size + 1)
    try {
      return await this.emitFrom(record, out, hit, buffer)
    } finally {
      this.scratch.give(buffer)
    }
  }

  private async emitFrom(record: AssetRecord, out: BuildOutput, hit: CacheHit | undefined, scratch?: Buffer): Promise<OutputImage> {
    let source: Uint8Array | string
    let ext: string
    // read() checks the bytes against the record's size and sha256 once more: a broken file is never shipped. With sync
    // calls (`now`): in a build the main thread would only wait for the thread pool (bench scenario 2).
    let bytes = hit && (await this.store.read(hit, scratch, true))
    if (record.file && !bytes && this.repair) {
      // The entry was damaged on disk (read() has dropped it): made again once, or a placeholder (offline).
      ;({ record, hit } = await this.repair(record))
      bytes = hit && (await this.store.read(hit, scratch && scratch.length > hit.record.size ? scratch : undefined, true))
    }
    if (bytes) {
      source = bytes
      ext = hit!.record.ext
    } else {
      if (record.file && !this.repair) throw new FluxError('FLUX_CACHE_CHANGED', `${record.script}: ${record.id}: the cached image changed on disk during the build; run the build again`)
      source = placeholderSvg(record.id, record.prompt, record.width, record.height, record.error ?? 'the cached image was damaged on disk')
      ext = 'svg'
    }
    const dir = out.assetsDir.replace(/^\/+|\/+$/g, '')
    // A cached image's hash is its record's: read() has just checked the bytes against it.
    const hash = bytes ? hit!.record.sha256 : sha256(source)
    const fileName = `${dir ? `${dir}/` : ''}${slug(record.id)}-${hash.slice(0, 8)}.${ext}`
    // The bytes are the bundler's from here: keeping them (for the rest of the build) would hold every image twice.
    const size = typeof source === 'string' ? Buffer.byteLength(source) : source.byteLength
    return { key: record.key, fileName, bytes: size, ref: out.emitFile({ fileName, name: `${slug(record.id)}.${ext}` }, source) }
  }
}

/** Images read at once where the buffers are reused: enough to keep the disk and the hash busy, few enough to weigh nothing. */
const SCRATCH_BUFFERS = 4

/** At most `max` buffers, each grown to the largest size asked of it; take() waits while all are out. */
class Scratch {
  private readonly free: Buffer[] = []
  private readonly waiting: Array<(buffer: Buffer) => void> = []
  private made = 0

  constructor(private readonly max: number) {}

  async take(size: number): Promise<Buffer> {
    let buffer = this.free.pop() ?? (this.made < this.max ? (this.made++, Buffer.alloc(0)) : await new Promise<Buffer>(resolve => this.waiting.push(resolve)))
    if (buffer.length < size) buffer = Buffer.allocUnsafeSlow(Math.max(size, buffer.length * 2))
    return buffer
  }

  give(buffer: Buffer): void {
    const next = this.waiting.shift()
    if (next) next(buffer)
    else this.free.push(buffer)
  }
}

function formatOf(fileName: string): PictureFile['format'] {
  const ext = fileName.slice(fileName.lastIndexOf('.') + 1)
  return ext === 'jpg' ? 'jpeg' : (ext as PictureFile['format'])
}

/** A placeholder's blur: its flat background colour, and that colour as a tiny SVG data URL. */
export function placeholderBlur(width: number, height: number): Blur {
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}"><rect width="100%" height="100%" fill="${PLACEHOLDER_COLOR}"/></svg>`
  return { color: PLACEHOLDER_COLOR, dataURL: `data:image/svg+xml,${encodeURIComponent(svg)}` }
}
