// The AI SDK adapter (#15) against the SDK's own mock image model (ai/test MockImageModelV3): what generateImage is
// given, and how its results, warnings and errors come out through the engine's rules.
import { APICallError, LoadAPIKeyError } from 'ai'
import { MockImageModelV3 } from 'ai/test'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { ScriptError } from '../src/core/errors'
import { resolveOptions } from '../src/core/options'
import { parseScript } from '../src/core/scan'
import { cachedKeys, recordingLogger, removeDir, runEngine, scene, tempDir, writeScripts } from './core-helpers'
import { makePng } from './fake-together.mjs'

type CallOptions = Parameters<MockImageModelV3['doGenerate']>[0]
type Result = Awaited<ReturnType<MockImageModelV3['doGenerate']>>

// 64 px: the smallest image the structural check accepts (image-header.ts).
const png = (seed: string) => new Uint8Array(makePng(64, 64, seed))
const ok = (seed = 'x', more: Partial<Result> = {}): Result => ({ images: [png(seed)], warnings: [], response: { timestamp: new Date(), modelId: 'm', headers: {} }, ...more })

/** A mock model that answers with `answer(call, callIndex)` and records every call. */
function mockModel(answer: (call: CallOptions, i: number) => Result | Promise<Result> = c => ok(c.prompt as string), provider = 'mock.image', modelId = 'mock-flux') {
  const calls: CallOptions[] = []
  const model = new MockImageModelV3({ provider, modelId, doGenerate: async call => (calls.push(call), answer(call, calls.length - 1)) })
  return { model, calls }
}

const apiError = (statusCode: number, message: string, headers: Record<string, string> = {}, body = '') =>
  new APICallError({ message, url: 'https://api.example.test/v1/gen', requestBodyValues: {}, statusCode, responseHeaders: headers, responseBody: body })

let root: string
beforeEach(async () => {
  root = await tempDir('ai-sdk')
})
afterEach(async () => {
  await removeDir(root)
})

describe('what generateImage is given', () => {
  it('size as WxH, seed, n: 1, and providerOptions global and per asset merged by provider', async () => {
    const { model, calls } = mockModel()
    await writeScripts(root, {
      'a.script.json': scene({
        plain: 'a plain prompt',
        tuned: { prompt: 'a tuned prompt', seed: 7, providerOptions: { mock: { steps: 2 }, other: { x: true } } },
        wide: { prompt: 'a wide prompt', aspectRatio: '16:9' },
      }),
    })
    const result = await runEngine(root, { model, providerOptions: { mock: { steps: 4, style: 'ink' } } })
    expect(result.summary.generated).toBe(3)
    const byPrompt = Object.fromEntries(calls.map(c => [c.prompt, c]))
    expect(byPrompt['a plain prompt']).toMatchObject({ n: 1, size: '256x256', aspectRatio: undefined, seed: undefined, providerOptions: { mock: { steps: 4, style: 'ink' } } })
    expect(byPrompt['a tuned prompt']).toMatchObject({ size: '256x256', seed: 7, providerOptions: { mock: { steps: 2, style: 'ink' }, other: { x: true } } })
    expect(byPrompt['a wide prompt']).toMatchObject({ size: undefined, aspectRatio: '16:9' })
    // The key is what was sent: the model's provider and id, the size or ratio, the seed, the provider options.
    const tuned = result.assets.find(a => a.id === 'tuned')!
    expect(tuned.settings).toEqual({ provider: 'mock.image', model: 'mock-flux', width: 256, height: 256, seed: 7, providerOptions: { mock: { steps: 2, style: 'ink' }, other: { x: true } } })
    expect(result.assets.find(a => a.id === 'wide')!.settings).toMatchObject({ aspectRatio: '16:9', width: 1024, height: 576 })
  })

  it('two providers with the same model id and prompt are two cache entries; a changed provider option is a new one', async () => {
    await writeScripts(root, { 'a.script.json': scene({ hero: 'the same prompt' }) })
    const a = await runEngine(root, { model: mockModel(undefined, 'one.image', 'flux-schnell').model })
    const b = await runEngine(root, { model: mockModel(undefined, 'two.image', 'flux-schnell').model })
    const c = await runEngine(root, { model: mockModel(undefined, 'two.image', 'flux-schnell').model, providerOptions: { two: { steps: 1 } } })
    const keys = [a, b, c].map(r => r.assets[0]!.key)
    expect(new Set(keys).size).toBe(3)
    expect(await cachedKeys(`${root}/.flux-cache`)).toEqual([...keys].sort())
    // Back to the first: found, not generated.
    const again = await runEngine(root, { model: mockModel(() => Promise.reject(new Error('must not be called')), 'one.image', 'flux-schnell').model })
    expect(again.summary).toMatchObject({ cached: 1, generated: 0 })
  })
})

