import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { availableParallelism } from 'node:os'
import { dirname, join } from 'node:path'
import pLimit from 'p-limit'
import { FluxError } from './errors'
import { canonicalJson, sha256 } from './key'
import type { GenerateHooks } from './engine'
import type { Store, VariantHit } from './store'
import type { AssetRequest, CacheHit, TransformSettings, VariantFormat } from './types'

/**
 * The variants stage, between the store and emit: given a verified cache entry and the transform settings, the web
 * variants of its image (each format at each width) and its blur placeholder, read from the cache or made with sharp
 * and written through the Store. sharp is imported only here, and only when something must be made: a warm build
 * and `formats: []` never load it.
 */

/** Width of the blurred placeholder image; its height keeps the image's aspect ratio. */
export const BLUR_WIDTH = 16
/** The blurred placeholder's WebP quality: a handful of pixels the browser scales up, so a few hundred bytes. */
const BLUR_QUALITY = 40
/** Gaussian sigma applied to the small image, so that the browser's upscaling shows soft colour fields, not blocks. */
const BLUR_SIGMA = 0.8

export const MIME: Record<VariantFormat, string> = { webp: 'image/webp', avif: 'image/avif' }

/** One variant to make: a format at a size. */
export interface Target {
  format: VariantFormat
  width: number
  height: number
  quality: number
}

/** A variant as a build ships it. */
export interface Variant extends Target {
  /** Its size in bytes. */
  bytes: number
  hit: VariantHit
}

export interface Blur {
  /** The image's dominant colour, `#rrggbb`. */
  color: string
  /** A tiny blurred WebP of the image (well under 1 KB), as a `data:` URL for `background-image`. */
  dataURL: string
}

export interface VariantSet {
  /** In the order of `formats`, then of `widths`. */
  variants: Variant[]
  /** `null`: `blur: false`, or no variants at all (`formats: []`). */
  blur: Blur | null
}

/**
 * The sizes made of a `width`×`height` image: each width asked for, never over the image's own (such a width becomes
 * the image's own), or just the image's own when none is asked for. Heights keep the aspect ratio, rounded.
 */
export function targetsOf(width: number, height: number, t: TransformSettings): Target[] {
  const widths = t.widths.length ? [...new Set(t.widths.map(w => Math.min(w, width)))] : [width]
  return t.formats.flatMap(format => widths.map(w => ({ format, width: w, height: heightAt(width, height, w), quality: t.quality[format] })))
}

const heightAt = (width: number, height: number, w: number) => (w === width ? height : Math.max(1, Math.round((height * w) / width)))

let encoder: string | undefined
/**
 * The encoder's version, part of every variant key: sharp's version, which pins the libvips its prebuilt binaries
 * carry (`@img/sharp-libvips-*` at an exact version). Read from sharp's package.json, so a warm build never loads sharp.
 */
export function encoderVersion(): string {
  if (encoder) return encoder
  const require = createRequire(import.meta.url)
  // sharp does not export its package.json: find it above its entry point.
  let dir = dirname(require.resolve('sharp'))
  for (let i = 0; i < 4; i++, dir = dirname(dir)) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string; config?: { libvips?: string } }
      if (pkg.name === 'sharp') return (encoder = `sharp@${pkg.version} libvips${pkg.config?.libvips ?? ''}`)
    } catch {
      // not this folder
    }
  }
  throw new FluxError('FLUX_NO_SHARP', 'flux-assets: sharp is installed without its package.json; reinstall it (npm install sharp)')
}

/** A variant's cache key: the source image's sha256, what is made of it, and the encoder. */
export function variantKey(sourceSha256: string, target: Target | { format: 'blur'; width: number; height: number }, encoderId = encoderVersion()): string {
  return sha256(canonicalJson({ v: 1, source: sourceSha256, ...target, encoder: encoderId }))
}

type Sharp = typeof import('sharp').default
let sharpModule: Promise<Sharp> | undefined
/** sharp, imported on first use (a native module: ~30 MB of libvips). */
function loadSharp(): Promise<Sharp> {
  return (sharpModule ??= import('sharp').then(m => m.default))
}

