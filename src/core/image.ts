import { ImageError } from './errors'
import { checkImage } from './image-header'

export { sniffFormat } from './image-header'

export const EXTENSIONS = { png: 'png', jpeg: 'jpg', webp: 'webp' } as const
export const MIME_TYPES: Record<string, string> = { png: 'image/png', jpg: 'image/jpeg', webp: 'image/webp', svg: 'image/svg+xml' }

/**
 * Accepts only a whole, well-formed PNG, JPEG or WebP of at least `minSide` pixels a side (default 64): the
 * structure checked by image-header.ts (PNG chunks and CRCs through IEND; JPEG segments through a frame header and
 * SOS to EOI; WebP RIFF sizes). A truncated download, a JSON error page or an HTML page behind a JPEG signature never
 * passes. Nothing is decoded. Returns the extension.
 */
export function verifyImage(bytes: Uint8Array, options: { minSide?: number } = {}): 'png' | 'jpg' | 'webp' {
  const check = checkImage(bytes, options)
  if (!check.ok) throw new ImageError(check.reason)
  return EXTENSIONS[check.header.format]
}