describe('results and warnings', () => {
  it("says each of the SDK's warnings once per run, and the SDK itself prints none", async () => {
    const sdkConsole = vi.spyOn(console, 'warn').mockImplementation(() => {})
    try {
      const { model } = mockModel(c => ok(c.prompt as string, { warnings: [{ type: 'unsupported', feature: 'seed', details: 'seed is ignored' }] }))
      await writeScripts(root, { 'a.script.json': scene({ a: 'one', b: 'two', c: 'three' }) })
      const logger = recordingLogger()
      const result = await runEngine(root, { model, seed: 1, logger })
      expect(result.summary.generated).toBe(3)
      expect(logger.warnings.filter(w => w.includes('seed is not supported by this model: seed is ignored'))).toHaveLength(1)
      expect(sdkConsole).not.toHaveBeenCalled()
    } finally {
      sdkConsole.mockRestore()
    }
  })

  it("a safety flag in providerMetadata (fal's nsfw) is a refusal: a placeholder, never cached", async () => {
    const { model } = mockModel(c => ok(c.prompt as string, { providerMetadata: { fal: { images: [{ nsfw: true }] } } }))
    await writeScripts(root, { 'a.script.json': scene({ a: 'flagged' }) })
    const result = await runEngine(root, { model })
    expect(result.assets[0]).toMatchObject({ placeholder: true })
    expect(result.assets[0]!.error).toMatch(/safety checker flagged the image/)
    expect(result.summary).toMatchObject({ generated: 0, failed: 1, paid: 1 })
    expect(await cachedKeys(`${root}/.flux-cache`)).toEqual([])
  })

  it('bytes that are not an image are retried, then fail the image', async () => {
    const { model, calls } = mockModel(() => ok('x', { images: [new Uint8Array([1, 2, 3, 4])] }))
    await writeScripts(root, { 'a.script.json': scene({ a: 'broken' }) })
    const result = await runEngine(root, { model, retries: 1 })
    expect(calls).toHaveLength(2)
    expect(result.assets[0]!.placeholder).toBe(true)
  })
})

