import type { IncomingMessage, ServerResponse } from 'node:http'
import { placeholderBlur, type Picture } from './emit'
import type { Store } from './store'
import { MIME_TYPES } from './image'
import { placeholderSvg } from './placeholder'
import type { AssetRecord, CacheHit, TransformSettings } from './types'
import { MIME, targetsOf, type Variants } from './variants'

export const DEV_PREFIX = '@flux-assets/'

/**
 * The dev URL of a record: `<base>@flux-assets/<key>.<ext>`, served from the cache by key alone, so it keeps
 * working after a server restart. A placeholder is inlined as an SVG data URL: nothing to serve, nothing to cache.
 */
export async function devImageUrl(cache: Store, record: AssetRecord, base: string): Promise<string> {
  return urlOf(record, record.file ? await cache.get(record.key) : undefined, base)
}

/** devImageUrl of a record whose entry was just looked up (`undefined`: none). */
function urlOf(record: AssetRecord, hit: CacheHit | undefined, base: string): string {
  if (!hit) {
    const svg = placeholderSvg(record.id, record.prompt, record.width, record.height, record.error ?? 'not generated')
    return JSON.stringify(`data:image/svg+xml,${encodeURIComponent(svg)}`)
  }
  return JSON.stringify(`${base}${DEV_PREFIX}${record.key}.${hit.record.ext}`)
}

/**
 * A record's picture in dev, URLs in `fileName`: its variants (found in the cache, or made now, like a build) at
 * `<base>@flux-assets/<key>.<width>w-q<quality>.<webp|avif>`, a URL that says how to make the variant again, so the
 * middleware serves it from the cache or makes it on request (after a restart, a prune, a damaged file). `known`: the
 * entry as the cache lookup of this same module load found it (plan), not looked up again.
 */
export async function devPicture(cache: Store, variants: Variants, record: AssetRecord, transform: TransformSettings, base: string, known?: CacheHit): Promise<Picture> {
  const hit = known ?? (record.file ? await cache.get(record.key) : undefined)
  const url = JSON.parse(urlOf(record, hit, base)) as string
  const bytes = hit ? hit.record.size : Buffer.byteLength(decodeURIComponent(url.slice(url.indexOf(',') + 1)))
  const src = { key: record.key, fileName: url, bytes }
  const fallback = { format: hit ? (hit.record.ext === 'jpg' ? 'jpeg' : hit.record.ext) : 'svg', width: record.width, height: record.height, image: src } as const
  if (!hit) return { src, files: [fallback], blur: placeholderBlur(record.width, record.height) }
  const set = await variants.of(hit, transform)
  const files = set.variants.map(v => ({ format: v.format, width: v.width, height: v.height, image: { key: v.hit.record.key, fileName: `${base}${DEV_PREFIX}${record.key}.${v.width}w-q${v.quality}.${v.hit.record.ext}`, bytes: v.bytes } }))
  return { src, files: [...files, fallback], blur: set.blur }
}

/**
 * Connect middleware serving verified cache entries under `<base>@flux-assets/`, and their variants (made if missing).
 * The entry of a key is looked up once per store and remembered, or taken from `known` (the session's, found by the
 * module load that wrote the URL): each request only reads its image (read() checks size and stat, or hashes again),
 * and an image gone or damaged since is looked up afresh.
 */
export function fluxMiddleware(cache: () => Store, base: () => string, variants?: () => Variants, known?: (key: string) => CacheHit | undefined) {
  const found = new WeakMap<Store, Map<string, CacheHit>>()
  return async (req: IncomingMessage, res: ServerResponse, next: (error?: unknown) => void) => {
    const path = (req.url ?? '').split('?')[0]!
    const match = /@flux-assets\/([0-9a-f]{64})(?:\.(\d{1,5})w-q(\d{1,3}))?\.(png|jpg|webp|avif)$/.exec(path)
    if (!match || !(path.startsWith(base()) || path.startsWith(`/${DEV_PREFIX}`))) return next()
    try {
      const store = cache()
      let hits = found.get(store)
      if (!hits) found.set(store, (hits = new Map()))
      const key = match[1]!
      let hit: CacheHit | undefined
      let bytes: Buffer | undefined
      if (!match[2]) {
        // An original: the entry an earlier request found, else looked up now; read() checks the file either way.
        hit = hits.get(key) ?? known?.(key)
        bytes = hit && (await store.read(hit))
        if (!bytes) {
          hits.delete(key)
          hit = await store.get(key)
          bytes = hit && (await store.read(hit))
        }
        if (hit && bytes) hits.set(key, hit)
      } else hit = await store.get(key)
      let type = hit && MIME_TYPES[hit.record.ext]
      if (hit && match[2] && variants && (match[4] === 'webp' || match[4] === 'avif')) {
        // The variant this URL names: at most the source's width (targetsOf), at the quality asked for.
        const format = match[4]
        const quality = Math.min(100, Math.max(1, Number(match[3])))
        const [target] = targetsOf(hit.record.width ?? hit.record.settings.width, hit.record.height ?? hit.record.settings.height, { formats: [format], widths: [Number(match[2])], quality: { webp: quality, avif: quality }, blur: false })
        const variant = await variants().one(hit, target!)
        bytes = await cache().readVariant(variant.hit)
        type = MIME[format]
      }
      if (!bytes) {
        res.statusCode = 404
        return res.end('flux-assets: not in the cache')
      }
      res.setHeader('Content-Type', type!)
      res.setHeader('Content-Length', bytes.length)
      // The URL is the content's key: it never changes meaning.
      res.setHeader('Cache-Control', 'public, max-age=31536000, immutable')
      res.end(bytes)
    } catch (error) {
      next(error)
    }
  }
}
