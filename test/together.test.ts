// The Together provider against the fake service over real HTTP: request body, both response modes, the retry and
// no-retry classes (through the engine, which owns retries), per-request timeout, magic bytes, extension from bytes.
import { readFile } from 'node:fs/promises'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { ApiError, ImageError } from '../src/core/errors'
import { resolveOptions } from '../src/core/options'
import { DEFAULT_MODEL } from '../src/core/providers'
import type { ImageProvider } from '../src/core/providers/contract'
import { createTogetherProvider, USER_AGENT } from '../src/core/providers/together'
import type { FluxAssetsOptions, ImageSettings } from '../src/core/types'
import { startFakeTogether, makePng, SAFETY_MARKER, type FakeTogether, type ForcedResponse } from './fake-together.mjs'
import { API_KEY, cachedKeys, fakeOptions, generationBodies, recordingLogger, removeDir, runEngine, scene, SMALL, tempDir, writeScripts } from './core-helpers'

let fake: FakeTogether
let root: string
let provider: ImageProvider | undefined
beforeEach(async () => {
  fake = await startFakeTogether()
  root = await tempDir('together')
})
afterEach(async () => {
  await provider?.close()
  provider = undefined
  await fake.close()
  await removeDir(root)
})

const SETTINGS: ImageSettings = { provider: 'together', model: DEFAULT_MODEL, width: 256, height: 256, outputFormat: 'jpeg' }

/** A provider with the resolved defaults (what the engine would build), over the fake. */
function providerFor(user: FluxAssetsOptions = {}): ImageProvider {
  const options = resolveOptions({ ...fakeOptions(fake), ...user }, root, { env: {} })
  provider = createTogetherProvider(options)
  return provider
}

const isJpeg = (b: Buffer) => b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff
const isPng = (b: Buffer) => b.subarray(0, 8).equals(Buffer.from('89504e470d0a1a0a', 'hex'))

describe('request body', () => {
  it('sends exactly the default body: FLUX.2 [dev], 1024×768, no steps (the model picks), n 1, base64, jpeg, no seed', async () => {
    await writeScripts(root, { 'a.script.json': scene({ hero: 'a red fox in the snow' }) })
    // The engine's own defaults, not the 256×256 the other tests use.
    await runEngine(root, fakeOptions(fake, { width: undefined, height: undefined }))
    const [body, ...rest] = generationBodies(fake)
    expect(rest).toEqual([])
    expect(body).toStrictEqual({
      model: 'black-forest-labs/FLUX.2-dev',
      prompt: 'a red fox in the snow',
      width: 1024,
      height: 768,
      n: 1,
      response_format: 'base64',
      output_format: 'jpeg',
    })
    const headers = fake.log.find(e => e.method === 'POST')!.headers
    expect(headers.authorization).toBe(`Bearer ${API_KEY}`)
    expect(headers['content-type']).toBe('application/json')
    expect(headers['user-agent']).toBe(USER_AGENT)
  })

  it('sends seed only when one is set (globally or per asset), and every setting as given', async () => {
    await writeScripts(root, {
      'a.script.json': scene({
        plain: 'a plain prompt',
        seeded: { prompt: 'a seeded prompt', seed: 42 },
        custom: { prompt: 'a custom prompt', model: 'some/other-model', width: 128, height: 96, steps: 8, outputFormat: 'png' },
      }),
    })
    // A model of the fake's own that takes any parameter (unknown to the plugin: sent what was set).
    fake.set({ extraModels: [{ id: 'some/other-model' }] })
    await runEngine(root, fakeOptions(fake, { concurrency: 1, responseFormat: 'url' }))
    const byPrompt = new Map(generationBodies(fake).map(b => [b.prompt, b]))
    expect(byPrompt.size).toBe(3)
    expect(byPrompt.get('a plain prompt')).not.toHaveProperty('seed')
    expect(byPrompt.get('a plain prompt')).not.toHaveProperty('steps')
    expect(byPrompt.get('a seeded prompt')).toMatchObject({ seed: 42, n: 1 })
    expect(byPrompt.get('a custom prompt')).toStrictEqual({
      model: 'some/other-model',
      prompt: 'a custom prompt',
      width: 128,
      height: 96,
      steps: 8,
      n: 1,
      response_format: 'url',
      output_format: 'png',
    })

    fake.reset()
    await runEngine(root, fakeOptions(fake, { seed: 7, cacheDir: 'cache-seeded' }))
    const seeds = generationBodies(fake).map(b => [b.prompt, b.seed])
    expect(new Map(seeds as Array<[string, number]>)).toEqual(new Map([['a plain prompt', 7], ['a seeded prompt', 42], ['a custom prompt', 7]]))
  })
})

