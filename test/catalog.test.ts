import { describe, expect, it } from 'vitest'
import {
  BUILT_IN_PRICES, CatalogError, estimateImageCost, fetchCatalog, formatPrice, parseCatalog, priceFor,
  priceFromListing, sortImageModels, type FetchLike,
} from '../src/core/providers/catalog'

const KEY = 'sk-catalog-s3cret'

/** A listing as the live feed gives it: a bare array, chat models beside image ones. */
const LISTING = [
  { id: 'meta-llama/Llama-3.3-70B-Instruct-Turbo', object: 'model', created: 1, type: 'chat', pricing: { hourly: 0, input: 0.88, output: 0.88, base: 0, finetune: 0 } },
  { id: 'black-forest-labs/FLUX.2-dev', object: 'model', created: 2, type: 'image', display_name: 'FLUX.2 [dev]', organization: 'Black Forest Labs', pricing: { image: { example_price: 0.0154 } } },
  { id: 'black-forest-labs/FLUX.1.1-pro', object: 'model', created: 3, type: 'image', pricing: { image_pixel: { price_per_megapixel: 0.04 } } },
  { id: 'black-forest-labs/FLUX.1-kontext-pro', object: 'model', created: 4, type: 'image', pricing: { image_pixel: { price_per_megapixel: 0.04, min_steps: 28 } } },
  { id: 'openai/gpt-image-2', object: 'model', created: 5, type: 'image', pricing: { hourly: 0, input: 0, output: 0, base: 0, finetune: 0 } },
  { id: 'Qwen/Qwen-Image', object: 'model', created: 6, type: 'image', pricing: { image: { example_price: '0.0058' } } },
]

describe('priceFromListing', () => {
  it('reads price_per_megapixel (with min_steps) or image.example_price', () => {
    expect(priceFromListing({ image_pixel: { price_per_megapixel: 0.04, min_steps: 28 } })).toEqual({ kind: 'per-megapixel', usd: 0.04, minSteps: 28 })
    expect(priceFromListing({ image_pixel: { price_per_megapixel: 0.03 } })).toEqual({ kind: 'per-megapixel', usd: 0.03 })
    expect(priceFromListing({ image: { example_price: 0.0154 } })).toEqual({ kind: 'per-image', usd: 0.0154 })
    expect(priceFromListing({ image_pixel: { price_per_megapixel: '0.05' } })).toEqual({ kind: 'per-megapixel', usd: 0.05 })
    // A per-megapixel price wins over an example price.
    expect(priceFromListing({ image_pixel: { price_per_megapixel: 0.04 }, image: { example_price: 1 } })).toMatchObject({ kind: 'per-megapixel' })
  })

  it('anything else is no price, never $0', () => {
    for (const pricing of [undefined, null, 'x', [], {}, { input: 0.3, output: 0.3 }, { image_pixel: { price_per_megapixel: 0 } },
      { image_pixel: { price_per_megapixel: -1 } }, { image_pixel: { price_per_megapixel: 'free' } }, { image: { example_price: null } },
      { image_pixel: 0.04 }, { image: { example_price: Infinity } }]) {
      expect(priceFromListing(pricing), JSON.stringify(pricing)).toBeNull()
    }
    // A bad min_steps is dropped, the price kept.
    expect(priceFromListing({ image_pixel: { price_per_megapixel: 0.04, min_steps: 'many' } })).toEqual({ kind: 'per-megapixel', usd: 0.04 })
  })
})

describe('parseCatalog', () => {
  it('keeps image models only, with their prices, names and organisations', () => {
    const models = parseCatalog(LISTING)
    expect(models.map(m => m.id)).toEqual(['black-forest-labs/FLUX.2-dev', 'black-forest-labs/FLUX.1.1-pro', 'black-forest-labs/FLUX.1-kontext-pro', 'openai/gpt-image-2', 'Qwen/Qwen-Image'])
    expect(models[0]).toEqual({ id: 'black-forest-labs/FLUX.2-dev', displayName: 'FLUX.2 [dev]', organization: 'Black Forest Labs', price: { kind: 'per-image', usd: 0.0154 } })
    expect(models[3]!.price).toBeNull()
  })

  it('accepts a { data: [...] } wrapper and skips malformed entries', () => {
    expect(parseCatalog({ object: 'list', data: [null, 7, { type: 'image' }, { id: '', type: 'image' }, { id: 'a/b', type: 'image' }] })).toEqual([{ id: 'a/b', price: null }])
  })

  it('throws CatalogError when the answer is no list', () => {
    for (const json of [null, 'models', { error: { message: 'nope' } }, 42]) {
      expect(() => parseCatalog(json)).toThrow(CatalogError)
    }
    expect(() => parseCatalog({ error: {} })).toThrow('the model list is not a JSON array (got an object with keys error)')
  })
})

