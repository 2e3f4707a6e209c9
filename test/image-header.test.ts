import { readFileSync } from 'node:fs'
import { crc32 } from 'node:zlib'
import { describe, expect, it } from 'vitest'
import { checkImage, readImageHeader, type ImageCheck } from '../src/core/image-header'
import { makeJpeg, makePng } from './fake-together.mjs'

// Real encoder output (see test/fixtures/images/README.md), and the fake's own PNG/JPEG encoders.
const fixture = (name: string) => readFileSync(new URL(`./fixtures/images/${name}`, import.meta.url))
const progressiveJpeg = fixture('progressive-64x72.jpg')
const lossyWebp = fixture('lossy-96x64.webp')
const losslessWebp = fixture('lossless-80x64.webp')
const extendedWebp = fixture('extended-96x64.webp')
const tinyWebp = fixture('lossy-16x16.webp')

const reason = (check: ImageCheck) => (check.ok ? 'ok' : check.reason)
const copy = (b: Buffer) => Buffer.from(b)

describe('readImageHeader', () => {
  it('reads format and size of PNG (IHDR), JPEG (SOF0 and SOF2) and WebP (VP8, VP8L, VP8X)', () => {
    expect(readImageHeader(makePng(128, 72, 'a'))).toEqual({ format: 'png', width: 128, height: 72 })
    expect(readImageHeader(makeJpeg('b', 0, 1344, 768))).toEqual({ format: 'jpeg', width: 1344, height: 768 })
    expect(readImageHeader(progressiveJpeg)).toEqual({ format: 'jpeg', width: 64, height: 72 })
    expect(readImageHeader(lossyWebp)).toEqual({ format: 'webp', width: 96, height: 64 })
    expect(readImageHeader(losslessWebp)).toEqual({ format: 'webp', width: 80, height: 64 })
    expect(readImageHeader(extendedWebp)).toEqual({ format: 'webp', width: 96, height: 64 })
  })

  it("VP8: the 2-bit upscale hints above width and height are not part of the size", () => {
    const scaled = copy(lossyWebp)
    scaled[27] |= 0xc0 // width's scale bits
    scaled[29] |= 0x40 // height's scale bits
    expect(readImageHeader(scaled)).toEqual({ format: 'webp', width: 96, height: 64 })
  })

  it('finds the SOF after large APP/COM segments, and reads a view inside a larger buffer', () => {
    const padded = makeJpeg('pad', 200_000, 96, 80) // COM segments of 64 KB each before the SOF
    expect(readImageHeader(padded)).toEqual({ format: 'jpeg', width: 96, height: 80 })
    const png = makePng(70, 90, 'view')
    const big = Buffer.concat([Buffer.from('before'), png, Buffer.from('after')])
    expect(readImageHeader(new Uint8Array(big.buffer, big.byteOffset + 6, png.length))).toEqual({ format: 'png', width: 70, height: 90 })
  })

  it('answers undefined for bytes that are not an image or whose header is cut', () => {
    for (const bytes of [Buffer.from('{"error":{}}'), Buffer.alloc(0), makePng(64, 64, 'x').subarray(0, 20), lossyWebp.subarray(0, 22)]) {
      expect(readImageHeader(bytes)).toBeUndefined()
    }
  })
})

