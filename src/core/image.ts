import { ImageError } from './errors'
import type { ImageFormat } from './types'

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])
const PNG_IEND = Buffer.from([0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82])

/** The format by magic number, or `undefined`. */
export function sniffFormat(bytes: Uint8Array): ImageFormat | undefined {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  if (b.length >= 8 && b.subarray(0, 8).equals(PNG_SIGNATURE)) return 'png'
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return 'jpeg'
  if (b.length >= 12 && b.toString('latin1', 0, 4) === 'RIFF' && b.toString('latin1', 8, 12) === 'WEBP') return 'webp'
  return undefined
}

export const EXTENSIONS = { png: 'png', jpeg: 'jpg', webp: 'webp' } as const
export const MIME_TYPES: Record<string, string> = { png: 'image/png', jpg: 'image/jpeg', webp: 'image/webp', svg: 'image/svg+xml' }

/**
 * Accepts only a whole PNG, JPEG or WebP: known magic number and an intact end (PNG's IEND chunk, JPEG's EOI
 * marker, WebP's RIFF length). A truncated download or a JSON error page never passes. Returns the extension.
 */
export function verifyImage(bytes: Uint8Array): 'png' | 'jpg' | 'webp' {
  const format = sniffFormat(bytes)
  if (!format) throw new ImageError(`not an image: the bytes are neither PNG, JPEG nor WebP (${bytes.byteLength} bytes)`)
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const complete =
    format === 'png'
      ? b.length >= 20 && b.subarray(b.length - 8).equals(PNG_IEND)
      : format === 'jpeg'
        ? endsWithEoi(b)
        : b.length >= 12 && b.readUInt32LE(4) + 8 === b.length
  if (!complete) throw new ImageError(`truncated ${format.toUpperCase()} image (${bytes.byteLength} bytes)`)
  return EXTENSIONS[format]
}

/** JPEG ends with FF D9; some encoders pad a few zero bytes after it. */
function endsWithEoi(b: Buffer): boolean {
  let end = b.length
  while (end > 2 && b.length - end < 16 && b[end - 1] === 0) end--
  return end >= 4 && b[end - 2] === 0xff && b[end - 1] === 0xd9
}
