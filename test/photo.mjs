// Photo-like test images, made with sharp: what byte measurements of variants need. A flat colour (the fake's
// images) compresses to nothing in every format and proves nothing about bytes; pure noise compresses in none.
// These have what a photo has: large soft shapes, texture at a few scales, and grain, from a seeded PRNG.
import sharp from 'sharp'

/** @param {string} seedText */
function prng(seedText) {
  let h = 2166136261
  for (const c of seedText) h = Math.imul(h ^ c.charCodeAt(0), 16777619)
  return () => {
    h = Math.imul(h ^ (h >>> 15), 2246822507)
    h = Math.imul(h ^ (h >>> 13), 3266489909)
    return ((h ^= h >>> 16) >>> 0) / 4294967296
  }
}

/**
 * A `w`×`h` RGB layer of random colours, scaled up smoothly to `width`×`height`.
 * @param {() => number} random @param {number} w @param {number} h @param {number} width @param {number} height
 */
async function layer(random, w, h, width, height) {
  const raw = Buffer.alloc(w * h * 3)
  for (let i = 0; i < raw.length; i++) raw[i] = Math.floor(random() * 256)
  return sharp(raw, { raw: { width: w, height: h, channels: 3 } }).resize(width, height, { kernel: 'cubic', fit: 'fill' }).raw().toBuffer()
}

/**
 * A photo-like JPEG (or PNG), `width`×`height`, the same for the same seed. At 1024×768 and quality 92 it weighs
 * 200-300 KB, like the model's own JPEGs (150-450 KB).
 * @param {string} seed @param {{ width?: number, height?: number, quality?: number, format?: 'jpeg' | 'png' }} [o]
 */
export async function makePhoto(seed, { width = 1024, height = 768, quality = 92, format = 'jpeg' } = {}) {
  const random = prng(seed)
  const shapes = await layer(random, 6, 5, width, height)
  const texture = await layer(random, Math.ceil(width / 12), Math.ceil(height / 12), width, height)
  const detail = await layer(random, Math.ceil(width / 3), Math.ceil(height / 3), width, height)
  const out = Buffer.alloc(width * height * 3)
  for (let i = 0; i < out.length; i++) {
    const grain = (random() - 0.5) * 10
    out[i] = Math.max(0, Math.min(255, Math.round(shapes[i] * 0.7 + (texture[i] - 128) * 0.35 + (detail[i] - 128) * 0.12 + grain + 20)))
  }
  const image = sharp(out, { raw: { width, height, channels: 3 } })
  return format === 'png' ? image.png().toBuffer() : image.jpeg({ quality, chromaSubsampling: '4:2:0' }).toBuffer()
}