describe('errors, mapped to the contract and handled by our rules', () => {
  it.each([
    [401, 'FLUX_AUTH'],
    [402, 'FLUX_CREDITS'],
    [403, 'FLUX_GATED'],
    [404, 'FLUX_MODEL'],
  ])('%i stops every further call and fails the run (%s), after one call', async (status, code) => {
    const { model, calls } = mockModel(() => Promise.reject(apiError(status, `status ${status}`)))
    await writeScripts(root, { 'a.script.json': scene({ a: 'one', b: 'two', c: 'three' }) })
    await expect(runEngine(root, { model, concurrency: 1 })).rejects.toMatchObject({ code })
    expect(calls).toHaveLength(1)
  })

  it('a 422 safety refusal is that image alone: a placeholder, not retried, the others generated', async () => {
    const { model, calls } = mockModel(c => (String(c.prompt).includes('unsafe') ? Promise.reject(apiError(422, 'Prompt flagged by the content policy')) : ok()))
    await writeScripts(root, { 'a.script.json': scene({ bad: 'an unsafe prompt', good: 'a fine prompt' }) })
    const result = await runEngine(root, { model })
    expect(result.summary).toMatchObject({ generated: 1, failed: 1 })
    expect(result.assets.find(a => a.id === 'bad')!.error).toMatch(/safety system refused the prompt \(422\)/)
    expect(calls.filter(c => String(c.prompt).includes('unsafe'))).toHaveLength(1)
  })

  it("a 429's retry-after paces the retry without using up `retries` (retries: 0 still gets the image)", async () => {
    const { model, calls } = mockModel((_, i) => (i === 0 ? Promise.reject(apiError(429, 'slow down', { 'retry-after': '0' })) : ok()))
    await writeScripts(root, { 'a.script.json': scene({ a: 'paced' }) })
    const result = await runEngine(root, { model, retries: 0 })
    expect(calls).toHaveLength(2)
    expect(result.summary.generated).toBe(1)
  })

  it('a retry-after longer than maxRetryDelay fails the image at once, saying so', async () => {
    const { model, calls } = mockModel(() => Promise.reject(apiError(429, 'slow down', { 'retry-after': '120' })))
    await writeScripts(root, { 'a.script.json': scene({ a: 'too slow' }) })
    const result = await runEngine(root, { model, maxRetryDelay: 1000 })
    expect(calls).toHaveLength(1)
    expect(result.assets[0]!.error).toMatch(/asked to wait 120 s, more than maxRetryDelay 1 s/)
  })

  it('a 503 is retried by our rules alone (the SDK retries nothing: maxRetries 0)', async () => {
    const { model, calls } = mockModel(() => Promise.reject(apiError(503, 'overloaded', { 'retry-after-ms': '1' })))
    await writeScripts(root, { 'a.script.json': scene({ a: 'retried' }) })
    const result = await runEngine(root, { model, retries: 1 })
    // Our one retry: two calls. The SDK's own two retries per attempt would make six.
    expect(calls).toHaveLength(2)
    expect(result.assets[0]!.error).toMatch(/answered 503: overloaded/)
  })

  it('no key (the provider could not load one): placeholders and one warning, not a failed run', async () => {
    const { model, calls } = mockModel(() => Promise.reject(new LoadAPIKeyError({ message: 'Mock API key is missing. Pass it using the apiKey parameter.' })))
    await writeScripts(root, { 'a.script.json': scene({ a: 'one', b: 'two', c: 'three' }) })
    const logger = recordingLogger()
    const result = await runEngine(root, { model, concurrency: 1, logger })
    expect(calls).toHaveLength(1)
    expect(result.summary).toMatchObject({ placeholders: 3, failed: 0, generated: 0 })
    expect(logger.warnings.filter(w => /3 images are not cached and there is no API key for mock.image mock-flux/.test(w))).toHaveLength(1)
    expect(logger.errors).toEqual([])
  })

  it('the key never reaches a message, even when the provider quotes it', async () => {
    process.env.FAL_KEY = 'fal-SENTINEL-secret-4242'
    try {
      const { model } = mockModel(() => Promise.reject(apiError(400, 'bad key fal-SENTINEL-secret-4242 in request')), 'fal.image', 'fal-ai/flux/schnell')
      await writeScripts(root, { 'a.script.json': scene({ a: 'one' }) })
      const logger = recordingLogger()
      const result = await runEngine(root, { model, logger }, { FAL_KEY: 'fal-SENTINEL-secret-4242' })
      expect(result.assets[0]!.error).toContain('bad key *** in request')
      expect(JSON.stringify(result) + logger.all()).not.toContain('SENTINEL')
    } finally {
      delete process.env.FAL_KEY
    }
  })
})

