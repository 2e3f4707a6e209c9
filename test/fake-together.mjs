// A fake Together.ai image API for tests and benchmarks: node:http on 127.0.0.1, node: built-ins only.
// Behaves like the real one as far as we know it (see together-api-facts.md): POST /v1/images/generations with its
// validation, error bodies, statuses and rate-limit headers; url-mode downloads from a CDN that refuses a blank
// User-Agent. Images are complete, decodable PNG/JPEG of the requested size. Faults come from a seeded PRNG.
// Today's catalog (facts file, "The catalog moved", checked 2026-12): GET /v1/models lists the served image models
// with prices; FLUX.1 [schnell] and [dev] answer 404 model_not_available, like any id it does not serve; each model
// answers 400 for a parameter it does not take (FLUX.2 [pro] and steps); Kontext sizes by aspect_ratio; partner
// models answer 403 third_party_data_sharing_blocked while the account's gate is closed; a prompt holding
// SAFETY_MARKER gets the safety checker's 422. This table is the fake's own, written from the facts file, and
// deliberately not imported from src: a wrong profile in src must meet a fake that disagrees with it.
import { createServer } from 'node:http'
import { createHash, randomBytes } from 'node:crypto'
import { deflateSync, crc32 as zlibCrc32 } from 'node:zlib'

/**
 * @typedef {object} Faults Probabilities 0..1, drawn per generation request from a seeded PRNG.
 * @property {number} [status500]
 * @property {number} [status503]
 * @property {number} [status429]
 * @property {number} [reset] destroy the socket without answering
 * @property {number} [truncate] url mode: the first download sends half the bytes, then the socket dies
 * @property {number} [expire] url mode: the download answers 404
 *
 * @typedef {object} FakeTogetherOptions
 * @property {number} [latencyMs] time a generation takes, from admission to the answer, making the image included
 *   (fault answers wait at most 10 ms). Default 0.
 * @property {string[]} [apiKeys] accepted keys; default: any non-empty Bearer token.
 * @property {number} [credits] images that can still be billed. Default Infinity.
 * @property {string[]} [retiredModels] answered 404 model_not_available (so is any id neither in MODELS nor in
 *   extraModels). Default: FLUX.1 [schnell], [schnell] Free and [dev].
 * @property {boolean} [dataSharing] the account allows third-party data sharing. Default true; false: every gated
 *   model (all FLUX.2) answers 403 third_party_data_sharing_blocked. A key starting with `gated-` is always gated.
 * @property {FakeModel[]} [extraModels] served beside MODELS and listed in /v1/models, taking any parameter
 *   (steps 1-50, width/height multiples of 8 from 64 to 2048: the fake's old rules), never gated.
 * @property {ForcedResponse} [catalogResponse] GET /v1/models answers this instead of the list (every time).
 * @property {number} [maxInFlight] admission limit; more at once get 429. Default Infinity.
 * @property {number} [ratePerSecond] token bucket (capacity = rate). Default Infinity.
 * @property {Faults} [faults]
 * @property {number} [seed] PRNG seed for faults. Default 1.
 * @property {string} [retryAfter] retry-after value of the 429 fault. Default '1'.
 * @property {number} [imageBytes] pad every image to at least this many bytes. Default 0.
 * @property {string} [urlBase] url mode: prefix of returned image URLs. Default `<origin>/shrt/`.
 * @property {boolean} [redirectDownloads] downloads answer 302 to another URL on the fake.
 * @property {boolean} [chunkedDownloads] downloads stream the image in 64 KB chunks with no content-length.
 *
 * @typedef {object} ForcedResponse Answers the next generation request instead of the normal logic.
 * @property {number} status
 * @property {Record<string, string>} [headers]
 * @property {unknown} [body] object (sent as JSON) or string; default: a Together-style body for the status
 * @property {boolean} [reset] destroy the socket instead of answering
 * @property {number} [delayMs] wait before answering (a forced 200 without body uses latencyMs instead)
 *
 * @typedef {object} FakeStats
 * @property {number} requests every request received
 * @property {number} generations images billed
 * @property {number} inFlight generation requests being handled now
 * @property {number} maxInFlight highest inFlight seen
 * @property {number} downloads requests to image URLs (each hop of a redirect counts)
 * @property {number} downloadsWithAuth downloads that carried an authorization header
 * @property {number} downloadsWithoutUA downloads refused for a missing/blank user-agent
 * @property {number} resets sockets destroyed on purpose (reset faults, forced resets, truncations)
 * @property {number} clientAborts generation requests whose client closed the connection before the answer was sent
 * @property {number} catalogReads GET /v1/models requests
 * @property {number} generationRequests POST /v1/images/generations requests (answered or not)
 * @property {Record<number, number>} byStatus
 *
 * @typedef {{ method: string, path: string, headers: Record<string, string>, body: unknown }} LogEntry
 *
 * @typedef {object} FakeTogether
 * @property {string} baseURL
 * @property {string} origin
 * @property {FakeStats} stats
 * @property {LogEntry[]} log
 * @property {(options: FakeTogetherOptions) => void} set
 * @property {(...responses: ForcedResponse[]) => void} enqueue
 * @property {() => void} reset
 * @property {() => Promise<void>} close
 *
 * @typedef {object} Accepts what a model takes besides prompt, n, seed, response_format and output_format
 * @property {[number, number] | null} steps inclusive range, or not taken
 * @property {boolean} guidance `guidance_scale`
 * @property {boolean} negativePrompt
 * @property {boolean} promptUpsampling
 * @property {{ min: number, max: number, multipleOf: number } | 'aspect'} size width/height limits, or Kontext's aspect_ratio
 * @property {boolean} imageUrl
 * @property {boolean} referenceImages
 *
 * @typedef {object} FakeModel
 * @property {string} id
 * @property {string} [display_name]
 * @property {string} [organization]
 * @property {string} [type] default 'image'
 * @property {Record<string, unknown>} [pricing]
 * @property {boolean} [gated] behind the third-party data sharing gate
 * @property {Accepts} [accepts] default: ANY (the fake's old rules)
 *
 * @typedef {{ model: string, prompt: string, width: number, height: number, steps: number, n: number,
 *   seed: unknown, responseFormat: 'base64' | 'url', outputFormat: 'jpeg' | 'png' }} Params
 * @typedef {{ bytes: Buffer, type: string, truncate: boolean, expire: boolean }} StoredImage
 * @typedef {import('node:http').ServerResponse} Res
 */

