// The adapter between the provider contract and any AI SDK image model (#15): one `generateImage` call per attempt
// (`maxRetries: 0`: retries, pacing and the breaker are schedule.ts's), its errors mapped to the contract's codes.
//
// Read in the sources (ai 6.0, @ai-sdk/provider-utils 4.0, @ai-sdk/fal 2.0, @ai-sdk/openai-compatible 2.0):
// - ai generate-image.ts: `generateImage({ model, prompt, n, size, aspectRatio, seed, providerOptions, maxRetries,
//   abortSignal })`; `maxRetries: 0` rethrows the model's error as it is (retry-with-exponential-backoff.ts); its
//   warnings go to `logWarnings`, which `globalThis.AI_SDK_LOG_WARNINGS` (false / a function) replaces.
// - provider-utils post-to-api.ts / get-from-api.ts: every request goes through `config.fetch` (else the global
//   fetch); a non-2xx answer is an `APICallError` with `statusCode`, `responseHeaders`, `responseBody`; an error the
//   fetch itself throws comes out unchanged (handle-fetch-error.ts), so ours keep their codes; `loadApiKey` throws
//   `LoadAPIKeyError` before any request when the variable is unset (fal's own `loadFalApiKey` a plain Error with
//   "API key is missing").
// - fal-image-model.ts: POST `<baseURL>/<modelId>` with `image_size` { width, height } from `size`, a preset from
//   `aspectRatio`; the answer's `images[].url` is downloaded with the same fetch; `has_nsfw_concepts[i]` becomes
//   `providerMetadata.fal.images[i].nsfw`. openai-compatible-image-model.ts: POST `<baseURL>/images/generations`
//   with `size` and `response_format: 'b64_json'`; `seed` and `aspectRatio` are warned about, not sent.
import { AsyncLocalStorage } from 'node:async_hooks'
import { ApiError, FluxError, ImageError, redact } from '../errors'
import { verifyImage } from '../image'
import { parseRetryAfter } from '../retry'
import type { AiSdkImageModel, ImageSettings, ResolvedOptions } from '../types'
import { describeModel } from './ai-sdk-models'
import type { ImageProvider } from './contract'

type AiModule = Pick<typeof import('ai'), 'generateImage' | 'APICallError' | 'LoadAPIKeyError' | 'NoImageGeneratedError'>
type Options = Pick<ResolvedOptions, 'timeout' | 'maxImageBytes' | 'logger' | 'keyNames' | 'providerEnv' | 'apiKey'>

/** Request headers that carry a provider's key (fal `Authorization: Key`, BFL `x-key`, Google `x-goog-api-key`, ...). */
const AUTH_HEADERS = ['authorization', 'proxy-authorization', 'x-key', 'x-api-key', 'api-key', 'x-goog-api-key']
const UNREACHABLE_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ENETUNREACH', 'EHOSTUNREACH', 'UND_ERR_CONNECT_TIMEOUT', 'ConnectionRefused', 'FailedToOpenSocket'])
const RETRY_STATUSES = new Set([408, 409, 429, 500, 502, 503, 504])
const SAFETY = /safety|nsfw|moderation|content.?polic|flagged|inappropriate|not allowed by our/i

/** Set while one of our calls runs: the SDK's own warning log stays quiet for it (we say each warning once). */
const ourCall = new AsyncLocalStorage<true>()
const HOOK = Symbol.for('unplugin-flux-assets.ai-sdk-warnings')

/** Loads `ai` (an optional peer): a clear message when it is not installed. */
async function loadAi(name: string): Promise<AiModule> {
  try {
    return await import('ai')
  } catch (error) {
    const code = (error as { code?: string }).code
    if (code !== 'ERR_MODULE_NOT_FOUND' && code !== 'MODULE_NOT_FOUND') throw error
    throw new FluxError('FLUX_BAD_OPTION', `the \`model\` option is an AI SDK model (${name}), which needs the \`ai\` package: npm install ai`)
  }
}

