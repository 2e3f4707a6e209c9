import { EnvHttpProxyAgent, request } from 'undici'
import { ApiError, ImageError } from '../errors'
import { verifyImage } from '../image'
import { parseRetryAfter } from '../retry'
import type { ImageSettings, ResolvedOptions } from '../types'
import { type Catalog, fetchCatalog, type FetchLike } from './catalog'
import type { ImageProvider } from './contract'

export const USER_AGENT = 'unplugin-flux-assets (+https://github.com/unplugin/unplugin-flux-assets)'
const RETRY_STATUSES = new Set([408, 409, 429, 500, 502, 503, 504])
const NETWORK_CODES = new Set([
  'ECONNRESET', 'ECONNREFUSED', 'ETIMEDOUT', 'EPIPE', 'EAI_AGAIN', 'ENETUNREACH', 'EHOSTUNREACH',
  'UND_ERR_SOCKET', 'UND_ERR_CLOSED', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_RES_CONTENT_LENGTH_MISMATCH',
])
/** Connecting failed before any byte was exchanged. */
const UNREACHABLE_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ENETUNREACH', 'EHOSTUNREACH', 'UND_ERR_CONNECT_TIMEOUT'])
/** The catalog lists every model Together serves (~200 today, ~300 KB): 8 MB is far beyond any real answer. */
const MAX_CATALOG_BYTES = 8 * 1024 * 1024
/** Download tries per generated image before paying for a new one (a URL that 404s is regenerated at once). */
const DOWNLOAD_TRIES = 3

type TogetherOptions = Pick<ResolvedOptions, 'apiKey' | 'baseURL' | 'responseFormat' | 'timeout' | 'maxImageBytes' | 'concurrency'>