export interface VariantsHooks {
  /** Called after each encode (a variant or a blur image made, not read from the cache): tests count them. */
  onEncode?: (target: { format: VariantFormat | 'blur'; width: number }) => void
  /** Encodes at once. Default: the machine's cores (sharp runs each on libuv's pool, off the main thread). */
  concurrency?: number
}

/**
 * The variants of verified cache entries. Concurrent callers of one image and transform share one piece of work;
 * `reset()` forgets what was found (a new build looks again, so a variant damaged since is made again).
 */
export class Variants {
  private readonly work = new Map<string, Promise<VariantSet>>()
  private readonly limit: ReturnType<typeof pLimit>
  /**
   * Images decoded at once (each holds its raw pixels, 2.4 MB at 1024×768, until its variants are made): as many as
   * encodes, so a cold build of 100 images holds a few decodes, not 100.
   */
  private readonly decodes: ReturnType<typeof pLimit>

  constructor(
    private readonly store: Store,
    private readonly hooks: VariantsHooks = {},
  ) {
    this.limit = pLimit(hooks.concurrency ?? availableParallelism())
    this.decodes = pLimit(hooks.concurrency ?? availableParallelism())
  }

  /** Pieces of work (of() or one()) not yet settled. */
  private readonly running = new Set<Promise<unknown>>()

  reset(): void {
    this.work.clear()
  }

  /**
   * The variants of `hit` made by `transform`: from the cache, or made now from one decode of the source. `signal`
   * (the first caller's) stops what has not started yet: a decode or an encode waiting for its turn rejects with its
   * reason instead; one under way finishes (sharp cannot be interrupted). A failed piece of work is forgotten, so a
   * later caller (emit) tries again and sees the error itself; it is never left unhandled.
   */
  of(hit: CacheHit, transform: TransformSettings, signal?: AbortSignal): Promise<VariantSet> {
    if (!transform.formats.length) return Promise.resolve({ variants: [], blur: null })
    const id = `${hit.record.key}\n${canonicalJson(transform)}`
    let set = this.work.get(id)
    if (!set) {
      const made = (set = this.track(this.make(hit, transform, signal)))
      this.work.set(id, made)
      // Only this piece of work: a reset() since may have put a new one under the same id.
      made.catch(() => this.work.get(id) === made && this.work.delete(id))
    }
    return set
  }

  /** How many pieces of work are under way or waiting for their turn. */
  get active(): number {
    return this.running.size
  }

  /** Resolves once no piece of work is left (started before or while waiting): a failed build ends after its encodes. */
  async settled(): Promise<void> {
    while (this.running.size) await Promise.allSettled([...this.running])
  }

  private track<T>(work: Promise<T>): Promise<T> {
    this.running.add(work)
    const done = () => void this.running.delete(work)
    work.then(done, done)
    return work
  }

  /**
   * One variant (the dev server's request for a URL): from the cache, looked up afresh (never from what of() found
   * earlier: the file may be gone since), or made now.
   */
  async one(hit: CacheHit, target: Target): Promise<Variant> {
    const [variant] = (await this.track(this.make(hit, { formats: [target.format], widths: [target.width], quality: { webp: target.quality, avif: target.quality }, blur: false }))).variants
    return variant!
  }