/** The adapter for one AI SDK image model. `ai` is imported here, on the first image that must be generated. */
export async function createAiSdkProvider(model: AiSdkImageModel, options: Options): Promise<ImageProvider> {
  const name = describeModel(model)
  const ai = await loadAi(name)
  quietSdkWarnings()
  // A key found only in <root>/.env: where the provider looks for it, as dotenv would put it (never overriding).
  for (const [key, value] of Object.entries(options.providerEnv ?? {})) if (process.env[key] === undefined) process.env[key] = value

  const secrets = new Set<string>(options.apiKey ? [options.apiKey] : [])
  const clean = (text: string) => [...secrets].reduce((t, s) => redact(t, s), text)
  const guard = guardedFetch(options, secrets)
  const { model: wrapped, fetchPassed } = withFetch(model, guard.fetch)
  if (!fetchPassed) {
    options.logger.warn(`${name} does not take a fetch function (no \`config.fetch\`): its requests are not size-capped or kept from redirects by this plugin; the timeout still applies`)
  }
  const said = new Set<string>()

  async function generate(prompt: string, settings: ImageSettings, signal?: AbortSignal, onPaid?: () => void) {
    const timer = AbortSignal.timeout(options.timeout)
    const abortSignal = signal ? AbortSignal.any([signal, timer]) : timer
    let result: Awaited<ReturnType<AiModule['generateImage']>>
    try {
      result = await ourCall.run(true, () =>
        ai.generateImage({
          model: wrapped as Parameters<AiModule['generateImage']>[0]['model'],
          prompt,
          n: 1,
          ...(settings.aspectRatio !== undefined ? { aspectRatio: settings.aspectRatio as `${number}:${number}` } : { size: `${settings.width}x${settings.height}` as `${number}x${number}` }),
          ...(settings.seed !== undefined ? { seed: settings.seed } : {}),
          providerOptions: (settings.providerOptions ?? {}) as never,
          maxRetries: 0,
          abortSignal,
        }),
      )
    } catch (error) {
      if (signal?.aborted) throw signal.reason
      if (timer.aborted) throw new ApiError('FLUX_TIMEOUT', `${name}: no answer within ${options.timeout / 1000} s`, undefined, true)
      throw toApiError(error, ai, name, options.keyNames ?? [], guard.gets, clean)
    }
    // An answer with images was billed, whatever happens to them next.
    onPaid?.()
    for (const warning of result.warnings) {
      const text = clean(`${name}: ${formatWarning(warning)}`)
      if (!said.has(text)) (said.add(text), options.logger.warn(text))
    }
    // fal answers a safety hit with a black image and `has_nsfw_concepts` (providerMetadata.fal.images[i].nsfw).
    for (const [provider, metadata] of Object.entries(result.providerMetadata ?? {})) {
      const first = (metadata as { images?: unknown[] }).images?.[0] as { nsfw?: unknown } | undefined
      if (first?.nsfw === true) throw new ApiError('FLUX_SAFETY', `${name}: the provider's safety checker flagged the image (providerMetadata.${provider}.images[0].nsfw): it is not used`, undefined, false)
    }
    const image = result.images[0]
    if (!image) throw new ApiError('FLUX_BAD_RESPONSE', `${name} answered without an image`, undefined, true)
    const bytes = Buffer.from(image.uint8Array)
    if (bytes.length > options.maxImageBytes) throw new ImageError(`the image is larger than the size cap (${bytes.length} bytes; raise maxImageBytes)`, false)
    verifyImage(bytes)
    return { bytes }
  }

  return { id: model.provider, generate, close: async () => {} }
}

/** The SDK logs every warning of every call; ours are said once per run instead. Other callers keep its default. */
function quietSdkWarnings(): void {
  const g = globalThis as { AI_SDK_LOG_WARNINGS?: unknown }
  const previous = g.AI_SDK_LOG_WARNINGS as ((o: { warnings: unknown[]; provider: string; model: string }) => void) | false | undefined
  if (typeof previous === 'function' && (previous as unknown as Record<symbol, unknown>)[HOOK]) return
  const hook = (o: { warnings: unknown[]; provider: string; model: string }) => {
    if (ourCall.getStore() || previous === false) return
    if (typeof previous === 'function') return previous(o)
    for (const w of o.warnings) console.warn(`AI SDK Warning (${o.provider} / ${o.model}): ${formatWarning(w)}`)
  }
  Object.defineProperty(hook, HOOK, { value: true })
  g.AI_SDK_LOG_WARNINGS = hook
}

/** `size is not supported: use aspectRatio` from the SDK's warning shapes (v3 `unsupported`, v2 `unsupported-setting`, `other`). */
function formatWarning(warning: unknown): string {
  const w = warning as { type?: string; feature?: string; setting?: string; details?: string; message?: string }
  const what = w.feature ?? w.setting
  if (what) return `${what} is not supported by this model${w.details ? `: ${w.details}` : ''}`
  return w.message ?? JSON.stringify(warning)
}

