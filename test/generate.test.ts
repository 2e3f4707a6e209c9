// The engine and `generateAssets` over the fake service: dedupe, cache hits, the record and summary, every way an
// image cannot be had (no key, offline, strict, failures, budget), prompt prefix/suffix, concurrency and abort.
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { generateAssets } from '../src'
import { BudgetError, StrictError } from '../src/core/errors'
import { cacheKey } from '../src/core/key'
import type { ImageSettings, Progress } from '../src/core/types'
import { SAFETY_MARKER, startFakeTogether, type FakeTogether } from './fake-together.mjs'
import { allText, API_KEY, cachedKeys, engineFor, fakeOptions, generationBodies, recordingLogger, removeDir, runEngine, scene, SMALL, tempDir, writeScripts } from './core-helpers'

let fake: FakeTogether
let root: string
const saved: Record<string, string | undefined> = {}
beforeEach(async () => {
  // generateAssets reads process.env: this file's process must not see the developer's key.
  for (const name of ['TOGETHER_API_KEY', 'TOGETHER_BEARER_TOKEN', 'TOGETHER_BASE_URL']) {
    saved[name] = process.env[name]
    delete process.env[name]
  }
  fake = await startFakeTogether()
  root = await tempDir('generate')
})
afterEach(async () => {
  for (const [name, value] of Object.entries(saved)) if (value !== undefined) process.env[name] = value
  await fake.close()
  await removeDir(root)
})

const cacheDir = () => join(root, '.flux-cache')
/** generateAssets as a user calls it, pointed at the fake with the sentinel key, 256×256, silent. */
const generate = (more: Parameters<typeof generateAssets>[0] = {}) =>
  generateAssets({ root, ...SMALL, ...fakeOptions(fake), logger: recordingLogger(), ...more })

/** FLUX.2 [dev]: a flat $0.0154 per image (the fake's catalog, as Together's). */
const PER_IMAGE = 0.0154

