import { createHash } from 'node:crypto'
import type { ImageSettings } from './types'

/** Bump when the meaning of a key or the cache layout changes: old entries are then simply never found. */
export const CACHE_VERSION = 1

/** JSON with object keys sorted at every depth and `undefined` dropped: the same data always gives the same text. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`
  if (value && typeof value === 'object') {
    const entries = Object.entries(value)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`
  }
  return JSON.stringify(value)
}

/**
 * The cache key: sha256 of everything that changes the pixels, nothing else.
 * Not the asset id, the script path or the API key: the same prompt in two scripts is one image, paid once.
 */
export function cacheKey(prompt: string, settings: ImageSettings): string {
  return sha256(canonicalJson({ v: CACHE_VERSION, prompt, ...settings }))
}

export function sha256(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex')
}
