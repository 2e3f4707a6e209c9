// Two real AI SDK providers (@ai-sdk/fal, @ai-sdk/openai-compatible) end to end against small fakes of their HTTP
// APIs (fake-ai-providers.mjs): real Vite builds that switch providers and back, our rules on their 401 and 429, the
// key nowhere in the output, and `ai` never loaded by a warm build with Together (#15).
import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { promisify } from 'node:util'
import { createFal } from '@ai-sdk/fal'
import { createOpenAICompatible } from '@ai-sdk/openai-compatible'
import { build } from 'vite'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { verifyImage } from '../src/core/image'
import type { FluxAssetsOptions } from '../src/core/types'
import flux from '../src/vite'
import { allText, cachedKeys, REPO, recordingLogger, removeDir, runEngine, scene, tempDir, writeScripts } from './core-helpers'
import { API_KEY, createProject, listFiles, type Project, readManifest, runBundle, UNIQUE } from './bundlers/helpers'
import { NSFW_MARKER, startFakeProvider } from './fake-ai-providers.mjs'

const FAL_KEY = 'fal-SENTINEL-key-0000-1111'
const HOST_KEY = 'host-SENTINEL-key-2222-3333'
type Fake = Awaited<ReturnType<typeof startFakeProvider>>

const fakes: Fake[] = []
const start = async (kind: 'fal' | 'openai-compatible', key: string) => {
  const fake = await startFakeProvider({ kind, key })
  fakes.push(fake)
  return fake
}
const posts = (fake: Fake) => fake.log.filter(e => e.method === 'POST')
const KEY_VARS = ['FAL_KEY', 'FAL_API_KEY']
beforeEach(() => {
  for (const name of KEY_VARS) delete process.env[name]
})
afterEach(async () => {
  for (const name of KEY_VARS) delete process.env[name]
  for (const fake of fakes.splice(0)) await fake.close()
})

const falModel = (fake: Fake, apiKey?: string) => createFal({ baseURL: fake.baseURL, ...(apiKey ? { apiKey } : {}) }).image('fal-ai/flux/schnell')
const hostModel = (fake: Fake, apiKey = HOST_KEY) => createOpenAICompatible({ name: 'fluxhost', baseURL: fake.baseURL, apiKey }).imageModel('black-forest-labs/FLUX.1-schnell')

/** `vite build` of the fixture app, as vite.test.ts does it. */
async function viteBuild(p: Project, options: FluxAssetsOptions, out: string) {
  await build({ root: p.dir, configFile: false, logLevel: 'silent', build: { outDir: p.path(out), modulePreload: { polyfill: false } }, plugins: [flux({ ...options, root: undefined })] })
  const manifest = await readManifest(p.path(out))
  const bundle = (await listFiles(p.path(out))).find(f => /^assets\/index-.*\.js$/.test(f))!
  return { manifest, app: await runBundle(p.path(out, bundle), 'esm') }
}

/** What the user writes to switch: their model, nothing of Together's (no apiKey, no baseURL). */
const switched = (p: Project, model: FluxAssetsOptions['model']): FluxAssetsOptions => {
  const { apiKey: _key, baseURL: _url, ...rest } = p.options()
  return { ...rest, model }
}