describe('prices', () => {
  it('estimates per image, per megapixel, and scales by steps above min_steps only', () => {
    const size = { width: 1024, height: 768 } // 0.786432 MP
    expect(estimateImageCost({ kind: 'per-image', usd: 0.0154 }, size, 50)).toBe(0.0154)
    expect(estimateImageCost({ kind: 'per-megapixel', usd: 0.04 }, size)).toBeCloseTo(0.03145728, 10)
    const kontext = { kind: 'per-megapixel', usd: 0.04, minSteps: 28 } as const
    expect(estimateImageCost(kontext, size, 56)).toBeCloseTo(0.06291456, 10)
    expect(estimateImageCost(kontext, size, 20)).toBeCloseTo(0.03145728, 10)
    expect(estimateImageCost(kontext, size)).toBeCloseTo(0.03145728, 10)
    expect(estimateImageCost(null, size)).toBeNull()
  })

  it('the built-in FLUX.1-schnell price gives what price.ts gives today (1024×768, 4 and 8 steps)', () => {
    const schnell = BUILT_IN_PRICES['black-forest-labs/FLUX.1-schnell']
    expect(estimateImageCost(schnell, { width: 1024, height: 768 }, 4)).toBeCloseTo(0.786432 * 0.0027, 12)
    expect(estimateImageCost(schnell, { width: 1024, height: 768 }, 8)).toBeCloseTo(0.786432 * 0.0027 * 2, 12)
  })

  it('priceFor: the catalog wins, then the built-in table, then unknown', () => {
    const catalog = parseCatalog([{ id: 'black-forest-labs/FLUX.2-dev', type: 'image', pricing: { image: { example_price: 0.02 } } }, { id: 'black-forest-labs/FLUX.2-pro', type: 'image' }])
    expect(priceFor('black-forest-labs/FLUX.2-dev', catalog)).toEqual({ price: { kind: 'per-image', usd: 0.02 }, source: 'catalog' })
    expect(priceFor('black-forest-labs/FLUX.2-dev')).toEqual({ price: { kind: 'per-image', usd: 0.0154 }, source: 'built-in' })
    expect(priceFor('black-forest-labs/FLUX.2-pro', catalog)).toEqual({ price: { kind: 'per-megapixel', usd: 0.03 }, source: 'built-in' })
    expect(priceFor('black-forest-labs/FLUX.1-kontext-max')).toBeNull()
    expect(priceFor('acme/x', catalog)).toBeNull()
  })

  it('formats prices', () => {
    expect(formatPrice({ kind: 'per-image', usd: 0.0154 })).toBe('$0.0154 per image')
    expect(formatPrice({ kind: 'per-megapixel', usd: 0.04 })).toBe('$0.04 per MP')
    expect(formatPrice({ kind: 'per-megapixel', usd: 0.0027, minSteps: 4 })).toBe('$0.0027 per MP (at 4 steps)')
    expect(formatPrice(null)).toBe('price unknown')
  })

  it('sorts FLUX first, cheapest first, unknown prices last', () => {
    expect(sortImageModels(parseCatalog(LISTING)).map(m => m.id)).toEqual([
      'black-forest-labs/FLUX.2-dev', // $0.0154
      'black-forest-labs/FLUX.1-kontext-pro', // $0.04 / MP, ids tie-break
      'black-forest-labs/FLUX.1.1-pro',
      'Qwen/Qwen-Image',
      'openai/gpt-image-2', // unknown
    ])
  })
})