describe('generateAssets', () => {
  it('returns one record per asset occurrence, shaped { script, pointer, id, prompt, key, settings, file, width, height, placeholder }', async () => {
    await writeScripts(root, {
      'scenes/intro.script.json': { title: 'ignored', visual_track: [{ narration: 'ignored too' }, { assets: { avatar: 'A businessman in a suit', logo: { prompt: 'A logo', width: 512, height: 384 } } }] },
    })
    const { assets } = await generate()
    expect(assets).toHaveLength(2)
    const [avatar, logo] = assets
    expect(Object.keys(avatar!).sort()).toEqual(['file', 'height', 'id', 'key', 'placeholder', 'pointer', 'prompt', 'script', 'settings', 'width'])
    // Exactly what was sent: FLUX.2 [dev] gets no steps unless they are set.
    const settings: ImageSettings = { provider: 'together', model: 'black-forest-labs/FLUX.2-dev', width: 256, height: 256, outputFormat: 'jpeg' }
    expect(avatar).toStrictEqual({
      script: 'scenes/intro.script.json',
      pointer: '/visual_track/1/assets/avatar',
      id: 'avatar',
      prompt: 'A businessman in a suit',
      key: cacheKey('A businessman in a suit', settings),
      settings,
      file: expect.stringMatching(new RegExp(`^${cacheDir().replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/v1/[0-9a-f]{2}/[0-9a-f]{64}-[0-9a-f]{16}\\.jpg$`)),
      width: 256,
      height: 256,
      placeholder: false,
    })
    expect(logo).toMatchObject({ id: 'logo', pointer: '/visual_track/1/assets/logo', width: 512, height: 384, settings: { width: 512, height: 384 }, placeholder: false })
    // `file` is the cache path of a verified image, and the record beside it says the same prompt.
    const record = JSON.parse(await readFile(join(cacheDir(), 'v1', avatar!.key.slice(0, 2), `${avatar!.key}.json`), 'utf8'))
    expect(record).toMatchObject({ key: avatar!.key, prompt: avatar!.prompt, settings, responseId: expect.stringMatching(/^fake-\d+$/) })
    expect((await readFile(avatar!.file!)).length).toBe(record.size)
  })

  it('dedupes: the same prompt in two scripts is one generation and two records with one key and one file', async () => {
    await writeScripts(root, {
      'a.script.json': scene({ hero: 'A shared lighthouse at dusk', onlyA: 'Only in A' }),
      'b/b.script.json': scene({ cover: 'A shared lighthouse at dusk' }),
    })
    const { assets, summary } = await generate({ concurrency: 4 })
    expect(fake.stats.generations).toBe(2)
    expect(generationBodies(fake).map(b => b.prompt).sort()).toEqual(['A shared lighthouse at dusk', 'Only in A'])
    const shared = assets.filter(a => a.prompt === 'A shared lighthouse at dusk')
    expect(shared.map(a => [a.script, a.id])).toEqual([
      ['a.script.json', 'hero'],
      ['b/b.script.json', 'cover'],
    ])
    expect(shared[0]!.key).toBe(shared[1]!.key)
    expect(shared[0]!.file).toBe(shared[1]!.file)
    expect(summary).toMatchObject({ assets: 3, unique: 2, generated: 2, cached: 0, placeholders: 0, failed: 0 })
  })

  it('a second run is all cache hits: no request at all, the same files', async () => {
    await writeScripts(root, { 'a.script.json': scene({ a: 'first', b: 'second', c: 'third' }) })
    const first = await generate()
    expect(first.summary).toMatchObject({ generated: 3, cached: 0 })
    fake.reset()
    const second = await generate()
    expect(fake.stats.generationRequests).toBe(0)
    expect(second.summary).toMatchObject({ assets: 3, unique: 3, generated: 0, cached: 3, placeholders: 0, estimatedCost: 0 })
    expect(second.assets.map(a => a.file)).toEqual(first.assets.map(a => a.file))
  })

  it('summary: counts, duration and the estimated cost of what was generated this run', async () => {
    // Listed before the first run: the catalog is read once per process (and base URL).
    fake.set({ extraModels: [{ id: 'acme/unknown-model' }] })
    await writeScripts(root, { 'a.script.json': scene({ a: 'one', b: 'two', c: 'one' }) })
    const { summary } = await generate()
    expect(summary).toMatchObject({ assets: 3, unique: 2, generated: 2, cached: 0, placeholders: 0, failed: 0 })
    expect(summary.durationMs).toBeGreaterThanOrEqual(0)
    expect(Number.isInteger(summary.durationMs)).toBe(true)
    expect(summary.estimatedCost).toBeCloseTo(2 * PER_IMAGE, 12)

    // A model whose price is not known (listed by the fake without one) makes the estimate unknown (null), never 0.
    await writeScripts(root, { 'a.script.json': scene({ a: { prompt: 'eight steps', steps: 8 }, b: { prompt: 'other model', model: 'acme/unknown-model' } }) })
    const mixed = await generate({ cacheDir: 'cache-2' })
    expect(mixed.summary.estimatedCost).toBeNull()
    await writeScripts(root, { 'a.script.json': scene({ a: { prompt: 'eight steps', steps: 8 } }) })
    const steps = await generate({ cacheDir: 'cache-3' })
    // FLUX.2 [dev] is priced per image: steps do not change it.
    expect(steps.summary.estimatedCost).toBeCloseTo(PER_IMAGE, 12)

    // Priced per megapixel, scaled by steps above the listing's min_steps: FLUX.1 Kontext [pro] at $0.04 per MP from 28
    // steps, its 1:1 size 1024×1024 (1.048576 MP), at 42 steps: 1.5 times the price.
    await writeScripts(root, { 'a.script.json': scene({ a: { prompt: 'kontext', model: 'black-forest-labs/FLUX.1-kontext-pro', aspectRatio: '1:1', steps: 42 } }) })
    const kontext = await generate({ cacheDir: 'cache-4' })
    expect(kontext.summary.estimatedCost).toBeCloseTo(1.048576 * 0.04 * 1.5, 12)
  })

  it('reports progress up to done === total', async () => {
    await writeScripts(root, { 'a.script.json': scene({ a: 'p1', b: 'p2', c: 'p3' }) })
    const events: Progress[] = []
    await generate({ onProgress: p => events.push(p) })
    expect(events[0]).toMatchObject({ total: 3, done: 0, cached: 0 })
    expect(events.at(-1)).toMatchObject({ total: 3, done: 3, generated: 3, generating: 0, failed: 0 })
    for (const e of events) expect(e.generating).toBeLessThanOrEqual(4)
  })
})

