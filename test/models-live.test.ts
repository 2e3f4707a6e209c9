// Issue #9 against the fake in today's shape (test/fake-together.mjs, after together-api-facts.md): the default model,
// what a retired model, a gated account and an impossible setting do (each stops before anything is billed), the true
// image size, catalog prices and the dollar cap, `flux-assets models`. Through the engine, the built CLI in a child
// process, and one real Vite build.
import { afterEach, describe, expect, it } from 'vitest'
import { createEngine } from '../src/core/engine'
import { resolveOptions } from '../src/core/options'
import { startFakeTogether, type FakeTogether, type FakeTogetherOptions } from './fake-together.mjs'
import { expectedKeys, fakeEnv, makeTemp, readManifest, recordingLogger, removeTemp, runCli, SENTINEL, SIZE, scriptWith, viteBuild, writeApp, writeScripts } from './reliability/helpers'

let fake: FakeTogether | undefined
let root: string | undefined
afterEach(async () => {
  await fake?.close()
  await removeTemp(root)
  fake = root = undefined
})

async function setup(label: string, options: FakeTogetherOptions = {}, scripts: Record<string, unknown> = { 'a.script.json': scriptWith(3, label) }) {
  fake = await startFakeTogether(options)
  root = await makeTemp(`models-${label}`)
  await writeScripts(root, scripts)
  return { fake, root, env: fakeEnv(fake.baseURL) }
}

const generationModels = (f: FakeTogether) => f.log.filter(e => e.method === 'POST').map(e => (e.body as { model: string }).model)

describe('today\'s models', () => {
  it('a project with no settings generates with FLUX.2 [dev], sends no steps, and prices it from the catalog', async () => {
    const { fake, root, env } = await setup('default')
    const run = await runCli(['generate', ...SIZE, '--json'], { cwd: root, env })
    expect(run.code, run.stderr).toBe(0)
    const out = JSON.parse(run.stdout)
    expect(out.summary).toMatchObject({ generated: 3, failed: 0 })
    expect(out.summary.estimatedCost).toBeCloseTo(3 * 0.0154, 12)
    expect(generationModels(fake)).toEqual(Array(3).fill('black-forest-labs/FLUX.2-dev'))
    for (const e of fake.log.filter(e => e.method === 'POST')) expect(e.body).not.toHaveProperty('steps')
    // The catalog is read once, before the first generation request.
    expect(fake.stats.catalogReads).toBe(1)
    expect(fake.log.findIndex(e => e.path === '/v1/models')).toBeLessThan(fake.log.findIndex(e => e.method === 'POST'))
  })

  it('the catalog\'s price wins over the built-in table', async () => {
    // The same model at another price in this account's listing.
    const { root, env } = await setup('price', { extraModels: [{ id: 'black-forest-labs/FLUX.2-dev', pricing: { image: { example_price: 0.5 } } }] })
    const run = await runCli(['generate', ...SIZE, '--json'], { cwd: root, env })
    expect(run.code, run.stderr).toBe(0)
    expect(JSON.parse(run.stdout).summary.estimatedCost).toBeCloseTo(1.5, 12)
  })

  it('a model the catalog does not list (retired FLUX.1 [schnell]) stops before any generation request, exit 1, listing what can be used', async () => {
    const { fake, root, env } = await setup('retired')
    const run = await runCli(['generate', ...SIZE, '--model', 'black-forest-labs/FLUX.1-schnell'], { cwd: root, env })
    expect(run.code).toBe(1)
    expect(run.stderr).toContain('model "black-forest-labs/FLUX.1-schnell" is not served for this key')
    expect(run.stderr).toContain('nothing was generated or billed')
    // FLUX first, with prices.
    const listed = run.stderr.split('\n').filter(l => l.startsWith('  '))
    expect(listed[0]).toMatch(/^ {2}black-forest-labs\/FLUX\.2-dev {2}\$0\.0154 per image$/)
    expect(listed.findIndex(l => !/FLUX/.test(l))).toBeGreaterThan(listed.findLastIndex(l => /FLUX/.test(l)))
    expect(fake.stats.generationRequests).toBe(0)
  })

  it('a project pinned to FLUX.1 [schnell] keeps its cached images with no API call at all', async () => {
    // Made while the model was served (an account of the fake that still serves it), with today's keys.
    const { root } = await setup('pinned', { retiredModels: [], extraModels: [{ id: 'black-forest-labs/FLUX.1-schnell' }] })
    const pinned = { model: 'black-forest-labs/FLUX.1-schnell' }
    const first = await runCli(['generate', ...SIZE, '--model', pinned.model], { cwd: root, env: fakeEnv(fake!.baseURL) })
    expect(first.code, first.stderr).toBe(0)
    expect(fake!.log.filter(e => e.method === 'POST').every(e => (e.body as { steps: number }).steps === 4)).toBe(true)
    await fake!.close()
    // Today: the API is not even reachable; every image is a hit, exit 0.
    fake = await startFakeTogether()
    const again = await runCli(['generate', ...SIZE, '--model', pinned.model, '--strict'], { cwd: root, env: fakeEnv('http://127.0.0.1:9/v1') })
    expect(again.code, again.stderr).toBe(0)
    expect(again.stdout).toMatch(/^3 assets · 0 generated · 3 cached/)
    expect((await expectedKeys(root, { ...pinned, width: 256, height: 256 })).length).toBe(3)
  })

  it('a setting the model cannot take is bad input naming file and pointer, before any request (not even the catalog)', async () => {
    const { fake, root, env } = await setup('refused', {}, { 'a.script.json': { visual_track: [{ assets: { hero: { prompt: 'too wide', width: 2048 }, ok: 'fine' } }] } })
    const run = await runCli(['generate', ...SIZE], { cwd: root, env })
    expect(run.code).toBe(2)
    expect(run.stderr).toBe(
      'flux-assets: a.script.json: /visual_track/0/assets/hero/width: FLUX.2 [dev] (black-forest-labs/FLUX.2-dev) does not take width 2048: over the 1920 px maximum; it takes width and height 256-1920, steps 1-50, guidance 1-10, seed, jpeg/png, reference_images\n',
    )
    // A global option the model cannot take points at the asset and names the option.
    const pro = await runCli(['generate', ...SIZE, '--model', 'black-forest-labs/FLUX.2-pro', '--steps', '20'], { cwd: root, env })
    expect(pro.code).toBe(2)
    expect(pro.stderr).toContain('a.script.json: /visual_track/0/assets/ok: FLUX.2 [pro] (black-forest-labs/FLUX.2-pro) does not take steps (it picks its own); it takes')
    expect(pro.stderr).toContain('(set by the option "steps")')
    expect(fake.stats.requests).toBe(0)
  })

  it('FLUX.2 [pro] is sent prompt_upsampling false unless asked, and it is part of the key', async () => {
    const { fake, root, env } = await setup('upsampling', {}, { 'a.script.json': { visual_track: [{ assets: { plain: 'pro plain', up: { prompt: 'pro up', promptUpsampling: true } } }] } })
    const run = await runCli(['generate', ...SIZE, '--model', 'black-forest-labs/FLUX.2-pro'], { cwd: root, env })
    expect(run.code, run.stderr).toBe(0)
    const bodies = new Map(fake.log.filter(e => e.method === 'POST').map(e => [(e.body as { prompt: string }).prompt, e.body as Record<string, unknown>]))
    expect(bodies.get('pro plain')).toMatchObject({ prompt_upsampling: false })
    expect(bodies.get('pro plain')).not.toHaveProperty('steps')
    expect(bodies.get('pro up')).toMatchObject({ prompt_upsampling: true })
  })
})