const ERR = {
  auth: { message: 'Invalid API key provided. You can find your API key at https://api.together.xyz/settings/api-keys.', type: 'invalid_request_error', param: null, code: 'invalid_api_key' },
  credits: { message: 'Credit limit exceeded. Please add credits to your account at https://api.together.ai/settings/billing.', type: 'credit_limit', param: null, code: 'credit_limit_exceeded' },
  429: { message: 'Rate limit exceeded. Please retry after the time given in retry-after.', type: 'rate_limit_exceeded', param: null, code: 'rate_limit_exceeded' },
  500: { message: 'Internal server error', type: 'server_error' },
  503: { message: 'The server is overloaded or not ready yet.', type: 'service_unavailable' },
  // Message and code as the facts file gives them ("Account gate"); the type is the fake's guess.
  gate: { message: 'This model requires third-party data sharing to be enabled for your organization.', type: 'invalid_request_error', param: null, code: 'third_party_data_sharing_blocked' },
  // The facts file gives only "422 ... the safety checker refusing a prompt"; this wording and code are the fake's.
  safety: { message: 'The prompt was flagged by the safety checker and no image was generated.', type: 'invalid_request_error', param: 'prompt', code: 'content_policy_violation' },
}

/** A prompt containing this gets the safety checker's 422 (not billed). */
export const SAFETY_MARKER = '[fake-unsafe]'

/** Kontext's aspect ratios and the size each gives (skills api-reference.md, "Dimensions Guide"). @type {Record<string, [number, number]>} */
export const KONTEXT_SIZES = {
  '1:1': [1024, 1024], '16:9': [1344, 768], '9:16': [768, 1344], '4:3': [1184, 864], '3:2': [1248, 832],
}

/** @type {Accepts} */
const ANY = { steps: [1, 50], guidance: true, negativePrompt: true, promptUpsampling: true, size: { min: 64, max: 2048, multipleOf: 8 }, imageUrl: true, referenceImages: true }
const FLUX2_SIZE = { min: 256, max: 1920, multipleOf: 1 }
/** @param {Partial<Accepts>} a @returns {Accepts} */
const accepts = a => ({ steps: null, guidance: false, negativePrompt: false, promptUpsampling: false, size: FLUX2_SIZE, imageUrl: false, referenceImages: false, ...a })
/** @param {number} usd */
const perMegapixel = (usd, minSteps = 0) => ({ hourly: 0, input: 0, output: 0, base: 0, finetune: 0, image_pixel: minSteps ? { price_per_megapixel: usd, min_steps: minSteps } : { price_per_megapixel: usd } })
/** @param {number} usd */
const perImage = usd => ({ hourly: 0, input: 0, output: 0, base: 0, finetune: 0, image: { example_price: usd } })
const BFL = 'Black Forest Labs'

/**
 * What the fake serves (facts file: "FLUX models in the 2026-10-07 serverless catalog", "Per-model parameters",
 * "Known prices (2026)"; where a price is a range the lower figure). FLUX.1 Kontext [max]'s $0.08 per MP is BFL's
 * list price, not from the facts file. Two non-FLUX image models and one chat model stand beside them.
 * @type {FakeModel[]}
 */
