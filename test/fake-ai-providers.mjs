// Small fakes of two image APIs that AI SDK providers call, on 127.0.0.1, answering what the providers' own client
// code expects (read in @ai-sdk/fal 2.0 fal-image-model.ts and @ai-sdk/openai-compatible 2.0
// openai-compatible-image-model.ts, the versions installed for these tests):
//
// fal (`createFal({ baseURL })`): `POST <baseURL>/<modelId>`, header `Authorization: Key <key>`, body `{ prompt, seed,
//   image_size: { width, height } | a preset, num_images, ...providerOptions.fal mapped to snake_case }`. Answer
//   `{ images: [{ url, width, height, content_type }], timings, seed, has_nsfw_concepts: [bool], prompt }` (the
//   provider's falImageResponseSchema); the image is then fetched from `url` with a GET. Errors: FastAPI style
//   `{ detail: "..." }` or `{ detail: [{ loc, msg, type }] }` (falErrorSchema), status as HTTP.
// OpenAI-compatible (`createOpenAICompatible({ name, baseURL, apiKey })`): `POST <baseURL>/images/generations`,
//   `Authorization: Bearer <key>`, body `{ model, prompt, n, size: "WxH", ...providerOptions[name],
//   response_format: "b64_json" }`. Answer `{ created, data: [{ b64_json }] }`; errors `{ error: { message, type,
//   code } }` (defaultOpenAICompatibleErrorStructure).
import { createServer } from 'node:http'
import { makePng } from './fake-together.mjs'

/** A prompt containing this gets fal's safety answer: a black image and `has_nsfw_concepts: [true]`. */
export const NSFW_MARKER = '[fake-nsfw]'

/** @type {Record<string, [number, number]>} */
const FAL_PRESETS = {
  square_hd: [1024, 1024],
  square: [512, 512],
  portrait_4_3: [768, 1024],
  portrait_16_9: [576, 1024],
  landscape_4_3: [1024, 768],
  landscape_16_9: [1024, 576],
}

/**
 * @param {{ kind: 'fal' | 'openai-compatible', key: string }} options
 * `force(...answers)`: the next requests get these answers instead (`{ status, headers?, body? }`).
 */
export async function startFakeProvider({ kind, key }) {
  /** @type {Array<{ method: string, path: string, headers: Record<string, unknown>, body: any }>} */
  const log = []
  /** @type {Array<{ status: number, headers?: Record<string, string>, body?: unknown }>} */
  const forced = []
  /** @type {Map<string, Buffer>} */
  const files = new Map()
  let generations = 0
  let origin = ''

  /** @param {import('node:http').ServerResponse} res @param {number} status @param {unknown} body @param {Record<string, string>} [headers] */
  const send = (res, status, body, headers = {}) => {
    const text = typeof body === 'string' ? body : JSON.stringify(body)
    res.writeHead(status, { 'content-type': 'application/json', ...headers })
    res.end(text)
  }
  /** @param {string} message */
  const error = message => (kind === 'fal' ? { detail: message } : { error: { message, type: 'invalid_request_error', code: null } })

  const server = createServer(async (req, res) => {
    const chunks = []
    for await (const chunk of req) chunks.push(chunk)
    const text = Buffer.concat(chunks).toString('utf8')
    const path = new URL(req.url ?? '/', 'http://x').pathname
    /** @type {any} */
    let body
    try {
      body = text ? JSON.parse(text) : undefined
    } catch {
      body = text
    }
    log.push({ method: req.method ?? '', path, headers: req.headers, body })

    if (req.method === 'GET' && files.has(path)) {
      res.writeHead(200, { 'content-type': 'image/png' })
      return res.end(files.get(path))
    }
    if (req.method !== 'POST') return send(res, 404, error('Not Found'))
    const next = forced.shift()
    if (next) return send(res, next.status, next.body ?? error(`forced ${next.status}`), next.headers)

    const auth = String(req.headers.authorization ?? '')
    // OpenAI's 401 quotes the key it got ("Incorrect API key provided: sk-...", masked there): quoted whole here, so
    // that the redaction of a key learnt from the request's own header is put to the test.
    if (auth !== (kind === 'fal' ? `Key ${key}` : `Bearer ${key}`)) return send(res, 401, error(kind === 'fal' ? 'Authentication is required to perform this action' : `Incorrect API key provided: ${auth.replace(/^Bearer /, '')}.`))

    if (kind === 'fal') {
      if (!path.startsWith('/fal-ai/')) return send(res, 404, { detail: 'Application not found' })
      /** @type {[number, number] | undefined} */
      const size = typeof body.image_size === 'string' ? FAL_PRESETS[body.image_size] : body.image_size ? [body.image_size.width, body.image_size.height] : [1024, 768]
      if (!size) return send(res, 422, { detail: [{ loc: ['body', 'image_size'], msg: 'value is not a valid enumeration member', type: 'type_error.enum' }] })
      generations++
      const nsfw = String(body.prompt).includes(NSFW_MARKER)
      const file = `/files/${generations}.png`
      files.set(file, makePng(size[0], size[1], nsfw ? 'black' : `fal ${body.prompt} ${body.seed ?? ''}`))
      return send(res, 200, {
        images: [{ url: `${origin}${file}`, width: size[0], height: size[1], content_type: 'image/png' }],
        timings: { inference: 0.01 },
        seed: body.seed ?? 42,
        has_nsfw_concepts: [nsfw],
        prompt: body.prompt,
      })
    }

    if (path !== '/v1/images/generations') return send(res, 404, error('Not Found'))
    const [width = 1024, height = 1024] = String(body.size ?? '1024x1024').split('x').map(Number)
    generations++
    const png = makePng(width, height, `openai-compatible ${body.model} ${body.prompt}`)
    return send(res, 200, { created: Math.floor(Date.now() / 1000), data: [{ b64_json: png.toString('base64') }] })
  })

  await new Promise(resolve => server.listen(0, '127.0.0.1', () => resolve(undefined)))
  const address = server.address()
  origin = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`
  return {
    baseURL: kind === 'fal' ? origin : `${origin}/v1`,
    log,
    get generations() {
      return generations
    },
    /** @param {...{ status: number, headers?: Record<string, string>, body?: unknown }} answers */
    force: (...answers) => void forced.push(...answers),
    close: () => new Promise(resolve => (server.closeAllConnections(), server.close(() => resolve(undefined)))),
  }
}
