import { describe, expect, it } from 'vitest'
import { ImageError } from '../src/core/errors'
import { sniffFormat, verifyImage } from '../src/core/image'
import { makeJpeg, makePng } from './fake-together.mjs'

/** A minimal valid lossless WebP: RIFF header, 'WEBP', one VP8L chunk (1×1), padded to an even size. */
function makeWebp(): Buffer {
  const vp8l = Buffer.from('2f000000100710111188 88fe0700'.replace(/\s/g, ''), 'hex')
  const chunk = Buffer.concat([Buffer.from('VP8L'), u32(vp8l.length), vp8l, Buffer.alloc(vp8l.length % 2)])
  const body = Buffer.concat([Buffer.from('WEBP'), chunk])
  return Buffer.concat([Buffer.from('RIFF'), u32(body.length), body])
}
function u32(n: number): Buffer {
  const b = Buffer.alloc(4)
  b.writeUInt32LE(n)
  return b
}

const expectImageError = (bytes: Uint8Array, pattern: RegExp, minSide?: number) => {
  let thrown: unknown
  try {
    verifyImage(bytes, { minSide })
  } catch (error) {
    thrown = error
  }
  expect(thrown).toBeInstanceOf(ImageError)
  expect((thrown as ImageError).code).toBe('FLUX_BAD_IMAGE')
  expect((thrown as Error).message).toMatch(pattern)
}

describe('verifyImage', () => {
  it('accepts whole PNG, JPEG and WebP and names the extension from the bytes', () => {
    expect(verifyImage(makePng(64, 64, 'a'))).toBe('png')
    expect(verifyImage(makePng(64, 80, 'b', 5000))).toBe('png')
    expect(verifyImage(makeJpeg('c', 0, 64, 64))).toBe('jpg')
    expect(verifyImage(makeJpeg('d', 4000, 96, 64))).toBe('jpg')
    const webp = makeWebp()
    expect(webp.toString('latin1', 0, 4)).toBe('RIFF')
    expect(webp.readUInt32LE(4) + 8).toBe(webp.length)
    // 1×1: accepted only when the 64 px minimum is lowered.
    expect(verifyImage(webp, { minSide: 1 })).toBe('webp')
    expect(() => verifyImage(webp)).toThrow(/1×1 is smaller than 64 px/)
  })

  it('reads the bytes, not a view offset: works on a Uint8Array inside a larger buffer', () => {
    const png = makePng(64, 64, 'view')
    const big = Buffer.concat([Buffer.from('garbage-before'), png, Buffer.from('garbage-after')])
    const view = new Uint8Array(big.buffer, big.byteOffset + 14, png.length)
    expect(verifyImage(view)).toBe('png')
    expect(sniffFormat(view)).toBe('png')
  })

  it('rejects JSON, HTML, XML, text and empty bytes as "not an image"', () => {
    const bodies = [
      '{"error":{"message":"Internal server error","type":"server_error"}}',
      '<!DOCTYPE html><html><body>Bad gateway</body></html>',
      '<Error><Code>AccessDenied</Code></Error>',
      'plain text',
      '',
    ]
    for (const body of bodies) expectImageError(Buffer.from(body), /not an image/)
  })

  it('rejects truncated PNG and JPEG', () => {
    const png = makePng(64, 64, 'trunc')
    const jpeg = makeJpeg('trunc', 2000, 64, 64)
    expectImageError(png.subarray(0, png.length >> 1), /^PNG: truncated/)
    expectImageError(png.subarray(0, png.length - 1), /^PNG: truncated/)
    expectImageError(png.subarray(0, 8), /^PNG: truncated/)
    expectImageError(jpeg.subarray(0, jpeg.length >> 1), /^JPEG: truncated/)
    expectImageError(jpeg.subarray(0, jpeg.length - 1), /^JPEG: truncated/)
    expectImageError(jpeg.subarray(0, 3), /^JPEG: /)
  })

  it('rejects a WebP whose RIFF length does not match', () => {
    const webp = makeWebp()
    expectImageError(webp.subarray(0, webp.length - 2), /^WebP: RIFF size says/, 1)
    expectImageError(Buffer.concat([webp, Buffer.alloc(4)]), /^WebP: RIFF size says/, 1)
  })

  it('rejects bytes appended after a PNG end', () => {
    expectImageError(Buffer.concat([makePng(64, 64, 'tail'), Buffer.from('<html>')]), /6 bytes after the IEND chunk/)
  })

  it('says how many bytes it saw', () => {
    expectImageError(Buffer.from('nope!'), /5 bytes/)
  })
})