describe('a Vite app switches providers by its `model` line, and back', () => {
  it('Together, then fal (key from <root>/.env), then Together again (all cached), then an OpenAI-compatible host', async () => {
    const p = await createProject('ai-switch')
    const fal = await start('fal', FAL_KEY)
    const host = await start('openai-compatible', HOST_KEY)

    const together = await viteBuild(p, p.options(), 'dist-together')
    expect(p.fake.stats.generations).toBe(UNIQUE)

    // fal's FLUX.1 [schnell]: its key only in <root>/.env, as a user would keep it.
    await writeFile(p.path('.env'), `FAL_KEY=${FAL_KEY}\n`)
    const viaFal = await viteBuild(p, switched(p, falModel(fal)), 'dist-fal')
    expect(fal.generations).toBe(UNIQUE)
    expect(posts(fal).map(e => e.headers.authorization)).toEqual(Array(UNIQUE).fill(`Key ${FAL_KEY}`))
    expect(posts(fal).map(e => e.path)).toEqual(Array(UNIQUE).fill('/fal-ai/flux/schnell'))
    const logo = posts(fal).find(e => e.body.prompt === 'A minimal fox logo')!
    expect(logo.body).toMatchObject({ image_size: { width: 512, height: 256 }, num_images: 1 })
    expect(viaFal.manifest.entries.every(e => !e.placeholder)).toBe(true)
    for (const e of viaFal.manifest.entries) expect(verifyImage(await readFile(p.path('dist-fal', e.file!)))).toBe('png')
    // Other images than Together's: other keys, and what the bundle ships points at them.
    const keysOf = (m: typeof viaFal.manifest) => new Set(m.entries.map(e => e.key))
    expect([...keysOf(viaFal.manifest)].some(k => keysOf(together.manifest).has(k))).toBe(false)
    expect(viaFal.app.intro.visual_track[0].assets.avatar.url).toBe(`/${viaFal.manifest.entries.find(e => e.id === 'avatar')!.file}`)
    // fal's schnell price: $0.003 per megapixel, rounded up to 1 MP per image.
    expect(viaFal.app.scripts['src/scenes/intro.script.json'][0]).toMatchObject({ model: 'fal-ai/flux/schnell', cost: 0.003 })
    // The fixture's per-asset outputFormat is not sent to fal: said once, not an error.
    expect(p.logs.warnings.filter(w => w.includes('"outputFormat" is not sent to an AI SDK model'))).toHaveLength(1)

    // Back to Together: every image of its first build is still cached; nothing is generated.
    const back = await viteBuild(p, p.options(), 'dist-back')
    expect(p.fake.stats.generations).toBe(UNIQUE)
    expect(keysOf(back.manifest)).toEqual(keysOf(together.manifest))
    expect(back.manifest.entries.every(e => !e.placeholder)).toBe(true)

    // A third provider: an OpenAI-compatible endpoint (key given in code).
    const viaHost = await viteBuild(p, switched(p, hostModel(host)), 'dist-host')
    expect(host.generations).toBe(UNIQUE)
    expect(posts(host)[0]).toMatchObject({ path: '/v1/images/generations', headers: { authorization: `Bearer ${HOST_KEY}` } })
    expect(posts(host).find(e => e.body.prompt === 'A minimal fox logo')!.body).toMatchObject({ model: 'black-forest-labs/FLUX.1-schnell', n: 1, size: '512x256', response_format: 'b64_json' })
    expect(viaHost.manifest.entries.every(e => !e.placeholder)).toBe(true)
    // Cost unknown for a host the price table does not know.
    expect(viaHost.app.scripts['src/scenes/intro.script.json'][0]).toMatchObject({ cost: null })

    // Three providers' images, side by side in one cache.
    expect(await cachedKeys(p.path('.flux-cache'))).toHaveLength(3 * UNIQUE)
    // No key in any output, cache file or message (the .env file holds it, nothing else).
    const everything = [...['dist-together', 'dist-fal', 'dist-back', 'dist-host', '.flux-cache'].map(d => allText(p.path(d)))]
    const text = (await Promise.all(everything)).join('\n') + JSON.stringify(p.logs)
    for (const key of [FAL_KEY, HOST_KEY, API_KEY]) expect(text).not.toContain(key)
  })
})

