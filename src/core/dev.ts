import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Store } from './store'
import { MIME_TYPES } from './image'
import { placeholderSvg } from './placeholder'
import type { AssetRecord } from './types'

export const DEV_PREFIX = '@flux-assets/'

/**
 * The dev URL of a record: `<base>@flux-assets/<key>.<ext>`, served from the cache by key alone, so it keeps
 * working after a server restart. A placeholder is inlined as an SVG data URL: nothing to serve, nothing to cache.
 */
export async function devImageUrl(cache: Store, record: AssetRecord, base: string): Promise<string> {
  const hit = record.file ? await cache.get(record.key) : undefined
  if (!hit) {
    const svg = placeholderSvg(record.id, record.prompt, record.width, record.height, record.error ?? 'not generated')
    return JSON.stringify(`data:image/svg+xml,${encodeURIComponent(svg)}`)
  }
  return JSON.stringify(`${base}${DEV_PREFIX}${record.key}.${hit.record.ext}`)
}

/** Connect middleware serving verified cache entries under `<base>@flux-assets/`. */
export function fluxMiddleware(cache: () => Store, base: () => string) {
  return async (req: IncomingMessage, res: ServerResponse, next: (error?: unknown) => void) => {
    const path = (req.url ?? '').split('?')[0]!
    const match = /@flux-assets\/([0-9a-f]{64})\.(png|jpg|webp)$/.exec(path)
    if (!match || !(path.startsWith(base()) || path.startsWith(`/${DEV_PREFIX}`))) return next()
    try {
      const hit = await cache().get(match[1]!)
      const bytes = hit && (await cache().read(hit))
      if (!bytes) {
        res.statusCode = 404
        return res.end('flux-assets: not in the cache')
      }
      res.setHeader('Content-Type', MIME_TYPES[hit!.record.ext]!)
      res.setHeader('Content-Length', bytes.length)
      // The URL is the content's key: it never changes meaning.
      res.setHeader('Cache-Control', 'public, max-age=31536000, immutable')
      res.end(bytes)
    } catch (error) {
      next(error)
    }
  }
}