/** Together.ai `POST /images/generations`, base64 or url mode, over one keep-alive connection pool. */
export function createTogetherProvider(options: TogetherOptions): ImageProvider {
  const { apiKey, baseURL, responseFormat, timeout, maxImageBytes } = options
  // HTTPS_PROXY / HTTP_PROXY / NO_PROXY as other Node tools read them (a corporate proxy must not look like "API
  // unreachable"); without them it is a plain keep-alive pool (undici EnvHttpProxyAgent).
  const agent = new EnvHttpProxyAgent({ connections: options.concurrency + 2, keepAliveTimeout: 30_000 })
  const apiOrigin = new URL(baseURL).origin
  // base64 inflates by 4/3; allow for the JSON around it.
  const maxJsonBytes = Math.ceil(maxImageBytes * 1.4) + 64 * 1024

  async function call<T>(url: string, signal: AbortSignal | undefined, run: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const timer = AbortSignal.timeout(timeout)
    try {
      return await run(signal ? AbortSignal.any([signal, timer]) : timer)
    } catch (error) {
      if (signal?.aborted) throw signal.reason
      if (timer.aborted) throw new ApiError('FLUX_TIMEOUT', `no answer from ${hostOf(url)} within ${timeout / 1000} s`, undefined, true)
      const code = (error as { code?: string }).code ?? ''
      // No connection at all (refused, no such host): the API is unreachable for every image, not just this one.
      if (UNREACHABLE_CODES.has(code)) throw new ApiError('FLUX_UNREACHABLE', `cannot reach ${hostOf(url)} (${code})`, undefined, true)
      if (NETWORK_CODES.has(code)) throw new ApiError('FLUX_NETWORK', `connection to ${hostOf(url)} failed (${code})`, undefined, true)
      if (error instanceof ApiError || error instanceof ImageError) throw error
      // Never pass the original error on: undici errors can carry request options, and so the key.
      throw new ApiError('FLUX_NETWORK', `request to ${hostOf(url)} failed (${code || (error as Error).name})`, undefined, false)
    }
  }

  async function generateOnce(prompt: string, settings: ImageSettings, signal?: AbortSignal, onPaid?: () => void) {
    const url = `${baseURL}/images/generations`
    // Exactly the settings planned for this model (models.ts): a field absent from them is not sent.
    const body = {
      model: settings.model,
      prompt,
      ...(settings.aspectRatio !== undefined ? { aspect_ratio: settings.aspectRatio } : { width: settings.width, height: settings.height }),
      ...(settings.steps !== undefined ? { steps: settings.steps } : {}),
      ...(settings.guidance !== undefined ? { guidance_scale: settings.guidance } : {}),
      ...(settings.negativePrompt !== undefined ? { negative_prompt: settings.negativePrompt } : {}),
      ...(settings.promptUpsampling !== undefined ? { prompt_upsampling: settings.promptUpsampling } : {}),
      ...(settings.seed !== undefined ? { seed: settings.seed } : {}),
      n: 1,
      response_format: responseFormat,
      output_format: settings.outputFormat,
    }
    return call(url, signal, async s => {
      const res = await request(url, {
        method: 'POST',
        dispatcher: agent,
        signal: s,
        headers: {
          authorization: `Bearer ${apiKey}`,
          'content-type': 'application/json',
          accept: 'application/json',
          'user-agent': USER_AGENT,
        },
        body: JSON.stringify(body),
      })
      // A success answer is billed, whatever happens to its image afterwards.
      if (res.statusCode >= 200 && res.statusCode < 300) onPaid?.()
      const text = (await readLimited(res.body, maxJsonBytes, 'API response')).toString('utf8')
      if (res.statusCode >= 300) throw apiError(res.statusCode, text, res.headers, settings.model)
      let json: unknown
      try {
        json = JSON.parse(text)
      } catch {
        throw new ApiError('FLUX_BAD_RESPONSE', `the API answered ${res.statusCode} with something that is not JSON`, res.statusCode, true)
      }
      // Every field's type is checked before it is used: a hostile answer ({"b64_json":{"length":3e9}}) must not
      // reach Buffer.from, which would allocate gigabytes synchronously, out of the timeout's reach.
      const data = (json as { data?: unknown } | null)?.data
      const item: unknown = Array.isArray(data) ? data[0] : undefined
      const b64 = isObject(item) ? item.b64_json : undefined
      const imageUrl = isObject(item) ? item.url : undefined
      const responseId = responseIdOf((json as { id?: unknown } | null)?.id, apiKey)
      if (b64 !== undefined && b64 !== null) {
        if (typeof b64 !== 'string') throw new ApiError('FLUX_BAD_RESPONSE', `the API answered with a b64_json that is not a string (${typeof b64})`, res.statusCode, true)
        // The decoded size, from the text's length, before decoding: an oversized image is never held twice.
        const size = base64Size(b64)
        if (size > maxImageBytes) throw tooLarge(size)
        const bytes = Buffer.from(b64, 'base64')
        verifyImage(bytes)
        return { bytes, responseId }
      }
      if (typeof imageUrl === 'string' && imageUrl) return { bytes: await download(imageUrl, signal), responseId }
      throw new ApiError('FLUX_BAD_RESPONSE', 'the API answered without an image (no data[0].b64_json or url)', res.statusCode, true)
    })
  }

  /** Fetches a url-mode image now: https only (or the API's own origin), no redirects, no Authorization, size-capped. */
  async function download(imageUrl: string, signal?: AbortSignal): Promise<Buffer> {
    let parsed: URL
    try {
      parsed = new URL(imageUrl)
    } catch {
      throw new ApiError('FLUX_BAD_URL', `the API returned an invalid image URL`, undefined, false)
    }
    if (parsed.protocol !== 'https:' && parsed.origin !== apiOrigin) {
      throw new ApiError('FLUX_BAD_URL', `refusing to download ${parsed.origin}: image URLs must be https or on the API's own origin`, undefined, false)
    }
    for (let attempt = 1; ; attempt++) {
      try {
        return await call(imageUrl, signal, async s => {
          const res = await request(parsed, {
            method: 'GET',
            dispatcher: agent,
            signal: s,
            headers: { 'user-agent': USER_AGENT, accept: 'image/*' },
          })
          if (res.statusCode >= 300 && res.statusCode < 400) {
            await res.body.dump()
            throw new ApiError('FLUX_BAD_URL', `the image URL redirected (${res.statusCode}); redirects are not followed`, res.statusCode, false)
          }
          if (res.statusCode !== 200) {
            await res.body.dump()
            // 404/410: the URL expired: a new image must be generated, which the caller's retry does.
            throw new ApiError('FLUX_DOWNLOAD', `downloading the image failed (${res.statusCode})`, res.statusCode, true)
          }
          const length = Number(res.headers['content-length'])
          if (length > maxImageBytes) {
            res.body.destroy()
            throw tooLarge(length)
          }
          const bytes = await readLimited(res.body, maxImageBytes, 'image')
          verifyImage(bytes)
          return bytes
        })
      } catch (error) {
        const retryDownload = attempt < DOWNLOAD_TRIES && (error as ApiError).retryable && ![404, 410].includes((error as ApiError).status ?? 0)
        if (!retryDownload) throw error
      }
    }
  }

  /** `GET /models` over the same pool, the body size-capped like every other answer. */
  const catalogFetch: FetchLike = async (url, init) => {
    const res = await request(url, { method: 'GET', headers: init.headers, signal: init.signal, dispatcher: agent })
    const text = (await readLimited(res.body, MAX_CATALOG_BYTES, 'model catalog')).toString('utf8')
    return { status: res.statusCode, text: async () => text }
  }

  let closed = false
  return {
    id: 'together',
    generate: generateOnce,
    catalog: (signal?: AbortSignal): Promise<Catalog> => fetchCatalog(baseURL, apiKey ?? '', catalogFetch, { signal, userAgent: USER_AGENT }),
    // Once: a second close() of an undici agent rejects (ClientDestroyedError).
    close: async () => {
      if (closed) return
      closed = true
      await agent.close()
    },
  }
}

