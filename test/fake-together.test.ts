import { request, Agent } from 'node:http'
import { afterEach, describe, expect, it } from 'vitest'
import { fetchCatalog, type FetchLike } from '../src/core/providers/catalog'
import { MODEL_PROFILES, planRequest } from '../src/core/providers/models'
import { readImageHeader } from '../src/core/image-header'
import { MODELS, RETIRED_MODELS, SAFETY_MARKER, startFakeTogether, type FakeTogether, type FakeTogetherOptions } from './fake-together.mjs'

const KEY = 'Bearer test-key'
const BODY = { model: 'black-forest-labs/FLUX.2-dev', prompt: 'a red fox', width: 256, height: 256, steps: 4 }
const PNG_SIG = Buffer.from('89504e470d0a1a0a', 'hex')

let fake: FakeTogether
afterEach(async () => fake?.close())
async function start(options: FakeTogetherOptions = {}) {
  fake = await startFakeTogether(options)
  return fake
}

function gen(body: Record<string, unknown> = {}, headers: Record<string, string> = { authorization: KEY }) {
  return fetch(`${fake.baseURL}/images/generations`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ ...BODY, ...body }),
  })
}

const jsonOf = async (res: Response | Promise<Response>): Promise<any> => (await res).json()

/** GET with node:http, which (unlike fetch) sends no user-agent unless asked. */
function rawGet(url: string, headers: Record<string, string> = {}) {
  return new Promise<{ status: number; headers: Record<string, unknown>; body: Buffer; error?: Error }>(resolve => {
    request(url, { headers }, res => {
      const chunks: Buffer[] = []
      const done = (error?: Error) => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks), error })
      res.on('data', c => chunks.push(c)).on('end', () => done()).on('error', done)
    }).end()
  })
}

const isPng = (b: Buffer) => b.subarray(0, 8).equals(PNG_SIG) && b.subarray(-8, -4).toString('latin1') === 'IEND'
const isJpeg = (b: Buffer) => b[0] === 0xff && b[1] === 0xd8 && b.at(-2) === 0xff && b.at(-1) === 0xd9