describe('checkImage', () => {
  it('accepts whole images of 64 px and more, with the header it read', () => {
    const goods: [Buffer, string][] = [
      [makePng(64, 64, 'p'), 'png 64×64'],
      [makePng(200, 100, 'q', 5000), 'png padded'],
      [makeJpeg('j', 0, 64, 96), 'jpeg baseline'],
      [makeJpeg('k', 3000, 100, 64), 'jpeg padded'],
      [progressiveJpeg, 'jpeg progressive'],
      [Buffer.concat([makeJpeg('z', 0, 64, 64), Buffer.alloc(3)]), 'jpeg with zero padding after EOI'],
      [lossyWebp, 'webp lossy'],
      [losslessWebp, 'webp lossless'],
      [extendedWebp, 'webp extended'],
    ]
    for (const [bytes, what] of goods) expect(reason(checkImage(bytes)), what).toBe('ok')
    expect(checkImage(makePng(80, 64, 'h'))).toEqual({ ok: true, header: { format: 'png', width: 80, height: 64 } })
  })

  it('refuses what is not an image at all', () => {
    expect(reason(checkImage(Buffer.from('<!DOCTYPE html><html>Bad gateway</html>')))).toMatch(/^not an image: .*\(39 bytes\)$/)
  })

  it('PNG: a bad CRC in any chunk, truncation, bytes after IEND, IHDR not first', () => {
    const png = makePng(64, 64, 'crc', 2000)
    const badIdat = copy(png)
    badIdat[8 + 25 + 10] ^= 0xff // a byte inside IDAT's data (IHDR is 25 bytes from offset 8)
    expect(reason(checkImage(badIdat))).toMatch(/^PNG: bad CRC in chunk 'IDAT' at byte 33/)
    const badIhdr = copy(png)
    badIhdr[8 + 8 + 9] ^= 0x01 // IHDR's colour type: the size still reads, the CRC does not match
    expect(reason(checkImage(badIhdr))).toMatch(/bad CRC in chunk 'IHDR' at byte 8/)
    const badIend = copy(png)
    badIend[png.length - 1] ^= 0x01
    expect(reason(checkImage(badIend))).toMatch(/bad CRC in chunk 'IEND'/)
    expect(reason(checkImage(png.subarray(0, png.length - 12)))).toMatch(/no IEND chunk/)
    expect(reason(checkImage(png.subarray(0, png.length >> 1)))).toMatch(/runs past the end/)
    expect(reason(checkImage(png.subarray(0, 30)))).toMatch(/truncated before the end of IHDR/)
    expect(reason(checkImage(Buffer.concat([png, Buffer.from('<html>')])))).toMatch(/6 bytes after the IEND chunk/)
    // A valid chunk (with a right CRC) moved in front of IHDR.
    const text = chunk('tEXt', Buffer.from('k\0v'))
    const reordered = Buffer.concat([png.subarray(0, 8), text, png.subarray(8)])
    expect(reason(checkImage(reordered))).toMatch(/the first chunk is not IHDR/)
  })

  it('PNG: IHDR and IEND alone (no IDAT) is not an image', () => {
    const png = makePng(64, 64, 'noidat')
    expect(reason(checkImage(Buffer.concat([png.subarray(0, 33), png.subarray(png.length - 12)])))).toMatch(/no IDAT chunk/)
  })

  it('JPEG: no EOI, truncation in a segment, a broken segment length, SOS before SOF', () => {
    const jpeg = makeJpeg('jt', 3000, 64, 64)
    expect(reason(checkImage(jpeg.subarray(0, jpeg.length - 2)))).toMatch(/^JPEG: truncated: the data does not end with EOI/)
    expect(reason(checkImage(jpeg.subarray(0, 100)))).toMatch(/runs past the end/)
    expect(reason(checkImage(progressiveJpeg.subarray(0, progressiveJpeg.length - 1)))).toMatch(/does not end with EOI/)
    const badLength = copy(jpeg)
    badLength.writeUInt16BE(1, 4) // APP0's length below 2
    expect(reason(checkImage(badLength))).toMatch(/segment 0xe0 at byte 2 has length 1/)
    const noMarker = copy(jpeg)
    noMarker[2 + 2 + jpeg.readUInt16BE(4)] = 0x00 // the byte where the segment after APP0 should start
    expect(reason(checkImage(noMarker))).toMatch(/expected a marker at byte/)
    // SOI, then straight to an SOS segment and EOI.
    const sosFirst = Buffer.from('ffd8ffda000c03010002000300003f00' + '00ffd9', 'hex')
    expect(reason(checkImage(sosFirst))).toMatch(/SOS before any SOF/)
    expect(reason(checkImage(Buffer.from('ffd8ffd9', 'hex')))).toMatch(/EOI at byte 2, before any SOS/)
    expect(reason(checkImage(Buffer.from('ffd8ff', 'hex')))).toMatch(/^JPEG: /)
  })

  it('WebP: RIFF size not the file size, a chunk past the end, truncated image header', () => {
    expect(reason(checkImage(lossyWebp.subarray(0, lossyWebp.length - 2)))).toMatch(/^WebP: RIFF size says 80 bytes, the file has 78/)
    expect(reason(checkImage(Buffer.concat([losslessWebp, Buffer.alloc(4)])))).toMatch(/RIFF size says 44 bytes, the file has 48/)
    const wrongRiff = copy(extendedWebp)
    wrongRiff.writeUInt32LE(extendedWebp.length, 4) // 8 too many
    expect(reason(checkImage(wrongRiff))).toMatch(/RIFF size says 116 bytes, the file has 108/)
    // RIFF size made to match a cut file: then the chunk inside no longer fits.
    const cut = copy(lossyWebp.subarray(0, 60))
    cut.writeUInt32LE(52, 4)
    expect(reason(checkImage(cut))).toMatch(/chunk 'VP8 ' at byte 12 runs past the end/)
    const noStartCode = copy(lossyWebp)
    noStartCode[23] = 0
    expect(reason(checkImage(noStartCode))).toMatch(/without the key-frame start code/)
    const notVp8 = copy(lossyWebp)
    notVp8.write('ABCD', 12, 'latin1')
    expect(reason(checkImage(notVp8))).toMatch(/the first chunk is 'ABCD'/)
  })

  it('refuses images under 64 px on a side (or under minSide), whatever the format', () => {
    expect(reason(checkImage(makePng(63, 200, 's')))).toBe('PNG: 63×200 is smaller than 64 px on a side')
    expect(reason(checkImage(makeJpeg('s', 0, 200, 16)))).toBe('JPEG: 200×16 is smaller than 64 px on a side')
    expect(reason(checkImage(tinyWebp))).toBe('WebP: 16×16 is smaller than 64 px on a side')
    expect(reason(checkImage(tinyWebp, { minSide: 16 }))).toBe('ok')
    expect(reason(checkImage(makePng(80, 80, 's'), { minSide: 100 }))).toMatch(/80×80 is smaller than 100 px/)
  })
})

/** A PNG chunk with a right CRC. */
function chunk(type: string, data: Buffer): Buffer {
  const head = Buffer.alloc(8)
  head.writeUInt32BE(data.length)
  head.write(type, 4, 'latin1')
  const crc = Buffer.alloc(4)
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])) >>> 0)
  return Buffer.concat([head, data, crc])
}
