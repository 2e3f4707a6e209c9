// Reads an image's true format and size from its bytes, and checks that the bytes are a whole, well-formed image.
// Models size differently from what was asked (Kontext sizes by aspect ratio), so what is reported is what was
// received (together-api-facts.md: "report the size of the image you received"). Headers only: nothing is decoded.
//
// Formats: PNG (ISO/IEC 15948: signature, chunks of length/type/data/CRC-32, IHDR first, IEND last), JPEG (ITU T.81:
// SOI, marker segments with a 2-byte length, SOFn carries height then width, SOS starts the entropy-coded data, EOI
// ends it), WebP (RIFF container, RFC 9649: 'VP8 ' lossy, 'VP8L' lossless, 'VP8X' extended with a canvas size).
import { crc32 } from 'node:zlib' // Node >= 20.15 / 22.2; package.json asks for ^20.19 || >=22.12
import type { ImageFormat } from './types'

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])

/** The format by magic number, or `undefined`. */
export function sniffFormat(bytes: Uint8Array): ImageFormat | undefined {
  const b = toBuffer(bytes)
  if (b.length >= 8 && b.subarray(0, 8).equals(PNG_SIGNATURE)) return 'png'
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return 'jpeg'
  if (b.length >= 12 && b.toString('latin1', 0, 4) === 'RIFF' && b.toString('latin1', 8, 12) === 'WEBP') return 'webp'
  return undefined
}

export interface ImageHeader {
  format: ImageFormat
  width: number
  height: number
}

export type ImageCheck = { ok: true; header: ImageHeader } | { ok: false; reason: string }

/** Smallest side accepted by `checkImage` unless told otherwise: anything smaller is not a real generation. */
export const MIN_IMAGE_SIDE = 64

/** Format and size from the header, or `undefined` when the bytes are not a PNG/JPEG/WebP whose size can be read. */
export function readImageHeader(bytes: Uint8Array): ImageHeader | undefined {
  const b = toBuffer(bytes)
  const format = sniffFormat(b)
  const size = format === 'png' ? pngSize(b) : format === 'jpeg' ? jpegSize(b) : format === 'webp' ? webpSize(b) : undefined
  return format && size && typeof size !== 'string' ? { format, ...size } : undefined
}

/**
 * Structural check, without decoding the pixels: PNG signature, every chunk's CRC, IHDR first, IDAT present, IEND
 * last; JPEG SOI, well-formed segments up to SOS, an SOFn before it, EOI at the end; WebP RIFF size equal to the
 * file's, chunks that fit it, a readable VP8/VP8L/VP8X header. Then both sides at least `minSide` pixels.
 */
export function checkImage(bytes: Uint8Array, options: { minSide?: number } = {}): ImageCheck {
  const b = toBuffer(bytes)
  const format = sniffFormat(b)
  if (!format) return { ok: false, reason: `not an image: the bytes are neither PNG, JPEG nor WebP (${b.length} bytes)` }
  const result = format === 'png' ? checkPng(b) : format === 'jpeg' ? checkJpeg(b) : checkWebp(b)
  if (typeof result === 'string') return { ok: false, reason: `${NAMES[format]}: ${result} (${b.length} bytes)` }
  const minSide = options.minSide ?? MIN_IMAGE_SIDE
  if (result.width < minSide || result.height < minSide) {
    return { ok: false, reason: `${NAMES[format]}: ${result.width}×${result.height} is smaller than ${minSide} px on a side` }
  }
  return { ok: true, header: { format, ...result } }
}

const NAMES: Record<ImageFormat, string> = { png: 'PNG', jpeg: 'JPEG', webp: 'WebP' }

type Size = { width: number; height: number }

function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
}

// ---------------------------------------------------------------- PNG

/** IHDR must come first: signature (8), length (4) = 13, 'IHDR', width, height. */
function pngSize(b: Buffer): Size | string {
  if (b.length < 33) return 'truncated before the end of IHDR'
  if (b.readUInt32BE(8) !== 13 || b.toString('latin1', 12, 16) !== 'IHDR') return 'the first chunk is not IHDR'
  return { width: b.readUInt32BE(16), height: b.readUInt32BE(20) }
}