describe('account and safety', () => {
  it('the account gate (403 third_party_data_sharing_blocked) stops the run at once: exit 1, what to enable, nothing billed', async () => {
    const { fake, root, env } = await setup('gate', { dataSharing: false }, { 'a.script.json': scriptWith(12, 'gate') })
    const run = await runCli(['generate', ...SIZE, '--concurrency', '2'], { cwd: root, env })
    expect(run.code).toBe(1)
    const lines = run.stderr.split('\n').filter(l => l.includes('third_party_data_sharing_blocked') && !l.includes('not attempted'))
    expect(lines.at(-1)).toMatch(/allow third-party data sharing \(Together: Settings → Privacy, third-party \/ passthrough models\), then build again; nothing was billed$/)
    expect(fake.stats.generations).toBe(0)
    // No request after the first answer: at most the two already in flight.
    expect(fake.stats.generationRequests).toBeLessThanOrEqual(2)
  })

  it('a safety refusal (422) fails that one asset, never retried nor cached; the others carry on', async () => {
    const { fake, root } = await setup('safety', {}, { 'a.script.json': { visual_track: [{ assets: { a: 'safe one', b: 'unsafe [fake-unsafe]', c: 'safe two' } }] } })
    const logger = recordingLogger()
    const engine = createEngine(resolveOptions({ root, apiKey: SENTINEL, baseURL: fake.baseURL, width: 256, height: 256, logger }, root, { env: {} }))
    try {
      const { requests } = await engine.scan()
      const { assets, summary } = await engine.generate(requests)
      expect(summary).toMatchObject({ generated: 2, failed: 1 })
      expect(assets.find(a => a.id === 'b')!.error).toMatch(/^the provider's safety system refused the prompt \(422\)/)
      expect(fake.stats.generationRequests).toBe(3)
      expect(await engine.store.get(assets.find(a => a.id === 'b')!.key)).toBeUndefined()
    } finally {
      await engine.close()
    }
  })
})

describe('the true image', () => {
  it('Kontext sizes by aspect ratio: records, the manifest and the virtual module report the size received, with one note', async () => {
    const { root } = await setup('kontext', {}, { 'main.script.json': { visual_track: [{ assets: { wide: 'a wide view', other: 'another wide view' } }] } })
    await writeApp(root, ['main.script.json'])
    const logger = recordingLogger()
    // 1000×752 is nearest 4:3; Kontext makes 1184×864 for it.
    const outDir = await viteBuild(root, { apiKey: SENTINEL, baseURL: fake!.baseURL, model: 'black-forest-labs/FLUX.1-kontext-pro', width: 1000, height: 752, logger })
    const entries = await readManifest(outDir)
    expect(entries.map(e => [e.id, e.width, e.height])).toEqual([
      ['wide', 1184, 864],
      ['other', 1184, 864],
    ])
    const body = fake!.log.find(e => e.method === 'POST')!.body as Record<string, unknown>
    expect(body).toMatchObject({ aspect_ratio: '4:3' })
    expect(body).not.toHaveProperty('width')
    // Said once for the run, not once per image.
    const notes = logger.lines.filter(l => l.includes('sizes images by aspect ratio'))
    expect(notes).toEqual([expect.stringContaining('1000×752 is sent as the nearest ratio 4:3 (1184×864); set aspectRatio to choose')])
  })
})

describe('money', () => {
  it('maxCost: an estimate over the cap stops before any call; an unknown price counts as over it', async () => {
    const { fake, root, env } = await setup('maxcost', { extraModels: [{ id: 'acme/unpriced' }] })
    const over = await runCli(['generate', ...SIZE, '--max-cost', '0.04'], { cwd: root, env })
    expect(over.code).toBe(1)
    expect(over.stderr).toContain('3 new images would be generated (est. $0.046): more than maxCost ($0.04): nothing was generated')
    const unknown = await runCli(['generate', ...SIZE, '--max-cost', '100', '--model', 'acme/unpriced'], { cwd: root, env })
    expect(unknown.code).toBe(1)
    expect(unknown.stderr).toContain('the price of some of them is unknown')
    expect(fake.stats.generationRequests).toBe(0)
    const under = await runCli(['generate', ...SIZE, '--max-cost', '0.05'], { cwd: root, env })
    expect(under.code, under.stderr).toBe(0)
    expect(fake.stats.generations).toBe(3)
  })

  it('both caps hold for a whole session (one engine, as in dev and watch mode), not per rebuild', async () => {
    const { fake, root } = await setup('session', {}, { 'a.script.json': scriptWith(2, 'first') })
    const engine = createEngine(resolveOptions({ root, apiKey: SENTINEL, baseURL: fake.baseURL, width: 256, height: 256, maxNewImages: 3, logger: recordingLogger() }, root, { env: {} }))
    try {
      expect((await engine.generate((await engine.scan()).requests)).summary.generated).toBe(2)
      await writeScripts(root, { 'a.script.json': scriptWith(2, 'second') })
      const error = await engine.generate((await engine.scan()).requests).catch((e: unknown) => e)
      expect((error as Error).message).toBe(
        '2 new images would be generated (est. $0.031) (2 already generated in this session), more than maxNewImages (3): nothing was generated. Raise maxNewImages (CLI: --max-new-images) to go ahead.',
      )
      expect(fake.stats.generations).toBe(2)
    } finally {
      await engine.close()
    }
  })
})

describe('the catalog', () => {
  it('unreachable or malformed: carries on with the built-in table and says so once', async () => {
    const { fake, root, env } = await setup('nocatalog', { catalogResponse: { status: 200, body: '<html>maintenance</html>' } })
    const run = await runCli(['generate', ...SIZE], { cwd: root, env })
    expect(run.code, run.stderr).toBe(0)
    expect(run.stderr.match(/the model catalog could not be checked/g)).toHaveLength(1)
    expect(run.stdout).toMatch(/^3 assets · 3 generated .* est\. \$0\.046\n$/)
    expect(fake.stats.generations).toBe(3)
  })

  it('`flux-assets models` lists the image models the key can use: FLUX first, with price and what each takes', async () => {
    const { root, env } = await setup('list')
    const run = await runCli(['models'], { cwd: root, env })
    expect(run.code, run.stderr).toBe(0)
    const lines = run.stdout.split('\n')
    expect(lines[0]).toBe('black-forest-labs/FLUX.2-dev (default)')
    expect(lines[1]).toBe('  $0.0154 per image · width and height 256-1920, steps 1-50, guidance 1-10, seed, jpeg/png, reference_images')
    expect(run.stdout).not.toContain('Llama') // not an image model
    expect(run.stdout).toContain('Qwen/Qwen-Image\n  $0.0058 per image · unknown to this plugin')
  })
})
