import { FluxError } from './errors'
import { placeholderSvg } from './placeholder'
import { sha256 } from './key'
import type { Store } from './store'
import type { AssetRecord, CacheHit } from './types'

/** One image as the bundle ships it. */
export interface OutputImage {
  key: string
  /** Path relative to the output dir, content-hashed: `assets/<id-slug>-<hash8>.<ext>`. */
  fileName: string
  /** What the bundler's emitFile returned (Rollup-like bundlers: a reference for `import.meta.ROLLUP_FILE_URL_`). */
  ref?: string
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

  /** The file name of each record's image, by key (`fileOf`: the bundler's final name); every record must have been emitted. */
  async fileNames(records: AssetRecord[], fileOf: (image: OutputImage) => string = image => image.fileName): Promise<Map<string, string>> {
    return new Map(await Promise.all(records.map(async r => [r.key, fileOf(await this.images.get(r.key)!)] as const)))
  }

  private async emit(record: AssetRecord, out: BuildOutput, known?: CacheHit): Promise<OutputImage> {
    let source: Uint8Array | string
    let ext: string
    let hit = record.file ? (known ?? (await this.store.get(record.key))) : undefined
    // read() checks the bytes against the record's size and sha256 once more: a broken file is never shipped.
    let bytes = hit && (await this.store.read(hit))
    if (record.file && !bytes && this.repair) {
      // The entry was damaged on disk (read() has dropped it): made again once, or a placeholder (offline).
      ;({ record, hit } = await this.repair(record))
      bytes = hit && (await this.store.read(hit))
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
    return { key: record.key, fileName, ref: out.emitFile({ fileName, name: `${slug(record.id)}.${ext}` }, source) }
  }
}