  private async make(hit: CacheHit, transform: TransformSettings, signal?: AbortSignal): Promise<VariantSet> {
    const source = hit.record.key
    const width = hit.record.width ?? hit.record.settings.width
    const height = hit.record.height ?? hit.record.settings.height
    const targets = targetsOf(width, height, transform)
    const keys = targets.map(t => variantKey(hit.record.sha256, t))
    const blurSize = { format: 'blur' as const, width: BLUR_WIDTH, height: heightAt(width, height, BLUR_WIDTH) }
    const blurKey = transform.blur ? variantKey(hit.record.sha256, blurSize) : undefined
    const found = await Promise.all(keys.map(key => this.store.getVariant(source, key)))
    let blurHit = blurKey ? await this.store.getVariant(source, blurKey) : undefined
    // The blur's bytes go into the module: read (and verified) now, so a damaged one is simply made again below.
    let blurBytes = blurHit && (await this.store.readVariant(blurHit))
    if (!blurBytes) blurHit = undefined

    if (found.includes(undefined) || (blurKey && !blurHit)) await this.decodes(async () => {
      signal?.throwIfAborted()
      // read() checks the source against its sha256 once more: a variant is only ever made from the bytes paid for.
      const bytes = await this.store.read(hit)
      if (!bytes) throw new FluxError('FLUX_CACHE_CHANGED', `flux-assets: the cached image ${source} changed on disk during the build; run the build again`)
      const sharp = await loadSharp()
      // Decode once, into raw pixels; every variant is a clone of that one pipeline.
      const { data, info } = await sharp(bytes, { failOn: 'error' }).raw().toBuffer({ resolveWithObject: true })
      const decoded = sharp(data, { raw: { width: info.width, height: info.height, channels: info.channels } })
      const jobs = targets.map((t, i) =>
        found[i]
          ? undefined
          : this.limit(async () => {
              signal?.throwIfAborted()
              // fit 'fill' at the size targetsOf chose: the same rounding in dev and build; never over the source's size.
              const resized = decoded.clone().resize(t.width, t.height, { fit: 'fill' })
              const out = await (t.format === 'webp' ? resized.webp({ quality: t.quality }) : resized.avif({ quality: t.quality })).toBuffer()
              this.hooks.onEncode?.({ format: t.format, width: t.width })
              found[i] = await this.store.putVariant(source, keys[i]!, out, { format: t.format, width: t.width, height: t.height })
            }),
      )
      if (blurKey && !blurHit) {
        jobs.push(
          this.limit(async () => {
            signal?.throwIfAborted()
            const { dominant } = await decoded.clone().stats()
            const small = await decoded.clone().resize(blurSize.width, blurSize.height, { fit: 'fill' }).blur(BLUR_SIGMA).webp({ quality: BLUR_QUALITY }).toBuffer()
            this.hooks.onEncode?.({ format: 'blur', width: blurSize.width })
            blurHit = await this.store.putVariant(source, blurKey, small, { ...blurSize, color: hex(dominant) })
            blurBytes = small
          }),
        )
      }
      // Every job settled before this one gives up: an encode under way still ends before make() does.
      const failed = (await Promise.allSettled(jobs)).find(r => r.status === 'rejected')
      if (failed) throw failed.reason
    })

    const variants = targets.map((t, i) => ({ ...t, bytes: found[i]!.record.size, hit: found[i]! }))
    const blur = blurHit && blurBytes ? { color: blurHit.record.color ?? '#808080', dataURL: `data:image/webp;base64,${blurBytes.toString('base64')}` } : null
    return { variants, blur }
  }
}

/**
 * engine.generate's hooks that start the variants of each request (its own transform) as soon as its key's verified
 * entry exists: cached ones right after plan, generated ones as schedule stores them, while the other images are
 * still generated. `started` holds the work (Variants' memo: a later of() for the same record gets the same promise).
 */
export function variantsAhead(stage: Variants, requests: AssetRequest[], transformOf: (r: AssetRequest) => TransformSettings, signal: AbortSignal): GenerateHooks & { started: Array<Promise<VariantSet>> } {
  const byKey = new Map<string, AssetRequest[]>()
  for (const r of requests) {
    const list = byKey.get(r.key)
    if (list) list.push(r)
    else byKey.set(r.key, [r])
  }
  const started: Array<Promise<VariantSet>> = []
  return { started, onHit: (key, hit) => byKey.get(key)?.forEach(r => void started.push(stage.of(hit, transformOf(r), signal))) }
}

function hex({ r, g, b }: { r: number; g: number; b: number }): string {
  return `#${[r, g, b].map(c => Math.max(0, Math.min(255, Math.round(c))).toString(16).padStart(2, '0')).join('')}`
}