describe('fetchCatalog', () => {
  type Call = { url: string; headers: Record<string, string> }
  function fakeFetch(answers: Array<{ status: number; body: string } | Error>) {
    const calls: Call[] = []
    const impl: FetchLike = async (url, init) => {
      calls.push({ url, headers: init.headers })
      const next = answers.shift() ?? { status: 200, body: JSON.stringify(LISTING) }
      if (next instanceof Error) throw next
      return { status: next.status, text: async () => next.body }
    }
    return { impl, calls }
  }
  const ok = { status: 200, body: JSON.stringify(LISTING) }

  it('GETs {baseURL}/models with the key, and keeps the answer per process for maxAgeMs', async () => {
    let now = 1_000
    const { impl, calls } = fakeFetch([ok, ok])
    const options = { now: () => now, maxAgeMs: 60_000 }
    const first = await fetchCatalog('https://api.example.test/v1/', KEY, impl, options)
    expect(first.models).toHaveLength(5)
    expect(first.fetchedAt).toBe(1_000)
    expect(calls).toEqual([{ url: 'https://api.example.test/v1/models', headers: { authorization: `Bearer ${KEY}`, accept: 'application/json' } }])
    now += 59_000
    expect(await fetchCatalog('https://api.example.test/v1', KEY, impl, options)).toBe(first)
    expect(calls).toHaveLength(1)
    // Another key may see other models: asked apart.
    await fetchCatalog('https://api.example.test/v1', 'other-key', impl, options)
    expect(calls).toHaveLength(2)
    now += 2_000
    const again = await fetchCatalog('https://api.example.test/v1', KEY, impl, options)
    expect(again).not.toBe(first)
    expect(calls).toHaveLength(3)
  })

  it('callers at once share one request', async () => {
    const { impl, calls } = fakeFetch([ok])
    const [a, b] = await Promise.all([fetchCatalog('https://h/v1', KEY, impl), fetchCatalog('https://h/v1', KEY, impl)])
    expect(a).toBe(b)
    expect(calls).toHaveLength(1)
  })

  it('a failure throws CatalogError with the status and service message, without the key, and is not kept', async () => {
    const { impl, calls } = fakeFetch([
      { status: 401, body: JSON.stringify({ error: { message: `Invalid API key ${KEY}`, type: 'invalid_request_error', code: 'invalid_api_key' } }) },
      { status: 200, body: '<html>gateway</html>' },
      { status: 200, body: JSON.stringify({ error: { message: 'x' } }) },
      Object.assign(new Error(`connect ECONNREFUSED with Bearer ${KEY}`), { code: 'ECONNREFUSED' }),
      ok,
    ])
    const failures: CatalogError[] = []
    for (let i = 0; i < 4; i++) failures.push(await fetchCatalog('https://api.example.test/v1', KEY, impl).catch(e => e))
    expect(failures.map(f => [f instanceof CatalogError, f.code, f.status])).toEqual([
      [true, 'FLUX_CATALOG', 401], [true, 'FLUX_CATALOG', 200], [true, 'FLUX_CATALOG', 200], [true, 'FLUX_CATALOG', undefined],
    ])
    expect(failures.map(f => f.message)).toEqual([
      'the model catalog at api.example.test answered 401: Invalid API key [key]',
      'the model catalog at api.example.test answered 200 with something that is not JSON',
      'the model catalog at api.example.test: the model list is not a JSON array (got an object with keys error)',
      'could not read the model catalog from api.example.test (ECONNREFUSED)',
    ])
    for (const f of failures) expect(JSON.stringify({ ...f, message: f.message, stack: f.stack })).not.toContain(KEY)
    expect((await fetchCatalog('https://api.example.test/v1', KEY, impl)).models).toHaveLength(5)
    expect(calls).toHaveLength(5)
  })

  it('a timeout is a CatalogError; the caller\'s abort is passed on as it is', async () => {
    const hang: FetchLike = (_url, init) => new Promise((_, reject) => init.signal?.addEventListener('abort', () => reject(init.signal!.reason)))
    await expect(fetchCatalog('https://slow/v1', KEY, hang, { timeoutMs: 20 })).rejects.toThrow('could not read the model catalog from slow (no answer within 0.02 s)')
    const controller = new AbortController()
    const pending = fetchCatalog('https://slow2/v1', KEY, hang, { signal: controller.signal })
    controller.abort(new Error('stopped by the user'))
    await expect(pending).rejects.toThrow('stopped by the user')
  })
})