export const MODELS = [
  { id: 'black-forest-labs/FLUX.2-pro', display_name: 'FLUX.2 [pro]', organization: BFL, gated: true, pricing: perMegapixel(0.03), accepts: accepts({ promptUpsampling: true, imageUrl: true, referenceImages: true }) },
  { id: 'black-forest-labs/FLUX.2-dev', display_name: 'FLUX.2 [dev]', organization: BFL, gated: true, pricing: perImage(0.0154), accepts: accepts({ steps: [1, 50], guidance: true, referenceImages: true }) },
  { id: 'black-forest-labs/FLUX.2-flex', display_name: 'FLUX.2 [flex]', organization: BFL, gated: true, pricing: perMegapixel(0.05), accepts: accepts({ steps: [1, 50], guidance: true, imageUrl: true, referenceImages: true }) },
  { id: 'black-forest-labs/FLUX.2-max', display_name: 'FLUX.2 [max]', organization: BFL, gated: true, pricing: perMegapixel(0.07), accepts: accepts({}) },
  { id: 'black-forest-labs/FLUX.1.1-pro', display_name: 'FLUX1.1 [pro]', organization: BFL, pricing: perMegapixel(0.04), accepts: accepts({ negativePrompt: true }) },
  { id: 'black-forest-labs/FLUX.1-kontext-pro', display_name: 'FLUX.1 Kontext [pro]', organization: BFL, pricing: perMegapixel(0.04, 28), accepts: accepts({ steps: [1, 50], size: 'aspect', imageUrl: true }) },
  { id: 'black-forest-labs/FLUX.1-kontext-max', display_name: 'FLUX.1 Kontext [max]', organization: BFL, pricing: perMegapixel(0.08, 28), accepts: accepts({ steps: [1, 50], size: 'aspect', imageUrl: true }) },
  { id: 'openai/gpt-image-2', display_name: 'GPT Image 2', organization: 'OpenAI', pricing: { hourly: 0, input: 0, output: 0, base: 0, finetune: 0 }, accepts: ANY },
  { id: 'Qwen/Qwen-Image', display_name: 'Qwen Image', organization: 'Qwen', pricing: perImage(0.0058), accepts: ANY },
  { id: 'meta-llama/Llama-3.3-70B-Instruct-Turbo', type: 'chat', display_name: 'Llama 3.3 70B Instruct Turbo', organization: 'Meta', pricing: { hourly: 0, input: 0.88, output: 0.88, base: 0, finetune: 0 } },
]

/** Body fields a model may not take, with the Accepts flag that allows each. */
const MODEL_PARAMS = /** @type {const} */ ([
  ['guidance_scale', 'guidance'], ['negative_prompt', 'negativePrompt'], ['prompt_upsampling', 'promptUpsampling'],
  ['image_url', 'imageUrl'], ['reference_images', 'referenceImages'],
])

/**
 * The first parameter `model` does not take or whose value it refuses, as the 400's message and param.
 * @param {FakeModel} model @param {Record<string, unknown>} b
 * @returns {{ message: string, param: string } | undefined}
 */
function modelParamError(model, b) {
  const a = model.accepts ?? ANY
  const has = (/** @type {string} */ key) => b[key] !== undefined && b[key] !== null
  const name = model.id
  if (has('steps')) {
    if (!a.steps) return { message: `Model ${name} does not support the steps parameter`, param: 'steps' }
    if (!int(a.steps[0], a.steps[1])(b.steps)) return { message: `steps must be an integer between ${a.steps[0]} and ${a.steps[1]}`, param: 'steps' }
  }
  for (const [key, flag] of MODEL_PARAMS) {
    if (has(key) && !a[flag]) return { message: `Model ${name} does not support the ${key} parameter`, param: key }
  }
  if (a.size === 'aspect') {
    if (has('aspect_ratio') && !Object.hasOwn(KONTEXT_SIZES, String(b.aspect_ratio))) {
      return { message: `aspect_ratio must be one of ${Object.keys(KONTEXT_SIZES).map(r => `"${r}"`).join(', ')}`, param: 'aspect_ratio' }
    }
  } else {
    if (has('aspect_ratio') && model.accepts) return { message: `Model ${name} does not support the aspect_ratio parameter`, param: 'aspect_ratio' }
    const { min, max, multipleOf } = a.size
    for (const side of ['width', 'height']) {
      if (has(side) && !int(min, max, multipleOf)(b[side])) {
        return { message: `${side} must be an integer${multipleOf > 1 ? ` multiple of ${multipleOf}` : ''} between ${min} and ${max}`, param: side }
      }
    }
  }
  return undefined
}

/**
 * The size of the image a model makes: Kontext's ratio (given, else the nearest to width/height), else width × height.
 * @param {FakeModel | undefined} model @param {Record<string, unknown>} b @param {Params} p
 * @returns {[number, number]}
 */