describe('fake Together', () => {
  it('answers base64 with a complete PNG of the requested size, different per prompt', async () => {
    await start()
    const res = await gen({ response_format: 'base64', output_format: 'png', width: 320, height: 256, n: 2 })
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toBe('application/json')
    const json = await jsonOf(res)
    expect(json).toMatchObject({ id: 'fake-1', model: BODY.model, object: 'list' })
    expect(json.data).toHaveLength(2)
    const [a, b] = json.data.map((d: { b64_json: string }) => Buffer.from(d.b64_json, 'base64'))
    expect(json.data[0]).toMatchObject({ index: 0, type: 'b64_json', timings: { inference: 0 } })
    expect(isPng(a) && isPng(b)).toBe(true)
    expect([a.readUInt32BE(16), a.readUInt32BE(20)]).toEqual([320, 256])
    expect(a.equals(b)).toBe(false)
    expect(fake.stats).toMatchObject({ requests: 1, generations: 2, byStatus: { 200: 1 } })
    expect(fake.log[0]).toMatchObject({ method: 'POST', path: '/v1/images/generations', body: { prompt: 'a red fox' } })
    expect(fake.log[0]!.headers.authorization).toBe(KEY)
  })

  it('answers url mode (default) with a downloadable, padded JPEG; 403 without user-agent; counts auth leaks', async () => {
    await start({ imageBytes: 5000 })
    const json = await jsonOf(gen({ width: 1024, height: 768 }))
    const { url, type } = json.data[0]
    expect(type).toBe('url')
    expect(url.startsWith(`${fake.origin}/shrt/`)).toBe(true)
    const ok = await rawGet(url, { 'user-agent': 'test' })
    expect(ok.status).toBe(200)
    expect(ok.headers['content-type']).toBe('image/jpeg')
    expect(Number(ok.headers['content-length'])).toBe(ok.body.length)
    expect(ok.body.length).toBeGreaterThanOrEqual(5000)
    expect(isJpeg(ok.body)).toBe(true)
    const sof = ok.body.indexOf(Buffer.from([0xff, 0xc0]))
    expect([ok.body.readUInt16BE(sof + 5), ok.body.readUInt16BE(sof + 7)]).toEqual([768, 1024])
    expect((await rawGet(url)).status).toBe(403)
    expect((await rawGet(url, { 'user-agent': ' ', authorization: KEY })).status).toBe(403)
    expect(fake.stats).toMatchObject({ downloads: 3, downloadsWithoutUA: 2, downloadsWithAuth: 1 })
  })

  it('follows the redirect option and lets urlBase point elsewhere', async () => {
    await start({ redirectDownloads: true })
    const { url } = (await jsonOf(gen())).data[0]
    const hop = await rawGet(url, { 'user-agent': 'test' })
    expect(hop.status).toBe(302)
    expect(isJpeg((await rawGet(String(hop.headers.location), { 'user-agent': 'test' })).body)).toBe(true)
    fake.set({ urlBase: 'http://cdn.invalid/x/' })
    expect((await jsonOf(gen())).data[0].url).toMatch(/^http:\/\/cdn\.invalid\/x\/\S+$/)
  })

  it('401 without or with a wrong key, never echoing the key', async () => {
    await start({ apiKeys: ['good'] })
    const none = await gen({}, {})
    expect(none.status).toBe(401)
    expect((await jsonOf(none)).error.code).toBe('invalid_api_key')
    const wrong = await gen({}, { authorization: 'Bearer s3cret-wrong' })
    expect(wrong.status).toBe(401)
    expect(await wrong.text()).not.toContain('s3cret')
    expect((await gen({}, { authorization: 'Bearer good' })).status).toBe(200)
  })

  it('400 on invalid parameters, naming the param; 404/405 on wrong routes', async () => {
    await start()
    const cases: [Record<string, unknown>, string][] = [
      [{ response_format: 'b64_json' }, 'response_format'],
      [{ width: 2048 }, 'width'],
      [{ width: 64.5 }, 'width'],
      [{ height: 4096 }, 'height'],
      [{ steps: 0 }, 'steps'],
      [{ n: 5 }, 'n'],
      [{ output_format: 'webp' }, 'output_format'],
      [{ prompt: '' }, 'prompt'],
    ]
    for (const [body, param] of cases) {
      const res = await gen(body)
      expect(res.status, param).toBe(400)
      expect((await jsonOf(res)).error).toMatchObject({ type: 'invalid_request_error', param })
    }
    expect((await gen({ unknown_key: 1 })).status).toBe(200)
    expect((await fetch(`${fake.baseURL}/images/generations`)).status).toBe(405)
    expect((await fetch(`${fake.baseURL}/chat/completions`, { method: 'POST' })).status).toBe(404)
    expect(fake.stats.generations).toBe(1)
  })

  it('404 model_not_available for FLUX.1 [schnell], [schnell] Free, [dev] and any id it does not serve', async () => {
    await start()
    for (const model of [...RETIRED_MODELS, 'acme/unknown', 'meta-llama/Llama-3.3-70B-Instruct-Turbo']) {
      const res = await gen({ model })
      expect(res.status, model).toBe(404)
      expect(await jsonOf(res), model).toEqual({
        error: {
          message: `Unable to access model ${model}. Please visit https://api.together.ai/models to view the list of supported models.`,
          type: 'invalid_request_error', param: 'model', code: 'model_not_available',
        },
      })
    }
    expect(RETIRED_MODELS).toEqual(['black-forest-labs/FLUX.1-schnell', 'black-forest-labs/FLUX.1-schnell-Free', 'black-forest-labs/FLUX.1-dev'])
    expect(fake.stats.generations).toBe(0)
  })

  it('bills credits per image and answers 402 once they run out', async () => {
    await start({ credits: 3 })
    expect((await gen({ n: 2 })).status).toBe(200)
    expect((await gen({ n: 2 })).status).toBe(402)
    expect((await gen()).status).toBe(200)
    const res = await gen()
    expect(res.status).toBe(402)
    expect((await jsonOf(res)).error.code).toBe('credit_limit_exceeded')
    expect(fake.stats.generations).toBe(3)
  })

  it('serves enqueued responses in order, bypassing auth, then resumes normal behaviour', async () => {
    await start()
    fake.enqueue({ status: 503 }, { status: 429, headers: { 'retry-after': '7' }, body: { error: { message: 'slow down' } } }, { status: 200 })
    const a = await gen({}, {})
    expect(a.status).toBe(503)
    expect((await jsonOf(a)).error.type).toBe('service_unavailable')
    const b = await gen({}, {})
    expect([b.status, b.headers.get('retry-after'), (await jsonOf(b)).error.message]).toEqual([429, '7', 'slow down'])
    const c = await gen({ response_format: 'base64' }, {})
    expect(c.status).toBe(200)
    expect(isJpeg(Buffer.from((await jsonOf(c)).data[0].b64_json, 'base64'))).toBe(true)
    expect((await gen({}, {})).status).toBe(401)
    fake.enqueue({ status: 200, reset: true })
    await expect(gen()).rejects.toThrow()
    expect(fake.stats.byStatus).toEqual({ 503: 1, 429: 1, 200: 1, 401: 1 })
  })

  it('maxInFlight admits only N at once (429 retry-after: 1) and tracks concurrency', async () => {
    await start({ maxInFlight: 2, latencyMs: 300 })
    const statuses = await Promise.all([gen(), gen(), gen()].map(async p => {
      const res = await p
      return [res.status, res.headers.get('retry-after'), res.headers.get('x-ratelimit-remaining')]
    }))
    expect(statuses.filter(s => s[0] === 200)).toHaveLength(2)
    expect(statuses.find(s => s[0] === 429)).toEqual([429, '1', '0'])
    expect(fake.stats).toMatchObject({ maxInFlight: 3, inFlight: 0, generations: 2 })
    expect((await gen()).status).toBe(200)
  })

  it('ratePerSecond: a token bucket answering 429 with retry-after, retry-after-ms and x-ratelimit-reset', async () => {
    await start({ ratePerSecond: 2 })
    expect((await gen()).status).toBe(200)
    expect((await gen()).status).toBe(200)
    const res = await gen()
    expect(res.status).toBe(429)
    const ms = Number(res.headers.get('retry-after-ms'))
    expect(ms).toBeGreaterThan(100)
    expect(ms).toBeLessThanOrEqual(500)
    expect(res.headers.get('retry-after')).toBe('1')
    expect(res.headers.get('x-ratelimit-reset')).toBe('1')
    await new Promise(r => setTimeout(r, ms + 20))
    expect((await gen()).status).toBe(200)
  })

  it('truncate fault: 200 with the full content-length, half the bytes, then a dead socket (once)', async () => {
    await start({ faults: { truncate: 1 } })
    const { url } = (await jsonOf(gen({ output_format: 'png', width: 256, height: 256 }))).data[0]
    const cut = await rawGet(url, { 'user-agent': 'test' })
    expect(cut.status).toBe(200)
    expect(cut.body.length).toBeLessThan(Number(cut.headers['content-length']))
    expect(cut.error).toBeDefined()
    expect(isPng((await rawGet(url, { 'user-agent': 'test' })).body)).toBe(true)
    fake.set({ faults: { expire: 1 } })
    const { url: gone } = (await jsonOf(gen())).data[0]
    expect((await rawGet(gone, { 'user-agent': 'test' })).status).toBe(404)
  })

  it('seeded faults are reproducible and fault answers are not billed', async () => {
    const run = async () => {
      await start({ seed: 42, faults: { status500: 0.25, status503: 0.25, status429: 0.2, reset: 0.1 }, retryAfter: 'Wed, 21 Oct 2037 07:28:00 GMT' })
      const seen: (number | string)[] = []
      for (let i = 0; i < 30; i++) {
        const res = await gen().catch(() => null)
        seen.push(res ? res.status : 'reset')
        if (res?.status === 429) expect(res.headers.get('retry-after')).toBe('Wed, 21 Oct 2037 07:28:00 GMT')
      }
      expect(fake.stats.generations).toBe(seen.filter(s => s === 200).length)
      await fake.close()
      return seen
    }
    const first = await run()
    expect(new Set(first)).toEqual(new Set([200, 500, 503, 429, 'reset']))
    expect(await run()).toEqual(first)
  })

  it('reset() zeroes stats, log and queue', async () => {
    await start()
    fake.enqueue({ status: 500 })
    await gen({}, {})
    fake.reset()
    expect(fake.stats).toMatchObject({ requests: 0, generations: 0, byStatus: {} })
    expect(fake.log).toEqual([])
    expect((await gen()).status).toBe(200)
  })

  // A short timeout of its own: a close() that waits for the 60 s request fails in seconds, not at the default 60 s.
  it('close() resolves despite keep-alive sockets and a request still waiting on latency', { timeout: 10_000 }, async () => {
    await start({ latencyMs: 60_000 })
    const agent = new Agent({ keepAlive: true })
    await new Promise(r => request(`${fake.origin}/nope`, { agent }, res => res.resume().on('end', r)).end())
    const pending = gen().catch(e => e)
    await new Promise(r => setTimeout(r, 50))
    expect(fake.stats.inFlight).toBe(1)
    // The request waits 60 s on latency: close() resolving at all, well inside the test's timeout, is the point.
    await fake.close()
    expect(await pending).toBeInstanceOf(Error)
    agent.destroy()
  })
})