function checkPng(b: Buffer): Size | string {
  const size = pngSize(b)
  if (typeof size === 'string') return size
  if (size.width === 0 || size.height === 0) return `IHDR gives a size of ${size.width}×${size.height}`
  let pos = 8
  let idat = false
  for (;;) {
    if (pos + 12 > b.length) return `truncated: no IEND chunk (a chunk header at byte ${pos} does not fit)`
    const length = b.readUInt32BE(pos)
    const type = b.toString('latin1', pos + 4, pos + 8)
    if (length > 0x7fffffff || pos + 12 + length > b.length) return `truncated: chunk '${printable(type)}' at byte ${pos} runs past the end`
    const stored = b.readUInt32BE(pos + 8 + length)
    if (crc32(b.subarray(pos + 4, pos + 8 + length)) >>> 0 !== stored) return `bad CRC in chunk '${printable(type)}' at byte ${pos}`
    if (type === 'IHDR' && pos !== 8) return 'a second IHDR chunk'
    if (type === 'IDAT') idat = true
    pos += 12 + length
    if (type === 'IEND') break
  }
  if (!idat) return 'no IDAT chunk (no image data)'
  if (pos !== b.length) return `${b.length - pos} bytes after the IEND chunk`
  return size
}

function printable(type: string): string {
  return /^[\x20-\x7e]{4}$/.test(type) ? type : Buffer.from(type, 'latin1').toString('hex')
}

// ---------------------------------------------------------------- JPEG

/** SOF0-SOF15 carry the frame size, except C4 (DHT), C8 (JPG, reserved) and CC (DAC). */
const isSof = (m: number) => m >= 0xc0 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc
/** Markers with no length: TEM and RST0-7 (SOI and EOI are handled apart). */
const isStandalone = (m: number) => m === 0x01 || (m >= 0xd0 && m <= 0xd7)

/**
 * Walks the marker segments from SOI to SOS. Returns the SOFn size and where SOS's segment ends, or a reason.
 * `sizeOnly` stops at the first SOFn (what readImageHeader needs).
 */
function walkJpeg(b: Buffer, sizeOnly: boolean): { size: Size; scanAt: number } | string {
  if (b.length < 4 || b[0] !== 0xff || b[1] !== 0xd8) return 'no SOI marker'
  let pos = 2
  let size: Size | undefined
  for (;;) {
    if (pos >= b.length) return 'truncated before SOS (no image data)'
    if (b[pos] !== 0xff) return `expected a marker at byte ${pos}, found 0x${b[pos]!.toString(16).padStart(2, '0')}`
    while (b[pos + 1] === 0xff) pos++ // fill bytes before a marker are allowed
    const marker = b[pos + 1]
    if (marker === undefined) return 'truncated inside a marker'
    if (marker === 0xd8) return `a second SOI at byte ${pos}`
    if (marker === 0xd9) return `EOI at byte ${pos}, before any SOS (no image data)`
    if (isStandalone(marker)) {
      pos += 2
      continue
    }
    if (pos + 4 > b.length) return `truncated inside the marker 0x${marker.toString(16)} at byte ${pos}`
    const length = b.readUInt16BE(pos + 2)
    if (length < 2) return `segment 0x${marker.toString(16)} at byte ${pos} has length ${length}`
    const end = pos + 2 + length
    if (end > b.length) return `truncated: segment 0x${marker.toString(16)} at byte ${pos} runs past the end`
    if (isSof(marker)) {
      if (length < 8) return `SOF segment at byte ${pos} is too short (${length})`
      if (size) return `a second SOF segment at byte ${pos}`
      // SOFn: precision (1), height (2), width (2), ... (T.81 B.2.2). Height 0 means "given later by DNL".
      size = { width: b.readUInt16BE(pos + 7), height: b.readUInt16BE(pos + 5) }
      if (sizeOnly) return { size, scanAt: end }
    }
    if (marker === 0xda) {
      if (!size) return 'SOS before any SOF segment (no frame size)'
      return { size, scanAt: end }
    }
    pos = end
  }
}

