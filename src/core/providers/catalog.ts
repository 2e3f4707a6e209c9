// Together's model catalog, `GET {baseURL}/models` (no charge): which image models the key can use and what each
// costs, with a built-in price table for when the catalog cannot be read.
//
// Shape: togethercomputer/openapi openapi.yaml `/models` answers `ModelInfoList`, a bare array of
// `{ id, object, created, type, display_name?, organization?, pricing? }` with `type: "image"` for image models
// (the TypeScript SDK, src/resources/models/models.ts: `ModelListResponse = Array<ModelObject>`). The spec's
// `Pricing` has only hourly/input/output/base/finetune; image prices come as `pricing.image_pixel`
// `{ price_per_megapixel, min_steps }` or `pricing.image.example_price` (together-api-facts.md, from client code
// that reads the live feed; seen in public code as the same two fields). So every field is read defensively, and an
// OpenAI-style `{ data: [...] }` wrapper is accepted too.
import { createHash } from 'node:crypto'
import { FluxError } from '../errors'

/** USD. Per megapixel (1,000,000 px), scaled by steps / minSteps above minSteps; or a flat price per image. */
export type ImagePrice = { kind: 'per-megapixel'; usd: number; minSteps?: number; roundUp?: boolean } | { kind: 'per-image'; usd: number }

export interface CatalogModel {
  id: string
  displayName?: string
  organization?: string
  /** `null` when the listing gives no usable price. */
  price: ImagePrice | null
}

export type PriceSource = 'catalog' | 'built-in'

/**
 * Built-in prices (together-api-facts.md, "Known prices (2026)"), used when the catalog was not read or lists no
 * price. Where a source gives a range or "from", the higher figure, so a dollar cap errs on the safe side.
 * FLUX.1 Kontext [max] has no known price here: its cost is unknown unless the catalog gives one.
 */
export const BUILT_IN_PRICES: Readonly<Record<string, ImagePrice>> = {
  'black-forest-labs/FLUX.2-dev': { kind: 'per-image', usd: 0.0154 },
  'black-forest-labs/FLUX.2-pro': { kind: 'per-megapixel', usd: 0.03 }, // "from $0.03 per MP"
  'black-forest-labs/FLUX.2-flex': { kind: 'per-megapixel', usd: 0.06 }, // "$0.05-0.06 per MP"
  'black-forest-labs/FLUX.2-max': { kind: 'per-megapixel', usd: 0.07 }, // "from $0.07 per MP"
  'black-forest-labs/FLUX.1.1-pro': { kind: 'per-megapixel', usd: 0.04 },
  'black-forest-labs/FLUX.1-kontext-pro': { kind: 'per-megapixel', usd: 0.04 },
  // Retired; kept so `status` can still say what a pinned project's cache cost (the price.ts figure of its day).
  'black-forest-labs/FLUX.1-schnell': { kind: 'per-megapixel', usd: 0.0027, minSteps: 4 },
}

/** The price the listing gives, or `null`. A price of 0 or less, or not a number, is no price: never "$0". */
export function priceFromListing(pricing: unknown): ImagePrice | null {
  if (!isRecord(pricing)) return null
  const pixel = pricing.image_pixel
  if (isRecord(pixel)) {
    const usd = positive(pixel.price_per_megapixel)
    if (usd !== undefined) {
      const minSteps = positive(pixel.min_steps)
      return minSteps !== undefined ? { kind: 'per-megapixel', usd, minSteps } : { kind: 'per-megapixel', usd }
    }
  }
  const image = pricing.image
  if (isRecord(image)) {
    const usd = positive(image.example_price)
    if (usd !== undefined) return { kind: 'per-image', usd }
  }
  return null
}

/**
 * The image models of a `/models` answer (already JSON-parsed). Throws `CatalogError` when the answer is not a list
 * of models at all; entries without a string id are skipped.
 */