describe('response modes end to end', () => {
  it('base64: the decoded image is verified and cached; no download is made', async () => {
    await writeScripts(root, { 'a.script.json': scene({ one: 'base64 prompt one', two: { prompt: 'base64 prompt two', outputFormat: 'png' } }) })
    const { assets, summary } = await runEngine(root, fakeOptions(fake))
    expect(summary).toMatchObject({ generated: 2, placeholders: 0, failed: 0 })
    expect(fake.stats).toMatchObject({ generations: 2, downloads: 0 })
    const one = await readFile(assets[0]!.file!)
    const two = await readFile(assets[1]!.file!)
    expect(isJpeg(one) && assets[0]!.file!.endsWith('.jpg')).toBe(true)
    expect(isPng(two) && assets[1]!.file!.endsWith('.png')).toBe(true)
    expect(await cachedKeys(`${root}/.flux-cache`)).toEqual(assets.map(a => a.key).sort())
  })

  it('url: the returned URL is downloaded at once with a User-Agent and no Authorization, then cached', async () => {
    await writeScripts(root, { 'a.script.json': scene({ one: 'url prompt one', two: { prompt: 'url prompt two', outputFormat: 'png' } }) })
    const { assets, summary } = await runEngine(root, fakeOptions(fake, { responseFormat: 'url' }))
    expect(summary).toMatchObject({ generated: 2, placeholders: 0 })
    expect(fake.stats).toMatchObject({ generations: 2, downloads: 2, downloadsWithAuth: 0, downloadsWithoutUA: 0 })
    const downloads = fake.log.filter(e => e.method === 'GET' && e.path !== '/v1/models')
    expect(downloads.map(d => d.headers['user-agent'])).toEqual([USER_AGENT, USER_AGENT])
    expect(isJpeg(await readFile(assets[0]!.file!))).toBe(true)
    expect(isPng(await readFile(assets[1]!.file!))).toBe(true)
  })

  it('the provider returns the bytes and the response id', async () => {
    const result = await providerFor().generate('a direct call', SETTINGS)
    expect(isJpeg(result.bytes)).toBe(true)
    expect(result.responseId).toBe('fake-1')
  })
})