describe('when an image cannot be had', () => {
  it('no key: every uncached asset is a placeholder, one warning says how many and why, no request is made', async () => {
    await writeScripts(root, { 'a.script.json': scene({ a: 'no key one', b: 'no key two', c: 'no key one' }) })
    const logs = recordingLogger()
    // No apiKey option, no env, no .env.
    const { assets, summary } = await runEngine(root, { baseURL: fake.baseURL, logger: logs })
    expect(fake.stats.generationRequests).toBe(0)
    expect(summary).toMatchObject({ assets: 3, unique: 2, generated: 0, cached: 0, placeholders: 2, failed: 0 })
    for (const a of assets) expect(a).toMatchObject({ placeholder: true, file: null, error: 'no API key (set TOGETHER_API_KEY)' })
    expect(logs.warnings).toEqual(['2 images are not cached and no API key is set (TOGETHER_API_KEY): using placeholders'])
    expect(logs.errors).toEqual([])

    // generateAssets with a clean environment says the same.
    const viaApi = await generateAssets({ root, ...SMALL, baseURL: fake.baseURL, logger: logs })
    expect(viaApi.summary.placeholders).toBe(2)
    expect(logs.warnings).toHaveLength(2)
    expect(fake.stats.generationRequests).toBe(0)
  })

  it('no key: what is cached is still used', async () => {
    await writeScripts(root, { 'a.script.json': scene({ a: 'cached already' }) })
    await generate()
    await writeScripts(root, { 'a.script.json': scene({ a: 'cached already', b: 'not yet' }) })
    fake.reset()
    const { assets, summary } = await runEngine(root, { baseURL: fake.baseURL })
    expect(fake.stats.generationRequests).toBe(0)
    expect(summary).toMatchObject({ cached: 1, placeholders: 1 })
    expect(assets.map(a => a.placeholder)).toEqual([false, true])
  })

  it('offline: no request even with a key; cached entries used, missing ones placeholders, one warning', async () => {
    await writeScripts(root, { 'a.script.json': scene({ a: 'offline cached' }) })
    await generate()
    await writeScripts(root, { 'a.script.json': scene({ a: 'offline cached', b: 'offline missing' }) })
    fake.reset()
    const logs = recordingLogger()
    const { assets, summary } = await generate({ offline: true, logger: logs })
    expect(fake.stats.generationRequests).toBe(0)
    expect(summary).toMatchObject({ generated: 0, cached: 1, placeholders: 1, failed: 0 })
    expect(assets[1]).toMatchObject({ id: 'b', placeholder: true, file: null, error: 'offline: no API call made' })
    expect(logs.warnings).toEqual(['1 image is not cached and offline mode is on: using placeholders'])
  })

  it('strict: a StrictError listing each asset with its reason; all cached passes', async () => {
    await writeScripts(root, {
      'a.script.json': scene({ a: 'strict one', b: 'strict two' }),
      'b.script.json': scene({ c: 'strict one' }),
    })
    const error = await runEngine(root, { baseURL: fake.baseURL, strict: true }).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(StrictError)
    expect((error as StrictError).code).toBe('FLUX_STRICT')
    expect((error as StrictError).message.split('\n')).toEqual([
      'strict: 2 images are placeholders, and strict allows none:',
      '  a.script.json /visual_track/0/assets/a: no API key (set TOGETHER_API_KEY)',
      '  a.script.json /visual_track/0/assets/b: no API key (set TOGETHER_API_KEY)',
      '  b.script.json /visual_track/0/assets/c: no API key (set TOGETHER_API_KEY)',
    ])
    await expect(generate({ strict: true, offline: true })).rejects.toThrow(/offline: no API call made/)

    await generate()
    const ok = await generate({ strict: true, offline: true })
    expect(ok.summary).toMatchObject({ cached: 2, placeholders: 0 })
  })

  it('a failed asset becomes a placeholder with one line naming script, id and message; the others finish and are cached', async () => {
    await writeScripts(root, {
      'a.script.json': scene({ good1: 'works one', broken: `refused by the safety checker ${SAFETY_MARKER}`, good2: 'works two' }),
      'b.script.json': scene({ good3: 'works three' }),
    })
    const logs = recordingLogger()
    const { assets, summary } = await generate({ logger: logs })
    expect(summary).toMatchObject({ assets: 4, generated: 3, placeholders: 1, failed: 1 })
    const broken = assets.find(a => a.id === 'broken')!
    expect(broken).toMatchObject({ placeholder: true, file: null })
    expect(broken.error).toMatch(/^the provider's safety system refused the prompt \(422\)/)
    expect(logs.warnings).toEqual([`a.script.json: broken: ${broken.error}`])
    expect(await cachedKeys(cacheDir())).toEqual(assets.filter(a => a.id !== 'broken').map(a => a.key).sort())
  })

  it('a model the API does not serve is asked once, then not again in the run (the catalog unreadable, so it is asked)', async () => {
    fake.set({ catalogResponse: { status: 503 } })
    const dead = { model: 'black-forest-labs/FLUX.1-schnell-Free' }
    await writeScripts(root, { 'a.script.json': scene({ a: { prompt: 'dead 1', ...dead }, b: { prompt: 'dead 2', ...dead }, c: { prompt: 'dead 3', ...dead }, d: 'alive' }) })
    const { assets } = await generate({ concurrency: 1, apiFailure: 'placeholder' })
    expect(generationBodies(fake).filter(b => b.model === dead.model)).toHaveLength(1)
    expect(assets.filter(a => a.placeholder)).toHaveLength(3)
    expect(assets.find(a => a.id === 'c')!.error).toMatch(/^not attempted: model ".+" is not available \(404\)/)
    expect(assets.find(a => a.id === 'd')!.placeholder).toBe(false)
  })

  it('out of credits (402) stops every further call and fails the run; what was generated before is kept', async () => {
    fake.set({ credits: 2 })
    await writeScripts(root, { 'a.script.json': scene({ a: 'c1', b: 'c2', c: 'c3', d: 'c4', e: 'c5' }) })
    const logs = recordingLogger()
    const error = await generate({ concurrency: 1, logger: logs }).catch((e: unknown) => e)
    expect((error as Error).message).toMatch(/^out of credits \(402\): .*\n3 images could not be generated; every image made before stays cached/)
    expect(fake.stats.generationRequests).toBe(3)
    expect(await cachedKeys(cacheDir())).toHaveLength(2)

    // apiFailure 'placeholder': the same run ships placeholders for the rest, and says why once.
    const placeholders = recordingLogger()
    const { assets, summary } = await generate({ concurrency: 1, logger: placeholders, apiFailure: 'placeholder' })
    expect(summary).toMatchObject({ generated: 0, cached: 2, placeholders: 3, failed: 3 })
    expect(assets.map(a => a.placeholder)).toEqual([false, false, true, true, true])
    expect(assets[3]!.error).toMatch(/^(not attempted: )?out of credits \(402\)/)
    expect(placeholders.warnings).toEqual([])
    expect(placeholders.errors).toEqual([expect.stringMatching(/^out of credits \(402\): .*: 3 images are placeholders$/)])
  })

  it('maxNewImages: more uncached images than allowed stops before the first call, naming the count and the cost', async () => {
    await writeScripts(root, { 'a.script.json': scene({ a: 'b1', b: 'b2', c: 'b3', d: 'b1' }) })
    // Default size: 3 × 1024×768 at $0.0027/MP = $0.0064.
    const error = await generate({ width: undefined, height: undefined, maxNewImages: 2 }).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(BudgetError)
    expect((error as BudgetError).code).toBe('FLUX_BUDGET')
    expect((error as BudgetError).message).toBe(
      '3 new images would be generated (est. $0.046), more than maxNewImages (2): nothing was generated. Raise maxNewImages (CLI: --max-new-images) to go ahead.',
    )
    expect(fake.stats.generationRequests).toBe(0)
    expect(await cachedKeys(cacheDir())).toEqual([])

    // Exactly at the limit goes ahead; cached images do not count against it.
    await generate({ maxNewImages: 3 })
    await writeScripts(root, { 'a.script.json': scene({ a: 'b1', b: 'b2', c: 'b3', d: 'b4' }) })
    const next = await generate({ maxNewImages: 1 })
    expect(next.summary).toMatchObject({ generated: 1, cached: 3 })
    // An unknown model's cost is said to be unknown.
    await writeScripts(root, { 'a.script.json': scene({ a: { prompt: 'x', model: 'acme/unknown' }, b: { prompt: 'y', model: 'acme/unknown' } }) })
    await expect(generate({ maxNewImages: 1 })).rejects.toThrow(/^2 new images would be generated \(cost unknown\)/)
  })

  it('maxNewImages 0 with everything cached, or offline, is no budget stop', async () => {
    await writeScripts(root, { 'a.script.json': scene({ a: 'z1' }) })
    await generate()
    await expect(generate({ maxNewImages: 0 })).resolves.toMatchObject({ summary: { cached: 1 } })
    await writeScripts(root, { 'a.script.json': scene({ a: 'z1', b: 'z2' }) })
    await expect(generate({ maxNewImages: 0, offline: true })).resolves.toMatchObject({ summary: { placeholders: 1 } })
  })
})

describe('prompts, concurrency, abort', () => {
  it('promptPrefix and promptSuffix are in the prompt sent, the record, the cache record and the key', async () => {
    await writeScripts(root, { 'a.script.json': scene({ hero: 'a fox' }) })
    const { assets } = await generate({ promptPrefix: 'Watercolour: ', promptSuffix: ', soft light' })
    const final = 'Watercolour: a fox, soft light'
    expect(generationBodies(fake).map(b => b.prompt)).toEqual([final])
    const [hero] = assets
    expect(hero!.prompt).toBe(final)
    expect(hero!.key).toBe(cacheKey(final, hero!.settings))
    const record = JSON.parse(await readFile(join(cacheDir(), 'v1', hero!.key.slice(0, 2), `${hero!.key}.json`), 'utf8'))
    expect(record.prompt).toBe(final)
    // Another house style is another image.
    const other = await generate({ promptPrefix: 'Oil painting: ' })
    expect(other.assets[0]!.key).not.toBe(hero!.key)
    expect(other.summary.generated).toBe(1)
  })

  it('never has more requests in flight than `concurrency`', async () => {
    fake.set({ latencyMs: 60 })
    const assets = Object.fromEntries(Array.from({ length: 9 }, (_, i) => [`a${i}`, `concurrent prompt ${i}`]))
    await writeScripts(root, { 'a.script.json': scene(assets) })
    const { summary } = await generate({ concurrency: 2 })
    expect(summary.generated).toBe(9)
    expect(fake.stats.maxInFlight).toBeGreaterThanOrEqual(1)
    expect(fake.stats.maxInFlight).toBeLessThanOrEqual(2)

    fake.reset()
    await generate({ concurrency: 1, cacheDir: 'cache-serial' })
    expect(fake.stats.maxInFlight).toBe(1)
  })

  it('a request slot is freed once the answer is in: a slow cache write does not hold back the next request', async () => {
    await writeScripts(root, { 'a.script.json': scene({ a: 'slot one', b: 'slot two' }) })
    const engine = engineFor(root, { ...SMALL, ...fakeOptions(fake), concurrency: 1, logger: recordingLogger() })
    const put = engine.store.put.bind(engine.store)
    let requestsWhileFirstWrite = 0
    engine.store.put = async (...args) => {
      // The first write waits for the second request (up to 5 s): with the slot still held it would never come.
      if (!requestsWhileFirstWrite) {
        for (let i = 0; i < 100 && fake.stats.generationRequests < 2; i++) await new Promise(r => setTimeout(r, 50))
        requestsWhileFirstWrite = fake.stats.generationRequests
      }
      return put(...args)
    }
    try {
      const { summary } = await engine.generate((await engine.scan()).requests)
      expect(summary.generated).toBe(2)
    } finally {
      await engine.close()
    }
    expect(requestsWhileFirstWrite).toBe(2)
    expect(fake.stats.maxInFlight).toBe(1)
  })

  it("the engine's result carries the verified cache entry of each image (what the plugin emits from), none for a placeholder", async () => {
    await writeScripts(root, { 'a.script.json': scene({ a: 'hit one', b: 'hit two', c: 'hit one' }) })
    const engine = engineFor(root, { ...SMALL, ...fakeOptions(fake), logger: recordingLogger() })
    try {
      const { assets, hits } = await engine.generate((await engine.scan()).requests)
      expect(hits.size).toBe(2)
      for (const a of assets) expect(hits.get(a.key)).toMatchObject({ file: a.file, record: { key: a.key, prompt: a.prompt } })
    } finally {
      await engine.close()
    }
    const offline = engineFor(root, { ...SMALL, offline: true, logger: recordingLogger() })
    await writeScripts(root, { 'b.script.json': scene({ d: 'never generated' }) })
    const { assets, hits } = await offline.generate((await offline.scan()).requests)
    expect(assets.find(a => a.id === 'd')).toMatchObject({ placeholder: true })
    expect(hits.size).toBe(2)
  })

  it('an abort signal stops the run: it rejects with the reason, sends nothing more, and keeps what finished', async () => {
    fake.set({ latencyMs: 150 })
    await writeScripts(root, { 'a.script.json': scene({ a: 'ab1', b: 'ab2', c: 'ab3', d: 'ab4', e: 'ab5' }) })
    const controller = new AbortController()
    const reason = new Error('user pressed stop')
    const run = generate({
      concurrency: 1,
      signal: controller.signal,
      onProgress: p => p.generated === 1 && controller.abort(reason),
    })
    await expect(run).rejects.toBe(reason)
    const sent = fake.stats.generationRequests
    expect(sent).toBeGreaterThanOrEqual(1)
    expect(sent).toBeLessThan(5)
    expect(await cachedKeys(cacheDir())).toHaveLength(1)

    // The next run pays only for the rest: a request of the aborted run sent late would show as a fifth generation
    // or a repeated prompt.
    fake.reset()
    fake.set({ latencyMs: 0 })
    const rest = await generate()
    expect(rest.summary).toMatchObject({ generated: 4, cached: 1 })
    const prompts = generationBodies(fake).map(b => b.prompt)
    expect(prompts).toHaveLength(4)
    expect(new Set(prompts).size).toBe(4)
  })

  it('an already aborted signal makes no request', async () => {
    await writeScripts(root, { 'a.script.json': scene({ a: 'never sent' }) })
    await expect(generate({ signal: AbortSignal.abort(new Error('gone')) })).rejects.toThrow('gone')
    expect(fake.stats.generationRequests).toBe(0)
  })

  it('the key never appears in records or cache files', async () => {
    await writeScripts(root, { 'a.script.json': scene({ a: 'secret check' }) })
    const result = await generate()
    expect(JSON.stringify(result)).not.toContain(API_KEY)
    expect(await allText(cacheDir())).not.toContain(API_KEY)
  })
})