export function parseCatalog(json: unknown): CatalogModel[] {
  const list = Array.isArray(json) ? json : isRecord(json) && Array.isArray(json.data) ? json.data : undefined
  if (!list) throw new CatalogError(`the model list is not a JSON array (got ${describe(json)})`)
  const models: CatalogModel[] = []
  for (const entry of list) {
    if (!isRecord(entry) || typeof entry.id !== 'string' || entry.id.trim() === '' || entry.type !== 'image') continue
    const model: CatalogModel = { id: entry.id, price: priceFromListing(entry.pricing) }
    if (typeof entry.display_name === 'string') model.displayName = entry.display_name
    if (typeof entry.organization === 'string') model.organization = entry.organization
    models.push(model)
  }
  return models
}

/** FLUX first, then the others; cheapest first within each (for a 1 MP image), unknown prices last, then by id. */
export function sortImageModels(models: readonly CatalogModel[]): CatalogModel[] {
  const flux = (m: CatalogModel) => (/flux/i.test(m.id) ? 0 : 1)
  const cost = (m: CatalogModel) => estimateImageCost(m.price, { width: 1000, height: 1000 }) ?? Infinity
  return [...models].sort((a, b) => flux(a) - flux(b) || cost(a) - cost(b) || a.id.localeCompare(b.id))
}

/** The catalog's price when it gives one, else the built-in table's, else `null` (cost unknown). */
export function priceFor(modelId: string, catalog?: readonly CatalogModel[]): { price: ImagePrice; source: PriceSource } | null {
  const listed = catalog?.find(m => m.id === modelId)?.price
  if (listed) return { price: listed, source: 'catalog' }
  const builtIn = BUILT_IN_PRICES[modelId]
  return builtIn ? { price: builtIn, source: 'built-in' } : null
}

/**
 * Estimated USD for one image of `size`, or `null` when the price is unknown. Per megapixel: megapixels × price,
 * × steps / minSteps when more steps than minSteps are sent; with no steps sent, the model's default is assumed to be
 * what the listed price is for.
 */
export function estimateImageCost(price: ImagePrice | null | undefined, size: { width: number; height: number }, steps?: number): number | null {
  if (!price) return null
  if (price.kind === 'per-image') return price.usd
  const exact = (size.width * size.height) / 1_000_000
  // fal bills "rounding up to the nearest megapixel": 1024×768 is 1 MP there.
  const megapixels = price.roundUp ? Math.ceil(exact) : exact
  const stepFactor = price.minSteps && steps && steps > price.minSteps ? steps / price.minSteps : 1
  return megapixels * price.usd * stepFactor
}

/** `$0.0154 per image`, `$0.04 per MP`, `$0.0027 per MP (at 4 steps)`, `price unknown`. */
export function formatPrice(price: ImagePrice | null | undefined): string {
  if (!price) return 'price unknown'
  const usd = `$${+price.usd.toPrecision(4)}`
  if (price.kind === 'per-image') return `${usd} per image`
  return `${usd} per MP${price.roundUp ? ' (rounded up)' : ''}${price.minSteps ? ` (at ${price.minSteps} steps)` : ''}`
}

/** The catalog could not be read or made sense of. Code `FLUX_CATALOG`. */
export class CatalogError extends FluxError {
  override name = 'CatalogError'
  constructor(
    message: string,
    /** HTTP status, when the service answered. */
    readonly status?: number,
  ) {
    super('FLUX_CATALOG', message)
  }
}

/** The part of `fetch` this needs, so any client fits (global fetch, undici's fetch, a test double). */
export type FetchLike = (
  url: string,
  init: { method: 'GET'; headers: Record<string, string>; signal?: AbortSignal },
) => Promise<{ status: number; text(): Promise<string> }>

export interface FetchCatalogOptions {
  /** Default 3 hours: the catalog moves every few months, a dev server runs for hours. */
  maxAgeMs?: number
  /** Default 15 s. */
  timeoutMs?: number
  signal?: AbortSignal
  userAgent?: string
  /** For tests. Default `Date.now`. */
  now?: () => number
}

export interface Catalog {
  /** Image models only, in the service's order. */
  models: CatalogModel[]
  fetchedAt: number
}