describe("fake Together: today's catalog, profiles, account gate and safety checker", () => {
  const get = (path: string, headers: Record<string, string> = { authorization: KEY }) => fetch(`${fake.baseURL}${path}`, { headers })
  const gotSize = async (res: Response) => {
    const bytes = Buffer.from((await jsonOf(res)).data[0].b64_json, 'base64')
    const header = readImageHeader(bytes)
    return header && [header.width, header.height]
  }
  it('GET /v1/models lists the served models with prices as a bare array; 401 without a key', async () => {
    await start()
    expect((await get('/models', {})).status).toBe(401)
    const res = await get('/models')
    expect(res.status).toBe(200)
    const list = await jsonOf(res)
    expect(Array.isArray(list)).toBe(true)
    expect(list.find((m: { id: string }) => m.id === 'black-forest-labs/FLUX.2-dev')).toEqual({
      id: 'black-forest-labs/FLUX.2-dev', object: 'model', created: expect.any(Number), type: 'image', display_name: 'FLUX.2 [dev]',
      organization: 'Black Forest Labs', pricing: { hourly: 0, input: 0, output: 0, base: 0, finetune: 0, image: { example_price: 0.0154 } },
    })
    expect(list.find((m: { id: string }) => m.id === 'black-forest-labs/FLUX.1-kontext-pro').pricing.image_pixel).toEqual({ price_per_megapixel: 0.04, min_steps: 28 })
    const ids = list.map((m: { id: string }) => m.id)
    for (const retired of RETIRED_MODELS) expect(ids).not.toContain(retired)
    expect(list.filter((m: { type: string }) => m.type !== 'image').map((m: { id: string }) => m.id)).toEqual(['meta-llama/Llama-3.3-70B-Instruct-Turbo'])
    expect(fake.stats).toMatchObject({ catalogReads: 2, generations: 0 })
  })

  it("src's fetchCatalog reads the fake's list: image models only, each FLUX model priced", async () => {
    await start()
    const catalog = await fetchCatalog(fake.baseURL, 'test-key', fetch as FetchLike)
    expect(catalog.models.map(m => m.id)).toEqual(MODELS.filter(m => (m.type ?? 'image') === 'image').map(m => m.id))
    const prices = Object.fromEntries(catalog.models.map(m => [m.id, m.price]))
    expect(prices['black-forest-labs/FLUX.2-dev']).toEqual({ kind: 'per-image', usd: 0.0154 })
    expect(prices['black-forest-labs/FLUX.2-pro']).toEqual({ kind: 'per-megapixel', usd: 0.03 })
    expect(prices['black-forest-labs/FLUX.1-kontext-max']).toEqual({ kind: 'per-megapixel', usd: 0.08, minSteps: 28 })
    expect(prices['openai/gpt-image-2']).toBeNull()
    for (const m of catalog.models.filter(m => m.id.includes('FLUX'))) expect(m.price, m.id).not.toBeNull()
  })

  it('retiredModels takes a model out of the list and answers it 404; extraModels adds one that takes anything', async () => {
    await start({ retiredModels: [...RETIRED_MODELS, 'black-forest-labs/FLUX.2-dev'], extraModels: [{ id: 'acme/new-image', pricing: { image: { example_price: 0.01 } } }] })
    const ids = (await jsonOf(get('/models'))).map((m: { id: string }) => m.id)
    expect(ids).not.toContain('black-forest-labs/FLUX.2-dev')
    expect(ids).toContain('acme/new-image')
    expect((await gen()).status).toBe(404)
    expect((await gen({ model: 'acme/new-image', steps: 30, guidance_scale: 9, negative_prompt: 'x', width: 64, height: 64 })).status).toBe(200)
    expect((await gen({ model: 'acme/new-image', width: 1001 })).status).toBe(400)
  })

  it('catalogResponse makes /v1/models fail or answer nonsense', async () => {
    await start({ catalogResponse: { status: 503 } })
    const res = await get('/models')
    expect([res.status, (await jsonOf(res)).error.type]).toEqual([503, 'service_unavailable'])
    fake.set({ catalogResponse: { status: 200, body: '<html>proxy login</html>' } })
    expect(await (await get('/models')).text()).toBe('<html>proxy login</html>')
    fake.set({ catalogResponse: undefined })
    expect((await get('/models')).status).toBe(200)
  })

  it('account gate: with data sharing off, every FLUX.2 model answers 403 third_party_data_sharing_blocked, unbilled', async () => {
    await start({ dataSharing: false })
    for (const model of ['FLUX.2-dev', 'FLUX.2-pro', 'FLUX.2-flex', 'FLUX.2-max']) {
      const res = await gen({ model: `black-forest-labs/${model}`, steps: undefined })
      expect(res.status, model).toBe(403)
      expect(await jsonOf(res)).toEqual({
        error: { message: 'This model requires third-party data sharing to be enabled for your organization.', type: 'invalid_request_error', param: null, code: 'third_party_data_sharing_blocked' },
      })
    }
    // Together's own models are not behind the gate.
    expect((await gen({ model: 'black-forest-labs/FLUX.1.1-pro', steps: undefined })).status).toBe(200)
    expect(fake.stats.generations).toBe(1)
    fake.set({ dataSharing: true })
    expect((await gen()).status).toBe(200)
    // A key starting with gated- is gated whatever the control says.
    expect((await gen({}, { authorization: 'Bearer gated-key' })).status).toBe(403)
    expect(fake.stats.byStatus).toEqual({ 403: 5, 200: 2 })
  })

  it("each model answers 400 for a parameter it does not take, or a value out of its range, naming the param", async () => {
    await start()
    const cases: [string, Record<string, unknown>, string][] = [
      ['FLUX.2-pro', { steps: 28 }, 'steps'],
      ['FLUX.2-pro', { guidance_scale: 3 }, 'guidance_scale'],
      ['FLUX.2-max', { steps: 20 }, 'steps'],
      ['FLUX.2-dev', { negative_prompt: 'blurry' }, 'negative_prompt'],
      ['FLUX.2-dev', { prompt_upsampling: true }, 'prompt_upsampling'],
      ['FLUX.2-dev', { image_url: 'https://example.test/a.png' }, 'image_url'],
      ['FLUX.2-dev', { aspect_ratio: '1:1' }, 'aspect_ratio'],
      ['FLUX.2-dev', { steps: 51 }, 'steps'],
      ['FLUX.2-dev', { width: 2048 }, 'width'],
      ['FLUX.2-flex', { height: 255 }, 'height'],
      ['FLUX.1.1-pro', { steps: 20 }, 'steps'],
      ['FLUX.1.1-pro', { reference_images: ['https://example.test/a.png'] }, 'reference_images'],
      ['FLUX.1-kontext-pro', { aspect_ratio: '21:9' }, 'aspect_ratio'],
      ['FLUX.1-kontext-max', { guidance_scale: 3 }, 'guidance_scale'],
    ]
    for (const [model, body, param] of cases) {
      const res = await gen({ model: `black-forest-labs/${model}`, steps: undefined, ...body })
      expect(res.status, `${model} ${param}`).toBe(400)
      expect((await jsonOf(res)).error, `${model} ${param}`).toMatchObject({ type: 'invalid_request_error', param })
    }
    const steps = await jsonOf(gen({ model: 'black-forest-labs/FLUX.2-pro' }))
    expect(steps.error.message).toBe('Model black-forest-labs/FLUX.2-pro does not support the steps parameter')
    expect(fake.stats.generations).toBe(0)
    // What they do take.
    const takes: [string, Record<string, unknown>][] = [
      ['FLUX.2-pro', { prompt_upsampling: false, reference_images: ['https://example.test/a.png'], width: 1920, height: 256 }],
      ['FLUX.2-dev', { steps: 28, guidance_scale: 3.5, width: 1000, height: 760 }],
      ['FLUX.2-flex', { steps: 50, guidance_scale: 7, image_url: 'https://example.test/a.png' }],
      ['FLUX.1.1-pro', { negative_prompt: 'blurry' }],
      ['FLUX.1-kontext-pro', { aspect_ratio: '3:2', steps: 28, image_url: 'https://example.test/a.png' }],
    ]
    for (const [model, body] of takes) expect((await gen({ model: `black-forest-labs/${model}`, steps: undefined, ...body })).status, model).toBe(200)
  })

  it('Kontext makes the size of its aspect ratio (or the ratio nearest width/height), not the width and height asked', async () => {
    await start()
    const kontext = { model: 'black-forest-labs/FLUX.1-kontext-pro', steps: undefined, response_format: 'base64', width: 512, height: 512 }
    expect(await gotSize(await gen({ ...kontext, aspect_ratio: '16:9' }))).toEqual([1344, 768])
    expect(await gotSize(await gen({ ...kontext, aspect_ratio: '9:16', output_format: 'png' }))).toEqual([768, 1344])
    expect(await gotSize(await gen(kontext))).toEqual([1024, 1024])
    expect(await gotSize(await gen({ ...kontext, width: 1024, height: 768 }))).toEqual([1184, 864])
    // A width/height model makes what was asked.
    expect(await gotSize(await gen({ response_format: 'base64', width: 1000, height: 760 }))).toEqual([1000, 760])
  })

  it('a prompt holding the safety marker gets a 422 from the safety checker, unbilled', async () => {
    await start({ credits: 1 })
    const res = await gen({ prompt: `a red fox ${SAFETY_MARKER}` })
    expect(res.status).toBe(422)
    expect(await jsonOf(res)).toEqual({
      error: { message: 'The prompt was flagged by the safety checker and no image was generated.', type: 'invalid_request_error', param: 'prompt', code: 'content_policy_violation' },
    })
    expect(fake.stats.generations).toBe(0)
    expect((await gen()).status).toBe(200) // the one credit is still there
  })

  it('what planRequest sends for every served profile is accepted; what it refuses the fake refuses too', async () => {
    await start()
    const served = MODEL_PROFILES.filter(p => p.status === 'listed')
    expect(served.map(p => p.id).sort()).toEqual(MODELS.filter(m => m.id.includes('FLUX')).map(m => m.id).sort())
    for (const profile of served) {
      const plan = planRequest(profile.id, { width: 1024, height: 768, seed: 5, outputFormat: 'png' })
      if (!plan.ok) throw new Error(`${profile.id}: ${plan.refusals[0]?.message}`)
      const res = await gen({ model: profile.id, prompt: 'a red fox', steps: undefined, width: undefined, height: undefined, ...plan.fields, n: 1, response_format: 'base64' })
      expect(res.status, profile.id).toBe(200)
      if (plan.expectedSize) expect(await gotSize(res), profile.id).toEqual([plan.expectedSize.width, plan.expectedSize.height])
      // A setting planRequest refuses is one the fake answers 400.
      for (const [setting, field, value] of [['steps', 'steps', 20], ['guidance', 'guidance_scale', 3], ['negativePrompt', 'negative_prompt', 'blurry']] as const) {
        const refused = planRequest(profile.id, { width: 1024, height: 768, outputFormat: 'png', [setting]: value })
        if (refused.ok) continue
        const answer = await gen({ model: profile.id, steps: undefined, ...plan.fields, [field]: value })
        expect(answer.status, `${profile.id} ${field}`).toBe(400)
      }
    }
  })
})