// Real backoff (full jitter from 500 ms) over real HTTP: a few seconds at most. A retry loop that never ends fails
// at this timeout, not the default 60 s. (The waits themselves are unit-tested on withRetry with tiny delays.)
describe('retries', { timeout: 15_000 }, () => {
  // Each class once, then a normal answer: two requests, one image.
  const RETRIED: Array<[string, ForcedResponse]> = [
    ['408', { status: 408 }],
    ['409', { status: 409 }],
    ['429', { status: 429 }],
    ['500', { status: 500 }],
    ['502', { status: 502, body: '<html>bad gateway</html>' }],
    ['503', { status: 503 }],
    ['504', { status: 504 }],
    ['a connection reset', { status: 0, reset: true }],
  ]

  it.each(RETRIED)('%s is retried and the image is had', async (_, forced) => {
    await writeScripts(root, { 'a.script.json': scene({ hero: 'retry me' }) })
    fake.enqueue(forced)
    const logs = recordingLogger()
    const { assets, summary } = await runEngine(root, fakeOptions(fake, { logger: logs }))
    expect(fake.stats.generationRequests).toBe(2)
    expect(summary).toMatchObject({ generated: 1, placeholders: 0, failed: 0 })
    expect(assets[0]!.placeholder).toBe(false)
    expect(logs.infos).toHaveLength(1)
    expect(logs.infos[0]).toMatch(/^a\.script\.json: hero: .+; retry 1 in \d+ ms$/)
    expect(logs.warnings).toEqual([])
  })

  it('429 with retry-after waits what the server asked (logged), then succeeds', async () => {
    await writeScripts(root, { 'a.script.json': scene({ hero: 'rate limited' }) })
    fake.enqueue({ status: 429, headers: { 'retry-after': '1' } })
    const logs = recordingLogger()
    const { summary } = await runEngine(root, fakeOptions(fake, { logger: logs }))
    expect(summary.generated).toBe(1)
    expect(fake.stats.byStatus[429]).toBe(1)
    expect(logs.infos).toEqual([expect.stringMatching(/the API answered 429: Rate limit exceeded.*; retry 1 in 1000 ms$/)])
  })

  it('a refused connection is retried, then the API is unreachable: the run fails naming the host and the code', async () => {
    await writeScripts(root, { 'a.script.json': scene({ hero: 'nobody listens', other: 'nor here' }) })
    // A port that was just free: nothing listens there now.
    const closed = await startFakeTogether()
    const baseURL = closed.baseURL
    await closed.close()
    const logs = recordingLogger()
    const error = await runEngine(root, { apiKey: API_KEY, baseURL, retries: 1, concurrency: 1, logger: logs }).catch((e: unknown) => e)
    expect((error as ApiError).code).toBe('FLUX_UNREACHABLE')
    expect((error as Error).message).toMatch(/^cannot reach 127\.0\.0\.1:\d+ \(ECONNREFUSED\)\n2 images could not be generated; every image made before stays cached/)
    // One image's retries, then no more calls: the other is not attempted (one retry line, no per-image lines).
    expect(logs.infos).toEqual([expect.stringMatching(/cannot reach 127\.0\.0\.1:\d+ \(ECONNREFUSED\); retry 1 in \d+ ms$/)])
    expect(logs.warnings.filter(w => !w.startsWith('the model catalog could not be checked'))).toEqual([])
  })

  it('gives up after `retries` and makes the asset a placeholder with the last message', async () => {
    await writeScripts(root, { 'a.script.json': scene({ hero: 'always failing' }) })
    fake.set({ faults: { status503: 1 } })
    const logs = recordingLogger()
    const { assets, summary } = await runEngine(root, fakeOptions(fake, { retries: 2, logger: logs }))
    expect(fake.stats.generationRequests).toBe(3)
    expect(summary).toMatchObject({ generated: 0, placeholders: 1, failed: 1 })
    expect(assets[0]).toMatchObject({ placeholder: true, file: null, error: 'the API answered 503: The server is overloaded or not ready yet.' })
  })

  const NOT_RETRIED: Array<[string, () => void, FluxAssetsOptions, RegExp]> = [
    ['400 (invalid parameter)', () => fake.enqueue({ status: 400, body: { error: { message: 'Input validation error', type: 'invalid_request_error', param: 'prompt' } } }), {}, /^the API answered 400: Input validation error$/],
    ['401 (key rejected)', () => fake.set({ apiKeys: ['another-key'] }), {}, /^API key rejected \(401\): Invalid API key provided/],
    ['402 (out of credits)', () => fake.set({ credits: 0 }), {}, /^out of credits \(402\): Credit limit exceeded/],
    [
      // With the catalog unreadable the request is made, and the 404 names the model.
      '404 (the retired free model, named)',
      () => fake.set({ catalogResponse: { status: 500 } }),
      { model: 'black-forest-labs/FLUX.1-schnell-Free' },
      /^model "black-forest-labs\/FLUX\.1-schnell-Free" is not available \(404\): Unable to access model black-forest-labs\/FLUX\.1-schnell-Free/,
    ],
    ['422 (invalid)', () => fake.enqueue({ status: 422, body: { error: { message: 'seed must be an integer', type: 'invalid_request_error' } } }), {}, /^the API answered 422: seed must be an integer$/],
    ['422 (safety refusal)', () => {}, { promptSuffix: ` ${SAFETY_MARKER}` }, /^the provider's safety system refused the prompt \(422\): The prompt was flagged by the safety checker/],
  ]

  it.each(NOT_RETRIED)('%s is tried once, and the placeholder says why', async (_, arrange, user, message) => {
    await writeScripts(root, { 'a.script.json': scene({ hero: 'no retry' }) })
    arrange()
    const logs = recordingLogger()
    // Account-level failures (401, 402, 404) fail the run by default; with apiFailure 'placeholder' they ship one.
    const { assets, summary } = await runEngine(root, fakeOptions(fake, { logger: logs, apiFailure: 'placeholder', ...user }))
    expect(fake.stats.generationRequests).toBe(1)
    expect(summary).toMatchObject({ generated: 0, placeholders: 1, failed: 1 })
    expect(assets[0]!.error).toMatch(message)
    expect(logs.infos).toEqual([]) // no "retry" line
    // One line either way: the image's own failure names it; an account-level one is said once for the run.
    const lines = [...logs.warnings.filter(w => !w.startsWith('the model catalog could not be checked')), ...logs.errors]
    expect(lines).toEqual([expect.stringContaining(assets[0]!.error!)])
    expect(await cachedKeys(`${root}/.flux-cache`)).toEqual([])
  })

  it.each(NOT_RETRIED.slice(1, 4))('%s fails the run by default (apiFailure "fail"), with one message', async (_, arrange, user, message) => {
    await writeScripts(root, { 'a.script.json': scene({ hero: 'no retry', other: 'not attempted' }) })
    arrange()
    const logs = recordingLogger()
    const error = await runEngine(root, fakeOptions(fake, { logger: logs, concurrency: 1, ...user })).catch((e: unknown) => e)
    expect((error as Error).message.split('\n')[0]).toMatch(message)
    expect((error as Error).message).toContain('2 images could not be generated; every image made before stays cached')
    expect(fake.stats.generationRequests).toBe(1)
    expect(logs.warnings.filter(w => !w.startsWith('the model catalog could not be checked'))).toEqual([])
  })

  it('maps statuses to stable codes', async () => {
    const p = providerFor()
    const codeOf = async (forced: ForcedResponse) => {
      fake.enqueue(forced)
      const error = await p.generate('codes', SETTINGS).catch((e: unknown) => e)
      return [(error as ApiError).code, (error as ApiError).status, (error as ApiError).retryable]
    }
    expect(await codeOf({ status: 401 })).toEqual(['FLUX_AUTH', 401, false])
    expect(await codeOf({ status: 402 })).toEqual(['FLUX_CREDITS', 402, false])
    expect(await codeOf({ status: 404 })).toEqual(['FLUX_MODEL', 404, false])
    expect(await codeOf({ status: 429 })).toEqual(['FLUX_RATE_LIMIT', 429, true])
    expect(await codeOf({ status: 503 })).toEqual(['FLUX_SERVER', 503, true])
    expect(await codeOf({ status: 400 })).toEqual(['FLUX_REQUEST', 400, false])
    expect(await codeOf({ status: 0, reset: true })).toEqual(['FLUX_NETWORK', undefined, true])
  })
})

describe('timeout', () => {
  it('a request slower than `timeout` fails with FLUX_TIMEOUT, retryable', async () => {
    fake.enqueue({ status: 200, delayMs: 5_000 })
    const error = await providerFor({ timeout: 200 }).generate('slow', SETTINGS).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(ApiError)
    expect(error).toMatchObject({ code: 'FLUX_TIMEOUT', retryable: true, status: undefined })
    expect((error as ApiError).message).toMatch(/^no answer from 127\.0\.0\.1:\d+ within 0\.2 s$/)
  })

  it('the engine retries a timed-out request and gets the image', async () => {
    await writeScripts(root, { 'a.script.json': scene({ hero: 'slow then fast' }) })
    fake.enqueue({ status: 200, delayMs: 5_000 })
    const logs = recordingLogger()
    const { summary } = await runEngine(root, fakeOptions(fake, { timeout: 300, logger: logs }))
    expect(summary).toMatchObject({ generated: 1, placeholders: 0 })
    expect(fake.stats.generationRequests).toBe(2)
    expect(logs.infos).toEqual([expect.stringMatching(/^a\.script\.json: hero: no answer from 127\.0\.0\.1:\d+ within 0\.3 s; retry 1 in \d+ ms$/)])
  })
})

describe('the bytes decide', () => {
  const b64Answer = (bytes: Buffer): ForcedResponse => ({ status: 200, body: { id: 'forced-1', object: 'list', data: [{ index: 0, b64_json: bytes.toString('base64') }] } })

  it('rejects bytes that are not PNG, JPEG or WebP, whatever the status said', async () => {
    const p = providerFor()
    for (const junk of ['{"error":"oops"}', '<!doctype html><html>Service Unavailable</html>', 'GIF89a......']) {
      fake.enqueue(b64Answer(Buffer.from(junk)))
      const error = await p.generate('junk', SETTINGS).catch((e: unknown) => e)
      expect(error).toBeInstanceOf(ImageError)
      expect((error as ImageError).message).toMatch(/^not an image: the bytes are neither PNG, JPEG nor WebP/)
    }
  })

  it('a non-image answer is never cached; with no retries left the asset is a placeholder naming why', async () => {
    await writeScripts(root, { 'a.script.json': scene({ hero: 'junk answer' }) })
    fake.enqueue(b64Answer(Buffer.from('<html>not an image</html>')))
    const { assets } = await runEngine(root, fakeOptions(fake, { retries: 0 }))
    expect(assets[0]).toMatchObject({ placeholder: true, file: null })
    expect(assets[0]!.error).toMatch(/^not an image/)
    expect(await cachedKeys(`${root}/.flux-cache`)).toEqual([])
  })

  it('a non-image answer is retried like a broken transfer', async () => {
    await writeScripts(root, { 'a.script.json': scene({ hero: 'junk then image' }) })
    fake.enqueue(b64Answer(Buffer.from('<html>not an image</html>')))
    const { assets } = await runEngine(root, fakeOptions(fake))
    expect(fake.stats.generationRequests).toBe(2)
    expect(assets[0]!.placeholder).toBe(false)
    expect(isJpeg(await readFile(assets[0]!.file!))).toBe(true)
  })

  it('the extension comes from the bytes: png answered although jpeg was asked is stored as .png', async () => {
    await writeScripts(root, { 'a.script.json': scene({ hero: 'asked for jpeg' }) })
    const png = makePng(64, 64, 'surprise')
    fake.enqueue(b64Answer(png))
    const { assets } = await runEngine(root, fakeOptions(fake))
    expect(generationBodies(fake)[0]!.output_format).toBe('jpeg')
    const file = assets[0]!.file!
    expect(file).toMatch(/\.png$/)
    expect(await readFile(file)).toEqual(png)
    const record = JSON.parse(await readFile(file.replace(/-[0-9a-f]{16}\.png$/, '.json'), 'utf8'))
    expect(record).toMatchObject({ ext: 'png', responseId: 'forced-1', size: png.length })
    expect(record.settings.outputFormat).toBe('jpeg') // the key still says what was asked
  })

  it('an answer with no image in it is a clear error', async () => {
    fake.enqueue({ status: 200, body: { id: 'x', data: [] } })
    const error = await providerFor().generate('empty', SETTINGS).catch((e: unknown) => e)
    expect(error).toMatchObject({ code: 'FLUX_BAD_RESPONSE', message: 'the API answered without an image (no data[0].b64_json or url)' })
  })
})

// Small sanity check that the 64×64 the other tests rely on is what is sent.
it('SMALL is what the engine tests send', async () => {
  await writeScripts(root, { 'a.script.json': scene({ hero: 'small' }) })
  await runEngine(root, fakeOptions(fake))
  expect(generationBodies(fake)[0]).toMatchObject(SMALL)
})