describe("the providers' errors, under our rules", () => {
  let root: string
  beforeEach(async () => {
    root = await tempDir('ai-providers')
    await writeScripts(root, { 'a.script.json': scene({ one: 'first prompt', two: 'second prompt', three: 'third prompt' }) })
  })
  afterEach(async () => {
    await removeDir(root)
  })

  const cases = [
    { kind: 'fal' as const, key: FAL_KEY, model: (f: Fake, key: string) => falModel(f, key) },
    { kind: 'openai-compatible' as const, key: HOST_KEY, model: (f: Fake, key: string) => hostModel(f, key) },
  ]

  it.each(cases)('$kind: a 401 (wrong key) fails the run after one request, without the key in the message', async ({ kind, key, model }) => {
    const fake = await start(kind, key)
    const wrong = `${key}-WRONG`
    const logger = recordingLogger()
    const error = await runEngine(root, { model: model(fake, wrong), concurrency: 1, logger }).catch(e => e)
    expect(error).toMatchObject({ code: 'FLUX_AUTH' })
    expect(error.message).toMatch(/API key rejected \(401\)/)
    expect(posts(fake)).toHaveLength(1)
    expect(error.message + logger.all()).not.toContain(wrong)
    if (kind === 'openai-compatible') expect(error.message).toContain('Incorrect API key provided: ***')
    expect(await cachedKeys(join(root, '.flux-cache'))).toEqual([])
  })

  it.each(cases)("$kind: a 429's retry-after paces the retry, which retries: 0 does not forbid", async ({ kind, key, model }) => {
    const fake = await start(kind, key)
    fake.force({ status: 429, headers: { 'retry-after': '0' } })
    const result = await runEngine(root, { model: model(fake, key), concurrency: 1, retries: 0 })
    expect(result.summary).toMatchObject({ generated: 3, failed: 0 })
    expect(posts(fake)).toHaveLength(4)
  })

  it.each(cases)('$kind: a 429 asking for longer than maxRetryDelay fails that image at once, saying so', async ({ kind, key, model }) => {
    const fake = await start(kind, key)
    fake.force({ status: 429, headers: { 'retry-after': '90' } })
    const result = await runEngine(root, { model: model(fake, key), concurrency: 1, maxRetryDelay: 5000 })
    expect(result.summary).toMatchObject({ generated: 2, failed: 1 })
    expect(result.assets.find(a => a.placeholder)!.error).toMatch(/answered 429.*asked to wait 90 s, more than maxRetryDelay 5 s/)
  })

  it("fal's nsfw flag: the black image is not cached; the image is a placeholder", async () => {
    const fake = await start('fal', FAL_KEY)
    await writeScripts(root, { 'a.script.json': scene({ bad: `something ${NSFW_MARKER}`, good: 'a fine prompt' }) })
    const result = await runEngine(root, { model: falModel(fake, FAL_KEY) })
    expect(result.summary).toMatchObject({ generated: 1, failed: 1, paid: 2 })
    expect(result.assets.find(a => a.id === 'bad')!.error).toMatch(/providerMetadata.fal.images\[0\].nsfw/)
    expect(await cachedKeys(join(root, '.flux-cache'))).toHaveLength(1)
  })

  it('fal with no key anywhere: placeholders and one warning, nothing sent, not a failed run', async () => {
    const fake = await start('fal', FAL_KEY)
    const logger = recordingLogger()
    const result = await runEngine(root, { model: falModel(fake), logger })
    expect(result.summary).toMatchObject({ placeholders: 3, failed: 0 })
    expect(fake.log).toHaveLength(0)
    expect(logger.warnings.filter(w => /3 images are not cached and there is no API key for fal.image fal-ai\/flux\/schnell \(set FAL_API_KEY or FAL_KEY/.test(w))).toHaveLength(1)
  })

  it('our fetch: a redirect is not followed, and an image over maxImageBytes is refused', async () => {
    const host = await start('openai-compatible', HOST_KEY)
    host.force({ status: 307, headers: { location: `${host.baseURL}/images/generations` } })
    const redirected = await runEngine(root, { model: hostModel(host), concurrency: 1, retries: 0 })
    expect(redirected.assets.find(a => a.placeholder)!.error).toMatch(/answered a redirect \(307\); redirects are not followed/)
    expect(posts(host)).toHaveLength(3)

    const fal = await start('fal', FAL_KEY)
    const capped = await runEngine(root, { model: falModel(fal, FAL_KEY), maxImageBytes: 100, retries: 0 })
    expect(capped.summary.failed).toBe(3)
    expect(capped.assets[0]!.error).toMatch(/larger than the size cap/)
  })
})

describe('lazy loading', () => {
  it('a warm build with the default Together provider never imports ai (nor any @ai-sdk package)', async () => {
    const dist = join(REPO, 'dist/vite.js')
    expect(existsSync(dist), 'dist/ is built (npm test runs tsup first)').toBe(true)
    const p = await createProject('ai-lazy')
    await viteBuild(p, p.options(), 'dist-cold')
    // A child process whose module resolution refuses `ai`: the warm build must still work, making no call (the API
    // URL is a closed port), and the refusal itself is checked to be in force.
    const hook = `export async function resolve(s, c, next) { if (s === 'ai' || s.startsWith('ai/') || s.startsWith('@ai-sdk/')) throw new Error('REFUSED ' + s); return next(s, c) }`
    const script = `
      import { register } from 'node:module'
      register('data:text/javascript,' + encodeURIComponent(${JSON.stringify(hook)}))
      const { build } = await import('vite')
      const flux = (await import(${JSON.stringify(pathToFileURL(dist).href)})).default
      await build({ root: ${JSON.stringify(p.dir)}, configFile: false, logLevel: 'silent', build: { outDir: 'dist-warm' },
        plugins: [flux({ apiKey: 'sk-unused', baseURL: 'http://127.0.0.1:9/v1', width: 256, height: 256 })] })
      const probe = await import('ai').then(() => 'ai was imported', e => e.message)
      console.log(JSON.stringify({ built: true, probe }))`
    const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], { cwd: REPO, env: { PATH: process.env.PATH ?? '' } })
    expect(JSON.parse(stdout.trim().split('\n').pop()!)).toEqual({ built: true, probe: 'REFUSED ai' })
    expect((await readManifest(p.path('dist-warm'))).entries.every(e => !e.placeholder)).toBe(true)
  })
})