function outputSize(model, b, p) {
  if (model?.accepts?.size !== 'aspect') return [p.width, p.height]
  const given = String(b.aspect_ratio)
  if (Object.hasOwn(KONTEXT_SIZES, given)) return KONTEXT_SIZES[given]
  const distance = (/** @type {[number, number]} */ [w, h]) => Math.abs(Math.log(w / h) - Math.log(p.width / p.height))
  let best = KONTEXT_SIZES['1:1']
  for (const size of Object.values(KONTEXT_SIZES)) if (distance(size) < distance(best)) best = size
  return best
}

/** @param {number} status */
function defaultError(status) {
  if (status === 401) return ERR.auth
  if (status === 402) return ERR.credits
  return status === 429 || status === 500 || status === 503 ? ERR[status] : { message: `Forced ${status}`, type: 'server_error' }
}

/** @param {number} a */
function mulberry32(a) {
  return () => {
    a = (a + 0x6d2b79f5) | 0
    let t = Math.imul(a ^ (a >>> 15), 1 | a)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** @param {string} text */
const sha = text => createHash('sha256').update(text).digest()

// ---------------------------------------------------------------- images

/** @param {string} type @param {Buffer} data */
function pngChunk(type, data) {
  const head = Buffer.alloc(8)
  head.writeUInt32BE(data.length, 0)
  head.write(type, 4, 'latin1')
  const crc = Buffer.alloc(4)
  crc.writeUInt32BE(zlibCrc32(data, zlibCrc32(head.subarray(4))) >>> 0)
  return Buffer.concat([head, data, crc])
}

/**
 * A valid RGB PNG of width×height in one colour derived from seedText; padded with a private `flUx` chunk.
 * @param {number} width @param {number} height @param {string} seedText @param {number} [padTo]
 * @returns {Buffer}
 */
export function makePng(width, height, seedText, padTo = 0) {
  const [r = 0, g = 0, b = 0] = sha(seedText)
  const row = Buffer.alloc(1 + width * 3) // filter byte 0, then RGB triples
  for (let x = 0; x < width; x++) row.set([r, g, b], 1 + x * 3)
  const raw = Buffer.alloc(row.length * height)
  for (let y = 0; y < height; y++) row.copy(raw, y * row.length)
  const ihdr = Buffer.alloc(13)
  ihdr.writeUInt32BE(width, 0)
  ihdr.writeUInt32BE(height, 4)
  ihdr.set([8, 2, 0, 0, 0], 8) // depth 8, truecolour, deflate, adaptive filter, no interlace
  const parts = [Buffer.from('89504e470d0a1a0a', 'hex'), pngChunk('IHDR', ihdr), pngChunk('IDAT', deflateSync(raw))]
  const iend = pngChunk('IEND', Buffer.alloc(0))
  const size = parts.reduce((s, p) => s + p.length, iend.length)
  if (padTo > size) parts.push(pngChunk('flUx', Buffer.alloc(Math.max(0, padTo - size - 12))))
  return Buffer.concat([...parts, iend])
}

/** @param {number} marker @param {number[] | Buffer} data a JPEG marker segment (data ≤ 65533 bytes) */
function jpegSegment(marker, data) {
  const head = Buffer.from([0xff, marker, 0, 0])
  head.writeUInt16BE(data.length + 2, 2)
  return Buffer.concat([head, Buffer.from(data)])
}

// Huffman tables: the standard luminance DC table (ITU T.81 K.3) and an AC table holding only EOB (code '0').
const DC_BITS = [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0]
/** DC category → [code, length], built as in T.81 Annex C. */
const DC_CODES = (() => {
  /** @type {[number, number][]} */
  const codes = []
  let code = 0
  DC_BITS.forEach((count, i) => {
    for (let k = 0; k < count; k++) codes.push([code++, i + 1])
    code <<= 1
  })
  return codes
})()

/**
 * A valid baseline JPEG (YCbCr 4:4:4) of width×height in one colour derived from seedText, with a COM segment
 * naming that seed's hash (so bytes differ per seed) and further COM segments as padding up to padTo bytes.
 * @param {string} seedText @param {number} [padTo] @param {number} [width] @param {number} [height]
 * @returns {Buffer}
 */
export function makeJpeg(seedText, padTo = 0, width = 16, height = 16) {
  const hash = sha(seedText)
  const [r = 0, g = 0, b = 0] = hash
  const ycc = [0.299 * r + 0.587 * g + 0.114 * b, 128 - 0.168736 * r - 0.331264 * g + 0.5 * b, 128 + 0.5 * r - 0.418688 * g - 0.081312 * b]
  // Every 8×8 block is flat: a DC difference, then EOB. Only the first MCU has non-zero differences; every later
  // MCU is 3 × ('00' = DC diff 0, '0' = EOB) = 9 zero bits. The stream ends padded with 1s.
  const first = /** @type {number[]} */ ([])
  /** @param {number} value @param {number} length */
  const put = (value, length) => { for (let i = length - 1; i >= 0; i--) first.push((value >> i) & 1) }
  for (const c of ycc) {
    const dc = Math.round(8 * (c - 128)) // quantizer 1; within -1024..1016, so category ≤ 11
    const cat = dc === 0 ? 0 : Math.floor(Math.log2(Math.abs(dc))) + 1
    const [code = 0, len = 0] = DC_CODES[cat] ?? []
    put(code, len)
    put(dc < 0 ? dc + (1 << cat) - 1 : dc, cat)
    put(0, 1)
  }
  const totalBits = first.length + (Math.ceil(width / 8) * Math.ceil(height / 8) - 1) * 9
  const raw = Buffer.alloc(Math.ceil(totalBits / 8))
  first.forEach((bit, i) => { raw[i >> 3] |= bit << (7 - (i & 7)) })
  for (let i = totalBits; i < raw.length * 8; i++) raw[i >> 3] |= 1 << (7 - (i & 7))
  const scan = /** @type {number[]} */ ([])
  for (const byte of raw) byte === 0xff ? scan.push(0xff, 0) : scan.push(byte) // byte stuffing
  const tail = Buffer.concat([
    jpegSegment(0xdb, [0, ...Array(64).fill(1)]),
    jpegSegment(0xc0, [8, height >> 8, height & 255, width >> 8, width & 255, 3, 1, 0x11, 0, 2, 0x11, 0, 3, 0x11, 0]),
    jpegSegment(0xc4, [0x00, ...DC_BITS, ...Array.from({ length: 12 }, (_, i) => i)]),
    jpegSegment(0xc4, [0x10, 1, ...Array(15).fill(0), 0x00]),
    jpegSegment(0xda, [3, 1, 0x00, 2, 0x00, 3, 0x00, 0, 63, 0]),
    Buffer.from(scan),
    Buffer.from([0xff, 0xd9]),
  ])
  const head = Buffer.concat([Buffer.from([0xff, 0xd8]), jpegSegment(0xe0, [...Buffer.from('JFIF\0'), 1, 1, 0, 0, 1, 0, 1, 0, 0])])
  const segments = [jpegSegment(0xfe, Buffer.from(`fake-together ${hash.toString('hex')}`))]
  let missing = padTo - head.length - segments[0].length - tail.length
  while (missing > 0) {
    const seg = jpegSegment(0xfe, Buffer.alloc(Math.min(65533, Math.max(0, missing - 4)), 0x20))
    segments.push(seg)
    missing -= seg.length
  }
  return Buffer.concat([head, ...segments, tail])
}

// ---------------------------------------------------------------- request parsing

/** @param {unknown} v */
const nonEmpty = v => typeof v === 'string' && v.trim() !== ''
/** @param {number} min @param {number} max @param {number} [step] @returns {(v: unknown) => boolean} */
const int = (min, max, step = 1) => v => typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max && v % step === 0
/** @param {unknown[]} values @returns {(v: unknown) => boolean} */
const oneOf = values => v => values.includes(v)

/**
 * Params with defaults, plus the first validation error (as the real API would answer it), if any.
 * Absent or null optional keys take their default. A forced 200 uses the params and ignores the error.
 * @param {unknown} input
 * @returns {{ params: Params, error?: { message: string, param: string } }}
 */
function parseParams(input) {
  const b = /** @type {Record<string, unknown>} */ (input && typeof input === 'object' && !Array.isArray(input) ? input : {})
  /** @type {{ message: string, param: string } | undefined} */
  let error
  /** @param {string} key @param {unknown} fallback @param {boolean} required @param {(v: unknown) => boolean} ok @param {string} message */
  const field = (key, fallback, required, ok, message) => {
    const value = b[key] ?? (required ? undefined : fallback)
    if (ok(value)) return value
    error ??= { message, param: key }
    return fallback
  }
  const params = /** @type {Params} */ ({
    model: field('model', 'black-forest-labs/FLUX.1-schnell', true, nonEmpty, 'model is required'),
    prompt: field('prompt', 'forced', true, nonEmpty, 'prompt is required'),
    // Limits of width, height and steps depend on the model: modelParamError checks them.
    width: field('width', 1024, false, int(1, 100_000), 'width must be a positive integer'),
    height: field('height', 1024, false, int(1, 100_000), 'height must be a positive integer'),
    steps: field('steps', 20, false, int(1, 1000), 'steps must be a positive integer'),
    n: field('n', 1, false, int(1, 4), 'n must be an integer between 1 and 4'),
    seed: b.seed,
    responseFormat: field('response_format', 'url', false, oneOf(['base64', 'url']),
      `response_format must be one of "base64", "url" (got ${JSON.stringify(b.response_format)})`),
    outputFormat: field('output_format', 'jpeg', false, oneOf(['jpeg', 'png']), 'output_format must be one of "jpeg", "png"'),
  })
  return error ? { params, error } : { params }
}

// ---------------------------------------------------------------- server

/** Retired by Together (facts file, "The catalog moved"): 404 model_not_available. */
export const RETIRED_MODELS = ['black-forest-labs/FLUX.1-schnell', 'black-forest-labs/FLUX.1-schnell-Free', 'black-forest-labs/FLUX.1-dev']

const defaults = () => ({
  latencyMs: 0, credits: Infinity, retiredModels: RETIRED_MODELS, maxInFlight: Infinity,
  ratePerSecond: Infinity, faults: {}, seed: 1, imageBytes: 0, redirectDownloads: false, chunkedDownloads: false,
  dataSharing: true, extraModels: [],
})

/**
 * Starts the fake on 127.0.0.1 (random port).
 * @param {FakeTogetherOptions} [options]
 * @returns {Promise<FakeTogether>}
 */
export async function startFakeTogether(options = {}) {
  /** @type {Required<Omit<FakeTogetherOptions, 'apiKeys' | 'urlBase' | 'retryAfter' | 'catalogResponse'>> & FakeTogetherOptions} */
  const opts = defaults()
  /** @param {FakeTogetherOptions} partial undefined values restore the default */
  const apply = partial => {
    /** @type {Record<string, unknown>} */
    const fresh = defaults()
    for (const [key, value] of Object.entries(partial)) Object.assign(opts, { [key]: value ?? fresh[key] })
  }
  apply(options)
  let random = mulberry32(opts.seed)
  let tokens = opts.ratePerSecond
  let lastRefill = performance.now()
  let admitted = 0
  let nextId = 1
  /** @type {ForcedResponse[]} */
  let queue = []
  /** Set by close(): connections it cuts are not the client's aborts. */
  let closing = false
  /** @type {Map<string, StoredImage>} */
  const images = new Map()
  /** @type {Set<NodeJS.Timeout>} */
  const timers = new Set()
  /** @type {Set<import('node:net').Socket>} */
  const sockets = new Set()
  /** Responses the fake itself cut off (not the client's doing). @type {WeakSet<Res>} */
  const resetOnPurpose = new WeakSet()
  const newStats = () => ({ requests: 0, generations: 0, inFlight: 0, maxInFlight: 0, downloads: 0, downloadsWithAuth: 0, downloadsWithoutUA: 0, resets: 0, clientAborts: 0, catalogReads: 0, generationRequests: 0, byStatus: {} })
  /** @type {FakeStats} */
  const stats = newStats()
  /** @type {LogEntry[]} */
  const log = []

  /** @param {number} ms @returns {Promise<void>} */
  const sleep = ms => (ms > 0 ? new Promise(resolve => {
    const t = setTimeout(() => { timers.delete(t); resolve() }, ms)
    timers.add(t)
  }) : Promise.resolve())

  /** @param {Res} res @param {number} status @param {unknown} body @param {Record<string, string | number>} [headers] */
  function send(res, status, body, headers = {}) {
    if (res.destroyed || res.headersSent) return
    const text = typeof body === 'string' ? body : JSON.stringify(body)
    stats.byStatus[status] = (stats.byStatus[status] ?? 0) + 1
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers })
    res.end(text)
  }
  /** @param {Res} res */
  function destroy(res) {
    stats.resets++
    resetOnPurpose.add(res)
    res.socket?.destroy()
  }
  /** @param {string} message @param {string | null} param @param {string | null} code */
  const invalid = (message, param, code) => ({ error: { message, type: 'invalid_request_error', param, code } })

  /** The image model the fake serves under `id` now, or undefined (retired, unknown, or not an image model). */
  const servedModel = (/** @type {string} */ id) =>
    opts.retiredModels.includes(id) ? undefined : allModels().find(m => m.id === id && (m.type ?? 'image') === 'image')
  /** MODELS with extraModels added; an extra model with the id of a built-in one replaces it (e.g. to change a price). */
  const allModels = () => [...MODELS.filter(m => !opts.extraModels.some(e => e.id === m.id)), ...opts.extraModels]
  /** @param {import('node:http').IncomingMessage} req */
  const bearer = req => /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '')?.[1]
  /** @param {string | undefined} token */
  const keyRejected = token => !token || (opts.apiKeys !== undefined && !opts.apiKeys.includes(token))

  /** GET /v1/models: the models served now, in Together's ModelInfo shape (a bare array). @param {import('node:http').IncomingMessage} req @param {Res} res */
  function catalog(req, res) {
    stats.catalogReads++
    if (keyRejected(bearer(req))) return send(res, 401, { error: ERR.auth })
    const forced = opts.catalogResponse
    if (forced) {
      if (forced.reset) return destroy(res)
      return send(res, forced.status, forced.body ?? { error: defaultError(forced.status) }, forced.headers)
    }
    const list = allModels()
      .filter(m => !opts.retiredModels.includes(m.id))
      .map((m, i) => ({ id: m.id, object: 'model', created: 1_760_000_000 + i, type: m.type ?? 'image', display_name: m.display_name ?? m.id, organization: m.organization ?? m.id.split('/')[0], pricing: m.pricing ?? { hourly: 0, input: 0, output: 0, base: 0, finetune: 0 } }))
    send(res, 200, list)
  }

  /** Takes a token, or returns the ms until the next one. */
  function takeToken() {
    const rate = opts.ratePerSecond
    if (!Number.isFinite(rate)) return 0
    const now = performance.now()
    tokens = Math.min(rate, tokens + ((now - lastRefill) / 1000) * rate)
    lastRefill = now
    if (tokens >= 1) { tokens -= 1; return 0 }
    return Math.max(1, Math.ceil(((1 - tokens) / rate) * 1000))
  }

  /** @param {Params} p @param {{ truncate: boolean, expire: boolean }} dl @param {[number, number]} size what the model makes */
  function success(p, dl, [width, height]) {
    const data = []
    for (let index = 0; index < p.n; index++) {
      const seedText = `${p.prompt}\n${String(p.seed ?? '')}\n${index}`
      const bytes = p.outputFormat === 'png' ? makePng(width, height, seedText, opts.imageBytes) : makeJpeg(seedText, opts.imageBytes, width, height)
      const timings = { inference: opts.latencyMs / 1000 }
      if (p.responseFormat === 'base64') {
        data.push({ index, type: 'b64_json', b64_json: bytes.toString('base64'), timings })
      } else {
        const id = randomBytes(12).toString('base64url')
        images.set(id, { bytes, type: p.outputFormat === 'png' ? 'image/png' : 'image/jpeg', ...dl })
        data.push({ index, type: 'url', url: `${opts.urlBase ?? `${fake.origin}/shrt/`}${id}`, timings })
      }
    }
    return { id: `fake-${nextId++}`, model: p.model, object: 'list', data }
  }

  /** @param {import('node:http').IncomingMessage} req @param {Res} res @param {unknown} body */
  async function generate(req, res, body) {
    const forced = queue.shift()
    if (forced) {
      if (forced.status === 200 && forced.body === undefined && !forced.reset) {
        const { params } = parseParams(body)
        await sleep(forced.delayMs ?? opts.latencyMs)
        opts.credits = Math.max(0, opts.credits - params.n)
        stats.generations += params.n
        const size = outputSize(servedModel(params.model), /** @type {Record<string, unknown>} */ (body ?? {}), params)
        return send(res, 200, success(params, { truncate: false, expire: false }, size), forced.headers)
      }
      await sleep(forced.delayMs ?? 0)
      if (forced.reset) return destroy(res)
      return send(res, forced.status, forced.body ?? { error: defaultError(forced.status) }, forced.headers)
    }

    const token = bearer(req)
    if (keyRejected(token)) return send(res, 401, { error: ERR.auth })
    if (body === null || typeof body !== 'object' || Array.isArray(body)) return send(res, 400, invalid('Request body must be a JSON object', null, null))
    const b = /** @type {Record<string, unknown>} */ (body)
    const { params, error } = parseParams(body)
    if (error) return send(res, 400, invalid(error.message, error.param, null))
    const model = servedModel(params.model)
    if (!model) {
      return send(res, 404, invalid(`Unable to access model ${params.model}. Please visit https://api.together.ai/models to view the list of supported models.`, 'model', 'model_not_available'))
    }
    if (model.gated && (!opts.dataSharing || token?.startsWith('gated-'))) return send(res, 403, { error: ERR.gate })
    const paramError = modelParamError(model, b)
    if (paramError) return send(res, 400, invalid(paramError.message, paramError.param, null))
    if (params.prompt.includes(SAFETY_MARKER)) return send(res, 422, { error: ERR.safety })
    if (opts.credits < params.n) return send(res, 402, { error: ERR.credits })
    if (admitted >= opts.maxInFlight) return send(res, 429, { error: ERR[429] }, { 'retry-after': '1', 'x-ratelimit-remaining': '0' })
    const waitMs = takeToken()
    if (waitMs > 0) {
      const s = String(Math.ceil(waitMs / 1000))
      return send(res, 429, { error: ERR[429] }, { 'retry-after': s, 'retry-after-ms': String(waitMs), 'x-ratelimit-reset': s, 'x-ratelimit-remaining': '0' })
    }

    admitted++
    const admittedAt = performance.now()
    try {
      const f = opts.faults
      const r = random()
      const dl = random()
      let acc = 0
      for (const [key, status] of /** @type {const} */ ([['status500', 500], ['status503', 503], ['status429', 429], ['reset', 0]])) {
        if (r >= (acc += f[key] ?? 0)) continue
        await sleep(Math.min(opts.latencyMs, 10))
        if (status === 0) return destroy(res)
        return send(res, status, { error: defaultError(status) }, status === 429 ? { 'retry-after': opts.retryAfter ?? '1', 'x-ratelimit-remaining': '0' } : {})
      }
      opts.credits -= params.n // reserved now, so concurrent requests cannot overspend
      const truncate = dl < (f.truncate ?? 0)
      const expire = !truncate && dl < (f.truncate ?? 0) + (f.expire ?? 0)
      // latencyMs is the whole answer time from admission, like a real service's: making and encoding the image
      // (~3 ms for 150 KB alone, more when 8 requests arrive together on this one thread) is part of it, not added.
      const answer = JSON.stringify(success(params, { truncate, expire }, outputSize(model, b, params)))
      await sleep(opts.latencyMs - (performance.now() - admittedAt))
      stats.generations += params.n
      /** @type {Record<string, string>} */
      const headers = Number.isFinite(opts.ratePerSecond) ? { 'x-ratelimit-limit': String(opts.ratePerSecond), 'x-ratelimit-remaining': String(Math.floor(tokens)) } : {}
      send(res, 200, answer, headers)
    } finally {
      admitted--
    }
  }

  /** @param {import('node:http').IncomingMessage} req @param {Res} res @param {string} path */
  function download(req, res, path) {
    stats.downloads++
    if (req.headers.authorization !== undefined) stats.downloadsWithAuth++
    if (!req.headers['user-agent']?.trim()) {
      stats.downloadsWithoutUA++
      return send(res, 403, '<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>', { 'content-type': 'application/xml' })
    }
    const [, hop, id = ''] = /** @type {RegExpExecArray} */ (/^\/(shrt|img)\/([^/?]*)/.exec(path))
    const image = images.get(id)
    if (!image || image.expire) return send(res, 404, '<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>', { 'content-type': 'application/xml' })
    if (hop === 'shrt' && opts.redirectDownloads) return send(res, 302, '', { location: `${fake.origin}/img/${id}`, 'content-type': 'text/plain' })
    stats.byStatus[200] = (stats.byStatus[200] ?? 0) + 1
    if (opts.chunkedDownloads && req.method === 'GET') {
      res.writeHead(200, { 'content-type': image.type })
      for (let i = 0; i < image.bytes.length; i += 65536) res.write(image.bytes.subarray(i, i + 65536))
      return res.end()
    }
    res.writeHead(200, { 'content-type': image.type, 'content-length': image.bytes.length })
    if (image.truncate) {
      image.truncate = false // one broken transfer; the next download of this URL succeeds
      res.write(image.bytes.subarray(0, image.bytes.length >> 1), () => destroy(res))
      return
    }
    res.end(req.method === 'HEAD' ? undefined : image.bytes)
  }

  const server = createServer((req, res) => {
    const path = req.url ?? '/'
    /** @type {Buffer[]} */
    const chunks = []
    req.on('data', c => chunks.push(c))
    req.on('end', () => {
      stats.requests++
      let body = null
      try { body = chunks.length ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : null } catch { body = null }
      log.push({ method: req.method ?? '', path, headers: /** @type {Record<string, string>} */ ({ ...req.headers }), body })
      const route = path.split('?')[0]
      if (route === '/v1/images/generations') {
        if (req.method !== 'POST') return send(res, 405, invalid(`Method ${req.method} not allowed`, null, 'method_not_allowed'), { allow: 'POST' })
        stats.generationRequests++
        stats.inFlight++
        stats.maxInFlight = Math.max(stats.maxInFlight, stats.inFlight)
        res.on('close', () => {
          stats.inFlight--
          if (!res.writableFinished && !resetOnPurpose.has(res) && !closing) stats.clientAborts++
        })
        generate(req, res, body).catch(err => send(res, 500, { error: { message: String(err), type: 'server_error' } }))
      } else if (route === '/v1/models' && req.method === 'GET') {
        catalog(req, res)
      } else if (/^\/(shrt|img)\//.test(route) && (req.method === 'GET' || req.method === 'HEAD')) {
        download(req, res, route)
      } else {
        send(res, 404, invalid(`Unknown endpoint ${req.method} ${route}`, null, 'not_found'))
      }
    })
  })
  server.on('connection', socket => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  })
  await new Promise((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', () => resolve(undefined)))
  const address = /** @type {import('node:net').AddressInfo} */ (server.address())
  const origin = `http://127.0.0.1:${address.port}`

  /** @type {FakeTogether} */
  const fake = {
    origin,
    baseURL: `${origin}/v1`,
    stats,
    log,
    set(partial) {
      apply(partial)
      if ('seed' in partial) random = mulberry32(opts.seed)
      if ('ratePerSecond' in partial) { tokens = opts.ratePerSecond; lastRefill = performance.now() }
    },
    enqueue(...responses) { queue.push(...responses) },
    reset() {
      const { inFlight } = stats
      Object.assign(stats, newStats(), { inFlight, maxInFlight: inFlight })
      log.length = 0
      queue = []
      random = mulberry32(opts.seed)
      tokens = opts.ratePerSecond
      lastRefill = performance.now()
    },
    async close() {
      closing = true
      for (const t of timers) clearTimeout(t)
      timers.clear()
      const closed = new Promise(resolve => server.close(() => resolve(undefined)))
      server.closeAllConnections()
      for (const s of sockets) s.destroy()
      await closed
    },
  }
  return fake
}