const DEFAULT_MAX_AGE_MS = 3 * 60 * 60 * 1000
/** Per process: base URL + a hash of the key (the list is what that key may use) → the catalog, or the request in flight. */
const cache = new Map<string, { at: number; catalog: Promise<Catalog> }>()

/**
 * The image models `apiKey` can use at `baseURL`, read once per process and kept `maxAgeMs`. Concurrent callers
 * share one request. Throws `CatalogError` (never carrying the key) when the catalog cannot be read or parsed;
 * a failure is not kept, so the next run asks again.
 */
export function fetchCatalog(baseURL: string, apiKey: string, fetchImpl: FetchLike, options: FetchCatalogOptions = {}): Promise<Catalog> {
  const now = options.now ?? Date.now
  const url = `${baseURL.replace(/\/+$/, '')}/models`
  const slot = `${url}\n${createHash('sha256').update(apiKey).digest('hex')}`
  const kept = cache.get(slot)
  if (kept && now() - kept.at < (options.maxAgeMs ?? DEFAULT_MAX_AGE_MS)) return kept.catalog
  const catalog = readCatalog(url, apiKey, fetchImpl, options, now)
  const entry = { at: now(), catalog }
  cache.set(slot, entry)
  catalog.then(
    c => (entry.at = c.fetchedAt),
    () => cache.get(slot) === entry && cache.delete(slot),
  )
  return catalog
}

/** Forgets every kept catalog (tests; a `flux-assets models` that must ask again). */
export function clearCatalogCache(): void {
  cache.clear()
}

async function readCatalog(url: string, apiKey: string, fetchImpl: FetchLike, options: FetchCatalogOptions, now: () => number): Promise<Catalog> {
  const host = hostOf(url)
  const timer = AbortSignal.timeout(options.timeoutMs ?? 15_000)
  const signal = options.signal ? AbortSignal.any([options.signal, timer]) : timer
  let status: number
  let text: string
  try {
    const res = await fetchImpl(url, {
      method: 'GET',
      headers: { authorization: `Bearer ${apiKey}`, accept: 'application/json', ...(options.userAgent ? { 'user-agent': options.userAgent } : {}) },
      signal,
    })
    status = res.status
    text = await res.text()
  } catch (error) {
    if (options.signal?.aborted) throw options.signal.reason
    const why = timer.aborted ? `no answer within ${(options.timeoutMs ?? 15_000) / 1000} s` : ((error as { code?: string }).code ?? (error as Error).name)
    // Never the original error: a client's error may carry the request, and so the key.
    throw new CatalogError(`could not read the model catalog from ${host} (${why})`)
  }
  if (status < 200 || status >= 300) {
    throw new CatalogError(`the model catalog at ${host} answered ${status}: ${redact(errorMessage(text), apiKey)}`, status)
  }
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    throw new CatalogError(`the model catalog at ${host} answered ${status} with something that is not JSON`, status)
  }
  try {
    return { models: parseCatalog(json), fetchedAt: now() }
  } catch (error) {
    throw new CatalogError(`the model catalog at ${host}: ${(error as Error).message}`, status)
  }
}

function errorMessage(text: string): string {
  let message = text
  try {
    const body = JSON.parse(text)
    message = String(body?.error?.message ?? body?.message ?? text)
  } catch {
    // not JSON: the text itself
  }
  return message.replace(/\s+/g, ' ').trim().slice(0, 200) || 'no message'
}

function redact(text: string, apiKey: string): string {
  return apiKey ? text.split(apiKey).join('[key]') : text
}

function hostOf(url: string): string {
  try {
    return new URL(url).host
  } catch {
    return 'the API'
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/** A finite number > 0, also from a numeric string; otherwise undefined. */
function positive(v: unknown): number | undefined {
  const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN
  return Number.isFinite(n) && n > 0 ? n : undefined
}

function describe(v: unknown): string {
  if (v === null) return 'null'
  if (Array.isArray(v)) return 'an array'
  return isRecord(v) ? `an object with keys ${Object.keys(v).slice(0, 5).join(', ') || '(none)'}` : typeof v
}
