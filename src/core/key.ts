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

/**
 * The canonical text cacheKey hashes, cut where the prompt goes: `before + JSON.stringify(prompt) + after` is exactly
 * `canonicalJson({ v, prompt, ...settings })`, so many prompts with the same settings are keyed without sorting and
 * serialising those settings again each time (test/key.test.ts checks the two agree).
 */
export function keyTextAround(settings: ImageSettings): [string, string] {
  const mark = `\u0000flux-assets-prompt-${Math.random().toString(36).slice(2)}\u0000`
  const text = canonicalJson({ v: CACHE_VERSION, prompt: mark, ...settings })
  const quoted = JSON.stringify(mark)
  const at = text.indexOf(`"prompt":${quoted}`)
  const cut = at + '"prompt":'.length
  if (at < 0 || text.indexOf(quoted) !== cut || text.lastIndexOf(quoted) !== cut) throw new Error('flux-assets: the cache key text has no single place for the prompt')
  return [text.slice(0, cut), text.slice(cut + quoted.length)]
}

export function sha256(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex')
}