/**
 * The model as the SDK sees it, with our fetch as its provider's `config.fetch` (every SDK provider keeps its
 * settings there and passes `config.fetch` to each request). The user's object is not touched: a new object whose
 * prototype is the model, with its own `config`. A user's own fetch (`createFal({ fetch })`) is kept, inside ours.
 */
function withFetch(model: AiSdkImageModel, wrap: (inner: typeof fetch) => typeof fetch): { model: AiSdkImageModel; fetchPassed: boolean } {
  const config = (model as unknown as { config?: unknown }).config
  if (typeof config !== 'object' || config === null) return { model, fetchPassed: false }
  const inner = (config as { fetch?: typeof fetch }).fetch ?? ((input, init) => globalThis.fetch(input, init))
  const wrapped = Object.create(model, { config: { value: { ...config, fetch: wrap(inner) }, enumerable: true } }) as AiSdkImageModel
  return { model: wrapped, fetchPassed: true }
}

/**
 * Our guarantees around the provider's requests: a timeout on each, no redirect followed, every body size-capped
 * (JSON answers and images alike) before the provider reads it, downloads only over https or from an origin the
 * provider posted to (its API), and each auth header's value learned for redaction.
 */
function guardedFetch(options: Pick<Options, 'timeout' | 'maxImageBytes'>, secrets: Set<string>) {
  const apiOrigins = new Set<string>()
  /** URLs fetched with GET: a 404 there is an expired download, not a missing model. */
  const gets = new Set<string>()
  // base64 inflates by 4/3; allow for the JSON around it.
  const maxJsonBytes = Math.ceil(options.maxImageBytes * 1.4) + 64 * 1024
  const wrap =
    (inner: typeof fetch): typeof fetch =>
    async (input, init) => {
      const url = new URL(typeof input === 'string' ? input : input instanceof URL ? input.href : input.url)
      const method = (init?.method ?? (input instanceof Request ? input.method : 'GET')).toUpperCase()
      learnSecrets(new Headers(init?.headers ?? (input instanceof Request ? input.headers : undefined)), secrets)
      if (url.protocol === 'data:') return inner(input, init)
      if (method === 'GET') {
        gets.add(url.href)
        if (url.protocol !== 'https:' && !apiOrigins.has(url.origin)) {
          throw new ApiError('FLUX_BAD_URL', `refusing to download from ${url.origin}: image URLs must be https or on the API's own origin`, undefined, false)
        }
      } else apiOrigins.add(url.origin)
      const timer = AbortSignal.timeout(options.timeout)
      const signal = init?.signal ? AbortSignal.any([init.signal, timer]) : timer
      let res: Response
      try {
        res = await inner(input, { ...init, redirect: 'manual', signal })
      } catch (error) {
        if (timer.aborted && !init?.signal?.aborted) throw new ApiError('FLUX_TIMEOUT', `no answer from ${url.host} within ${options.timeout / 1000} s`, undefined, true)
        throw error
      }
      if ((res.status >= 300 && res.status < 400) || res.type === 'opaqueredirect') {
        await res.body?.cancel().catch(() => {})
        throw new ApiError(method === 'GET' ? 'FLUX_BAD_URL' : 'FLUX_BAD_RESPONSE', `${url.host} answered a redirect (${res.status}); redirects are not followed`, res.status, false)
      }
      const image = method === 'GET' && res.ok
      const max = image ? options.maxImageBytes : maxJsonBytes
      const body = await readLimited(res, max, () =>
        image ? new ImageError(`the image is larger than the size cap (over ${max} bytes; raise maxImageBytes)`, false) : new ApiError('FLUX_BAD_RESPONSE', `the answer of ${url.host} is larger than ${max} bytes`, res.status, false),
      )
      return new Response(res.status === 204 || res.status === 205 ? null : body, { status: res.status, statusText: res.statusText, headers: res.headers })
    }
  return { fetch: wrap, gets }
}

function learnSecrets(headers: Headers, secrets: Set<string>): void {
  for (const name of AUTH_HEADERS) {
    const value = headers.get(name)?.trim()
    if (!value) continue
    secrets.add(value)
    // `Bearer <key>`, `Key <key>`, `Token <key>`: the key alone too, however a message quotes it.
    const token = /^\S+\s+(\S{4,})$/.exec(value)?.[1]
    if (token) secrets.add(token)
  }
}

