import { request, Agent } from 'node:http'
import { afterEach, describe, expect, it } from 'vitest'
import { startFakeTogether, type FakeTogether, type FakeTogetherOptions } from './fake-together.mjs'

const KEY = 'Bearer test-key'
const BODY = { model: 'black-forest-labs/FLUX.1-schnell', prompt: 'a red fox', width: 64, height: 64, steps: 4 }
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
    const res = await gen({ response_format: 'base64', output_format: 'png', width: 128, height: 72, n: 2 })
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toBe('application/json')
    const json = await jsonOf(res)
    expect(json).toMatchObject({ id: 'fake-1', model: BODY.model, object: 'list' })
    expect(json.data).toHaveLength(2)
    const [a, b] = json.data.map((d: { b64_json: string }) => Buffer.from(d.b64_json, 'base64'))
    expect(json.data[0]).toMatchObject({ index: 0, type: 'b64_json', timings: { inference: 0 } })
    expect(isPng(a) && isPng(b)).toBe(true)
    expect([a.readUInt32BE(16), a.readUInt32BE(20)]).toEqual([128, 72])
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
      [{ width: 1001 }, 'width'],
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

  it('404 model_not_available for the retired free model', async () => {
    await start()
    const res = await gen({ model: 'black-forest-labs/FLUX.1-schnell-Free' })
    expect(res.status).toBe(404)
    expect((await jsonOf(res)).error).toMatchObject({ param: 'model', code: 'model_not_available' })
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