function jpegSize(b: Buffer): Size | string {
  const walked = walkJpeg(b, true)
  return typeof walked === 'string' ? walked : walked.size
}

function checkJpeg(b: Buffer): Size | string {
  const walked = walkJpeg(b, false)
  if (typeof walked === 'string') return walked
  const { size, scanAt } = walked
  if (size.width === 0 || size.height === 0) return `SOF gives a size of ${size.width}×${size.height}`
  // Some encoders pad a few zero bytes after EOI.
  let end = b.length
  while (end > scanAt && b.length - end < 16 && b[end - 1] === 0) end--
  if (end < scanAt + 2 || b[end - 2] !== 0xff || b[end - 1] !== 0xd9) return 'truncated: the data does not end with EOI'
  return size
}

// ---------------------------------------------------------------- WebP

/** The first chunk's header gives the size: 'VP8 ' frame header, 'VP8L' bit-packed header, or 'VP8X' canvas. */
function webpSize(b: Buffer): Size | string {
  if (b.length < 20) return 'truncated before the first chunk'
  const fourcc = b.toString('latin1', 12, 16)
  const chunkSize = b.readUInt32LE(16)
  const d = 20 // chunk data
  if (fourcc === 'VP8 ') {
    // Frame tag (3 bytes), start code 9D 01 2A, then 14-bit width and height, each with a 2-bit scale on top.
    if (chunkSize < 10 || b.length < d + 10) return "truncated 'VP8 ' frame header"
    if (b[d + 3] !== 0x9d || b[d + 4] !== 0x01 || b[d + 5] !== 0x2a) return "'VP8 ' chunk without the key-frame start code"
    return { width: b.readUInt16LE(d + 6) & 0x3fff, height: b.readUInt16LE(d + 8) & 0x3fff }
  }
  if (fourcc === 'VP8L') {
    // Signature 0x2F, then width-1 and height-1 in 14 bits each, least significant bit first.
    if (chunkSize < 5 || b.length < d + 5) return "truncated 'VP8L' header"
    if (b[d] !== 0x2f) return "'VP8L' chunk without its 0x2F signature"
    const bits = b.readUInt32LE(d + 1)
    return { width: (bits & 0x3fff) + 1, height: ((bits >>> 14) & 0x3fff) + 1 }
  }
  if (fourcc === 'VP8X') {
    // Flags (1), reserved (3), canvas width-1 (24 bits LE), canvas height-1 (24 bits LE).
    if (chunkSize < 10 || b.length < d + 10) return "truncated 'VP8X' header"
    return { width: b.readUIntLE(d + 4, 3) + 1, height: b.readUIntLE(d + 7, 3) + 1 }
  }
  return `the first chunk is '${printable(fourcc)}', not VP8, VP8L or VP8X`
}

function checkWebp(b: Buffer): Size | string {
  if (b.length < 12) return 'truncated RIFF header'
  const riffSize = b.readUInt32LE(4)
  if (riffSize + 8 !== b.length) return `RIFF size says ${riffSize + 8} bytes, the file has ${b.length}`
  const size = webpSize(b)
  if (typeof size === 'string') return size
  // Every chunk (fourcc, 32-bit size, data padded to even) must fit, and together they fill the file exactly.
  let pos = 12
  let image = false
  while (pos < b.length) {
    if (pos + 8 > b.length) return `truncated chunk header at byte ${pos}`
    const fourcc = b.toString('latin1', pos, pos + 4)
    const length = b.readUInt32LE(pos + 4)
    const end = pos + 8 + length + (length & 1)
    if (end > b.length) return `chunk '${printable(fourcc)}' at byte ${pos} runs past the end`
    if (fourcc === 'VP8 ' || fourcc === 'VP8L') image = true
    pos = end
  }
  if (!image) return 'no VP8 or VP8L image data'
  return size
}