describe('prices and the budget', () => {
  it('a known FLUX offer has its price; an unknown one is cost unknown, which maxCost stops and maxNewImages counts', async () => {
    await writeScripts(root, { 'a.script.json': scene({ a: 'one', b: 'two' }) })
    const known = await runEngine(root, { model: mockModel(undefined, 'fal.image', 'fal-ai/flux/schnell').model })
    expect(known.summary.estimatedCost).toBeCloseTo(0.006)
    const unknown = mockModel(undefined, 'fluxhost.image', 'some/flux')
    await expect(runEngine(root, { model: unknown.model, maxCost: 100 })).rejects.toMatchObject({ code: 'FLUX_BUDGET', message: expect.stringMatching(/cost unknown.*price of some of them is unknown/) })
    await expect(runEngine(root, { model: unknown.model, maxNewImages: 1 })).rejects.toMatchObject({ code: 'FLUX_BUDGET' })
    expect(unknown.calls).toHaveLength(0)
    const paid = await runEngine(root, { model: unknown.model })
    expect(paid.summary).toMatchObject({ generated: 2, estimatedCost: null })
  })
})

describe('options and scripts', () => {
  it('the model object passes through options resolution untouched', () => {
    const { model } = mockModel()
    const before = { ...model }
    const options = resolveOptions({ root, model }, root, { env: {} })
    expect(options.imageModel).toBe(model)
    expect({ ...model }).toEqual(before)
    expect(options.defaults.model).toBe('mock-flux')
    expect(options.provider!.id).toBe('mock.image')
    expect(options.defaults.outputFormat).toBeUndefined()
  })

  it("Together's own options with an AI SDK model are an error that says what to do instead", () => {
    const { model } = mockModel(undefined, 'fal.image', 'fal-ai/flux/schnell')
    expect(() => resolveOptions({ root, model, apiKey: 'k' }, root, { env: {} })).toThrow(/option "apiKey" is a Together option.*set FAL_API_KEY/)
    expect(() => resolveOptions({ root, model, steps: 4 }, root, { env: {} })).toThrow(/option "steps" is a Together option.*providerOptions/)
    expect(() => resolveOptions({ root, model: { provider: 'x' } as never }, root, { env: {} })).toThrow(/must be a model id or an AI SDK image model/)
  })

  it('a per-asset "model" while the model is an AI SDK model: an error naming the file and the pointer', () => {
    const { model } = mockModel(undefined, 'fal.image', 'fal-ai/flux/schnell')
    const options = resolveOptions({ root, model }, root, { env: {} })
    const doc = JSON.stringify(scene({ pinned: { prompt: 'p', model: 'black-forest-labs/FLUX.2-dev' }, same: { prompt: 'q', model: 'fal-ai/flux/schnell' }, stepped: { prompt: 'r', steps: 4 } }))
    const { issues, requests } = parseScript(doc, 'story.script.json', options)
    expect(requests.map(r => r.id)).toEqual(['same'])
    expect(issues.map(i => `${i.script}: ${i.where}`)).toEqual(['story.script.json: /visual_track/0/assets/pinned/model', 'story.script.json: /visual_track/0/assets/stepped/steps'])
    expect(issues[0]!.message).toMatch(/AI SDK model \(fal.image fal-ai\/flux\/schnell\)/)
    expect(new ScriptError(issues).message).toContain('story.script.json: /visual_track/0/assets/pinned/model')
  })

  it('per-asset providerOptions must be JSON objects by provider; Together refuses them', () => {
    const ai = resolveOptions({ root, model: mockModel().model }, root, { env: {} })
    const bad = parseScript(JSON.stringify(scene({ a: { prompt: 'p', providerOptions: { mock: 3 } } })), 's.script.json', ai)
    expect(bad.issues[0]).toMatchObject({ where: '/visual_track/0/assets/a/providerOptions' })
    const together = resolveOptions({ root }, root, { env: {} })
    const refused = parseScript(JSON.stringify(scene({ a: { prompt: 'p', providerOptions: { fal: { x: 1 } } } })), 's.script.json', together)
    expect(refused.issues[0]).toMatchObject({ where: '/visual_track/0/assets/a/providerOptions' })
    expect(refused.issues[0]!.message).toMatch(/AI SDK model only/)
  })
})