/** The body, read to at most `max` bytes (a longer one is cut off and refused; Content-Length checked first). */
async function readLimited(res: Response, max: number, tooLarge: () => Error): Promise<Uint8Array> {
  const length = Number(res.headers.get('content-length'))
  if (length > max) {
    await res.body?.cancel().catch(() => {})
    throw tooLarge()
  }
  if (!res.body) return new Uint8Array()
  const reader = res.body.getReader()
  const chunks: Uint8Array[] = []
  let size = 0
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    size += value.length
    if (size > max) {
      await reader.cancel().catch(() => {})
      throw tooLarge()
    }
    chunks.push(value)
  }
  return Buffer.concat(chunks)
}

/** The contract's code for what `generateImage` threw; the message is the provider's, trimmed and redacted. */
function toApiError(error: unknown, ai: AiModule, name: string, keyNames: readonly string[], gets: Set<string>, clean: (text: string) => string): Error {
  // Ours, from the fetch (a cap, a redirect, a timeout): already in the contract's words.
  if (error instanceof FluxError) return new ApiError(error.code, clean(error.message), (error as ApiError).status, (error as ApiError).retryable ?? false, (error as ApiError).retryAfterMs)
  const message = clean(oneLine((error as Error)?.message ?? String(error)))
  if (ai.LoadAPIKeyError.isInstance(error) || /API key is missing/i.test(message)) {
    const names = keyNames.length ? keyNames.join(' or ') : "the provider's key"
    return new ApiError('FLUX_NO_KEY', `no API key for ${name} (set ${names}, also read from <root>/.env)`, undefined, false)
  }
  if (ai.NoImageGeneratedError.isInstance(error)) return new ApiError('FLUX_BAD_RESPONSE', `${name} answered without an image`, undefined, true)
  if (!ai.APICallError.isInstance(error)) {
    // Invalid providerOptions (the provider's schema), an answer that does not parse, ...: this image's own failure.
    return new ApiError('FLUX_REQUEST', `${name}: ${(error as Error)?.name ?? 'error'}: ${message}`, undefined, false)
  }
  const status = error.statusCode
  if (status === undefined) {
    const code = networkCode(error)
    if (code && UNREACHABLE_CODES.has(code)) return new ApiError('FLUX_UNREACHABLE', `cannot reach ${hostOf(error.url)} (${code})`, undefined, true)
    return new ApiError('FLUX_NETWORK', `connection to ${hostOf(error.url)} failed (${code ?? message})`, undefined, error.isRetryable)
  }
  const said = `${name} answered ${status}: ${message}`
  const download = gets.has(error.url)
  if (status >= 200 && status < 300) return new ApiError('FLUX_BAD_RESPONSE', `${name}: an answer that is not what the API documents (${message})`, status, true)
  if (download && (status === 404 || status === 410)) return new ApiError('FLUX_DOWNLOAD', `downloading the image failed (${status})`, status, true)
  switch (status) {
    case 401:
      return new ApiError('FLUX_AUTH', `${name}: API key rejected (401): ${message}`, status, false)
    case 402:
      return new ApiError('FLUX_CREDITS', `${name}: out of credits (402): ${message}`, status, false)
    case 403:
      return new ApiError('FLUX_GATED', `${name}: the API refused access (403): ${message}`, status, false)
    case 404:
      return new ApiError('FLUX_MODEL', `${name}: the model is not available (404): ${message}`, status, false)
  }
  if ((status === 400 || status === 422) && SAFETY.test(`${message} ${error.responseBody ?? ''}`)) {
    return new ApiError('FLUX_SAFETY', `${name}: the provider's safety system refused the prompt (${status}): ${message}`, status, false)
  }
  const retryable = RETRY_STATUSES.has(status) || status >= 500
  const code = status === 429 ? 'FLUX_RATE_LIMIT' : status >= 500 ? 'FLUX_SERVER' : 'FLUX_REQUEST'
  return new ApiError(code, said, status, retryable, retryable ? parseRetryAfter(error.responseHeaders ?? {}) : undefined)
}

function networkCode(error: unknown): string | undefined {
  for (let e = error as { code?: unknown; cause?: unknown } | undefined, i = 0; e && i < 8; e = e.cause as typeof e, i++) {
    if (typeof e.code === 'string') return e.code
  }
  return undefined
}

function oneLine(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim()
  return flat.length > 300 ? `${flat.slice(0, 300)}…` : flat || 'no message'
}

function hostOf(url: string): string {
  try {
    return new URL(url).host
  } catch {
    return 'the API'
  }
}