async function readLimited(body: AsyncIterable<Buffer> & { destroy(): void }, max: number, what: string): Promise<Buffer> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of body) {
    size += chunk.length
    if (size > max) {
      body.destroy()
      throw what === 'image' ? tooLarge(size) : new ApiError('FLUX_BAD_RESPONSE', `the ${what} is larger than ${max} bytes`, undefined, false)
    }
    chunks.push(chunk)
  }
  return Buffer.concat(chunks)
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/**
 * The response id worth keeping in the cache record (which users commit): only something shaped like an id, and
 * never one that holds the key (an answer echoing the bearer token), or any 16-character run of it.
 */
export function responseIdOf(id: unknown, apiKey: string | undefined): string | undefined {
  if (typeof id !== 'string' || !/^[\w.:-]{1,128}$/.test(id)) return undefined
  if (apiKey && apiKey.length >= 4) {
    const run = Math.min(16, apiKey.length)
    for (let i = 0; i + run <= apiKey.length; i++) if (id.includes(apiKey.slice(i, i + run))) return undefined
  }
  return id
}

/** Bytes that base64 text decodes to (at most: Buffer.from skips what is not base64). */
function base64Size(text: string): number {
  const padding = text.endsWith('==') ? 2 : text.endsWith('=') ? 1 : 0
  return Math.floor((text.length * 3) / 4) - padding
}

function tooLarge(size: number): ImageError {
  return new ImageError(`the image is larger than the size cap (${size} bytes; raise maxImageBytes)`, false)
}

/** An error a person can act on, from Together's `{ error: { message, type, code } }` body. */
function apiError(status: number, text: string, headers: Record<string, string | string[] | undefined>, model: string): ApiError {
  let message: string
  let errorCode = ''
  try {
    const body = JSON.parse(text)
    message = String(body?.error?.message ?? body?.message ?? '') || text.slice(0, 200)
    errorCode = String(body?.error?.code ?? '')
  } catch {
    message = text.slice(0, 200)
  }
  message = message.replace(/\s+/g, ' ').trim() || 'no message'
  // Statuses and codes as together-api-facts.md lists them (Together's OpenAPI spec and docs, checked 2026-12).
  switch (status) {
    case 401:
      return new ApiError('FLUX_AUTH', `API key rejected (401): ${message}`, status, false)
    case 402:
      return new ApiError('FLUX_CREDITS', `out of credits (402): ${message}`, status, false)
    case 403:
      return new ApiError(
        'FLUX_GATED',
        errorCode === 'third_party_data_sharing_blocked'
          ? `the Together account may not use "${model}" (403 third_party_data_sharing_blocked): allow third-party data sharing (Together: Settings → Privacy, third-party / passthrough models), then build again; nothing was billed`
          : `the API refused access (403): ${message}`,
        status,
        false,
      )
    case 404:
      return new ApiError('FLUX_MODEL', `model "${model}" is not available (404): ${message}`, status, false)
    case 422:
      // Validation and the safety checker both answer 422; only the message tells them apart.
      if (errorCode === 'content_policy_violation' || /safety|nsfw|moderation|content polic|flagged|inappropriate/i.test(message)) {
        return new ApiError('FLUX_SAFETY', `the provider's safety system refused the prompt (422): ${message}`, status, false)
      }
  }
  const retryable = RETRY_STATUSES.has(status)
  const code = status === 429 ? 'FLUX_RATE_LIMIT' : status >= 500 ? 'FLUX_SERVER' : 'FLUX_REQUEST'
  return new ApiError(code, `the API answered ${status}: ${message}`, status, retryable, retryable ? parseRetryAfter(headers) : undefined)
}

function hostOf(url: string): string {
  try {
    return new URL(url).host
  } catch {
    return 'the API'
  }
}
