// Web variants (#14) through real Vite builds over photo-like images in the cache (no API call: every image is
// cached before the build): formats and widths, blur, per-asset settings, a warm build that encodes nothing, damaged
// variants made again from their source, prune, and sharp never loaded when no variant must be made.
import { execFile } from 'node:child_process'
import { readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import sharp from 'sharp'
import { build } from 'vite'
import { describe, expect, it } from 'vitest'
import { main } from '../src/core/cli'
import { createEngine } from '../src/core/engine'
import { resolveOptions } from '../src/core/options'
import { FileStore } from '../src/core/store'
import type { CacheHit, FluxAssetsOptions } from '../src/core/types'
import { targetsOf, Variants } from '../src/core/variants'
import flux from '../src/vite'
import { API_KEY, createProject, listFiles, pictureAsUrls, type Project, readManifest, runBundle } from './bundlers/helpers'
import { captureIO, silentLogger } from './core-helpers'
import { makePhoto } from './photo.mjs'

async function viteBuild(p: Project, options: FluxAssetsOptions, out: string) {
  await build({ root: p.dir, configFile: false, logLevel: 'silent', build: { outDir: p.path(out), modulePreload: { polyfill: false } }, plugins: [flux({ ...options, root: undefined })] })
  return readManifest(p.path(out))
}

/** Puts a photo-like image in the cache under each of the fixture's keys, at its size: the build then pays nothing. */
async function prefill(p: Project): Promise<Map<string, CacheHit>> {
  const engine = createEngine(resolveOptions({ ...p.options(), logger: silentLogger }, p.dir))
  const hits = new Map<string, CacheHit>()
  for (const r of (await engine.scan()).requests) {
    if (!hits.has(r.key)) hits.set(r.key, await engine.store.put(r.key, await makePhoto(r.prompt, { ...r.settings, format: r.settings.outputFormat }), { prompt: r.prompt, settings: r.settings }))
  }
  return hits
}

/** Every variant file in the cache (`<key>~<variant key>…`), with what would change if it were written again. */
async function variantFiles(p: Project): Promise<Map<string, string>> {
  const root = p.path('.flux-cache/v1')
  const files = (await readdir(root, { recursive: true })).filter(f => f.includes('~'))
  return new Map(await Promise.all(files.map(async f => [f, await stat(join(root, f)).then(s => `${s.ino} ${s.mtimeMs} ${s.size}`)] as const)))
}

describe('web variants in a Vite build', () => {
  it('ships WebP and AVIF at the requested widths (never upscaled) with a blur under 1 KB; an asset may set its own', async () => {
    const p = await createProject('variants')
    await prefill(p)
    // skyline sets its own: one small WebP, no blur.
    await p.editScript('src/scenes/outro.script.json', s => (s.visual_track[0].assets.skyline = { prompt: 'A city skyline at sunset', formats: ['webp'], widths: [64], blur: false }))
    const manifest = await viteBuild(p, p.options({ formats: ['webp', 'avif'], widths: [128, 4000] }), 'dist')
    expect(p.fake.stats.generationRequests).toBe(0)
    const app = await runBundle(join(p.path('dist'), (await listFiles(p.path('dist'))).find(f => /^assets\/index-.*\.js$/.test(f))!), 'esm')
    for (const e of manifest.entries) {
      const own = e.id === 'skyline'
      // 4000 is over every image's width: made at the image's own (256 or 512), never larger.
      const widths = own ? [64] : [128, e.width]
      const formats = own ? ['webp'] : ['webp', 'avif']
      const fallback = e.variants.at(-1)!
      expect(fallback).toMatchObject({ format: e.id === 'Logo Mark!' ? 'png' : 'jpeg', width: e.width, file: e.file })
      expect(e.variants.slice(0, -1).map(v => [v.format, v.width, v.height])).toEqual(formats.flatMap(f => widths.map(w => [f, w, Math.round((e.height * w) / e.width)])))
      for (const v of e.variants.slice(0, -1)) {
        const bytes = await readFile(p.path('dist', v.file))
        expect(bytes.length).toBe(v.bytes)
        const meta = await sharp(bytes).metadata()
        expect([meta.format, meta.width, meta.height]).toEqual([v.format === 'avif' ? 'heif' : 'webp', v.width, v.height])
      }
      expect(e.sources.map(s => s.type)).toEqual(own ? ['image/webp'] : ['image/avif', 'image/webp'])
      const webp = e.variants.filter(v => v.format === 'webp')
      expect(e.srcset.webp).toBe(webp.map(v => `${v.file} ${v.width}w`).join(', '))
      if (own) expect(e.blur).toBeNull()
      else {
        expect(e.blur!.color).toMatch(/^#[0-9a-f]{6}$/)
        expect(e.blur!.dataURL).toMatch(/^data:image\/webp;base64,/)
        expect(e.blur!.dataURL.length).toBeLessThan(1024)
      }
      // The bundle's modules give the same picture, every file name as its URL.
      const script = e.script.includes('outro') ? app.outro : e.script.includes('intro') ? app.intro : undefined
      if (script) {
        const value = e.pointer.split('/').slice(1).reduce((node: any, part) => node[part], script)
        expect(value).toMatchObject(pictureAsUrls(e, f => `/${f}`))
      }
      expect(app.scripts[e.script]).toContainEqual(expect.objectContaining(pictureAsUrls(e, f => `/${f}`)))
    }
    // Photo-like images: the WebP at full width is far smaller than the JPEG it was made from.
    for (const e of manifest.entries.filter(e => e.file.endsWith('.jpg') && e.id !== 'skyline')) {
      const full = e.variants.find(v => v.format === 'webp' && v.width === e.width)!
      expect(full.bytes).toBeLessThan(e.variants.at(-1)!.bytes * 0.6)
    }
  })

  it('a second build encodes nothing: no variant file in the cache is written again, the same files ship', async () => {
    const p = await createProject('variants-warm')
    await prefill(p)
    const options = p.options({ widths: [128, 256] })
    const first = await viteBuild(p, options, 'dist')
    const before = await variantFiles(p)
    // 5 images × 2 widths (the 512 one: 128 and 256) + 5 blurs, a record and an image each.
    expect(before.size).toBe((5 * 2 + 5) * 2)
    const second = await viteBuild(p, options, 'dist2')
    expect(await variantFiles(p)).toEqual(before)
    expect(second).toEqual(first)
    expect(p.fake.stats.generationRequests).toBe(0)
  })

  it('a damaged variant is made again from its cached source, with no API call', async () => {
    const p = await createProject('variants-damage')
    const sources = await prefill(p)
    const first = await viteBuild(p, p.options(), 'dist')
    const cache = new FileStore(p.path('.flux-cache'))
    const [a, b, c] = first.entries.filter((e, i, all) => all.findIndex(x => x.key === e.key) === i)
    const imageOf = async (key: string) => {
      const shard = join(cache.root, key.slice(0, 2))
      return (await readdir(shard)).filter(f => f.startsWith(`${key}~`) && !f.endsWith('.json')).map(f => join(shard, f))
    }
    const webpOf = async (key: string) => (await Promise.all((await imageOf(key)).map(async f => ((await stat(f)).size > 1000 ? f : undefined)))).find(Boolean)!
    // a: other bytes of the same size (its mtime changes): the cache check re-hashes and misses.
    const fa = await webpOf(a!.key)
    await writeFile(fa, Buffer.alloc((await stat(fa)).size, 7))
    // b: other bytes with the recorded mtime put back: the check trusts it, the read before emitting does not.
    const fb = await webpOf(b!.key)
    const info = await stat(fb)
    await writeFile(fb, Buffer.alloc(info.size, 9))
    await utimes(fb, info.atime, info.mtime)
    // c: every variant file gone, blur included.
    for (const f of await imageOf(c!.key)) await rm(f)
    const again = await viteBuild(p, p.options(), 'dist2')
    expect(p.fake.stats.generationRequests).toBe(0)
    for (const e of [a!, b!, c!]) {
      const [was, is] = [first, again].map(m => m.entries.find(x => x.key === e.key)!)
      // The same encoder on the same pixels: the same bytes as before the damage, and the same blur.
      expect(is.blur).toEqual(was.blur)
      expect((await readFile(p.path('dist2', is.variants[0]!.file))).equals(await readFile(p.path('dist', was.variants[0]!.file)))).toBe(true)
    }
    // The sources were never touched.
    for (const hit of sources.values()) expect((await cache.get(hit.record.key))?.record.sha256).toBe(hit.record.sha256)
  })

  it('prune removes the variants of the images it removes, and only those', async () => {
    const p = await createProject('variants-prune')
    await prefill(p)
    const manifest = await viteBuild(p, p.options(), 'dist')
    const skyline = manifest.entries.find(e => e.id === 'skyline')!.key
    const owners = async () => new Set([...(await variantFiles(p)).keys()].map(f => f.split('/').pop()!.slice(0, 64)))
    expect((await owners()).has(skyline)).toBe(true)
    await p.editScript('src/scenes/outro.script.json', s => delete s.visual_track[0].assets.skyline)
    // The build's roots keep what it used for 30 days (#11), its variants with it.
    const files = await variantFiles(p)
    expect(await main(['prune', '--root', p.dir, '--width', '256', '--height', '256'], captureIO().io)).toBe(0)
    expect(await variantFiles(p)).toEqual(files)
    // As if those 30 days had passed: prune may take skyline now.
    await rm(join(p.dir, '.flux-cache/v1/roots'), { recursive: true, force: true })
    const { io } = captureIO()
    expect(await main(['prune', '--root', p.dir, '--width', '256', '--height', '256'], io)).toBe(0)
    expect([...(await owners())].sort()).toEqual([...new Set(manifest.entries.map(e => e.key))].filter(k => k !== skyline).sort())
  })

  it('flux-assets verify re-hashes the variants too: a damaged one is reported and removed, the next build makes it again unpaid', async () => {
    const p = await createProject('variants-verify')
    const sources = await prefill(p)
    const options = p.options({ widths: [128] })
    await viteBuild(p, options, 'dist')
    const before = await variantFiles(p)
    const root = p.path('.flux-cache/v1')
    const images = [...before.keys()].filter(f => !f.endsWith('.json')).sort()
    const records = [...before.keys()].filter(f => f.endsWith('.json')).sort()
    // Other bytes of the same size with the recorded mtime put back: a build trusts it, only verify reads every byte.
    const sizes = await Promise.all(images.map(f => stat(join(root, f)).then(s => s.size)))
    // A full-size WebP (the blur images are WebPs of a few hundred bytes).
    const flipped = images.find((f, i) => f.endsWith('.webp') && sizes[i]! > 1000)!
    const info = await stat(join(root, flipped))
    await writeFile(join(root, flipped), Buffer.alloc(info.size, 3))
    await utimes(join(root, flipped), info.atime, info.mtime)
    // A variant record that is no longer JSON.
    const broken = records.find(r => r.slice(0, 64) !== flipped.slice(0, 64))!
    await writeFile(join(root, broken), '{"version": 1, ')
    const { io, stdout } = captureIO()
    expect(await main(['verify', '--root', p.dir], io)).toBe(1)
    const key = (f: string) => f.split('/').pop()!.slice(0, 12)
    expect(stdout.text).toMatch(new RegExp(`damaged  ${key(flipped)}  "[^"]+": its webp variant at \\d+w: its bytes do not match their sha256 \\(removed\\)\n`))
    expect(stdout.text).toContain(`damaged  ${key(broken)}  `)
    expect(stdout.text).toContain(': a variant record cannot be read (removed)\n')
    expect(stdout.text).toContain(`5 entries and ${records.length} variants checked · 2 damaged and removed`)
    const after = await variantFiles(p)
    expect(after.has(flipped)).toBe(false)
    expect(after.has(broken)).toBe(false)
    expect([...after.keys()].filter(f => f.startsWith(broken.slice(0, -5)))).toEqual([])
    // The next build makes both again from their cached sources: no API call, every variant back.
    await viteBuild(p, options, 'dist2')
    expect(p.fake.stats.generationRequests).toBe(0)
    expect((await variantFiles(p)).size).toBe(before.size)
    for (const hit of sources.values()) expect((await new FileStore(p.path('.flux-cache')).get(hit.record.key))?.record.sha256).toBe(hit.record.sha256)
    expect(await main(['verify', '--root', p.dir], captureIO().io)).toBe(0)
  })

  it('recover() removes old variant files without a record and variants whose source is gone, and only those', async () => {
    const p = await createProject('variants-orphans')
    await prefill(p)
    const manifest = await viteBuild(p, p.options(), 'dist')
    const root = p.path('.flux-cache/v1')
    const before = await variantFiles(p)
    // A variant file whose record was never written (a run killed between the two), beside a real one.
    const skyline = manifest.entries.find(e => e.id === 'skyline')!.key
    const [real] = [...before.keys()].filter(f => f.endsWith('.webp') && !f.split('/').pop()!.startsWith(skyline))
    const unrecorded = real!.replace(/~[0-9a-f]{64}-/, `~${'e'.repeat(64)}-`)
    await writeFile(join(root, unrecorded), await readFile(join(root, real!)))
    // A second file for a recorded variant key (a run killed while replacing it): the record names the other one.
    const replaced = real!.replace(/-([0-9a-f]{16})\.webp$/, (_, sha: string) => `-${sha === '0'.repeat(16) ? '1' : '0'}${'0'.repeat(15)}.webp`)
    await writeFile(join(root, replaced), await readFile(join(root, real!)))
    // skyline's source record and image are gone (removed, or discarded as damaged): its variants serve nothing.
    const shard = join(root, skyline.slice(0, 2))
    for (const f of await readdir(shard)) if (f === `${skyline}.json` || f.startsWith(`${skyline}-`)) await rm(join(shard, f))
    const ofSkyline = [...before.keys()].filter(f => f.split('/').pop()!.startsWith(`${skyline}~`))
    expect(ofSkyline.length).toBe(4)
    // Young files may belong to a writer in progress: left alone.
    expect(await new FileStore(p.path('.flux-cache')).recover()).toBe(0)
    expect((await variantFiles(p)).size).toBe(before.size + 2)
    // Ten minutes later: exactly the orphans go.
    const later = new FileStore(p.path('.flux-cache'), { now: () => Date.now() + 10 * 60_000 })
    expect(await later.recover()).toBe(2 + ofSkyline.length)
    expect([...(await variantFiles(p)).keys()].sort()).toEqual([...before.keys()].filter(f => !ofSkyline.includes(f)).sort())
  })

  it('flux-assets generate makes the variants a build would (config file, per-asset settings): the build after it encodes nothing; --dry-run makes none', async () => {
    const p = await createProject('variants-cli')
    await writeFile(p.path('flux-assets.config.json'), JSON.stringify({ widths: [128] }))
    await p.editScript('src/scenes/outro.script.json', s => (s.visual_track[0].assets.skyline = { prompt: 'A city skyline at sunset', formats: ['webp'], widths: [64], blur: false }))
    await writeFile(p.path('.env'), `TOGETHER_API_KEY=${API_KEY}\nTOGETHER_BASE_URL=${p.fake.baseURL}\n`)
    // Four images cached, one (office) for generate to pay for.
    const sources = await prefill(p)
    const office = [...sources.values()].find(h => h.record.prompt === 'A glass office at dawn')!
    await new FileStore(p.path('.flux-cache')).remove(office.record.key)
    const cli = (...args: string[]) => main([...args, '--root', p.dir, '--width', '256', '--height', '256'], captureIO().io)

    expect(await cli('generate', '--dry-run')).toBe(0)
    expect((await variantFiles(p)).size).toBe(0)
    expect(p.fake.stats.generationRequests).toBe(0)

    expect(await cli('generate')).toBe(0)
    expect(p.fake.stats.generations).toBe(1)
    const made = await variantFiles(p)
    // 4 images × (WebP at 128 + blur), skyline its own one WebP at 64: a record and a file each.
    expect(made.size).toBe((4 * 2 + 1) * 2)

    // The build (the config file again, the per-asset settings again) finds every variant: nothing is written again.
    const manifest = await viteBuild(p, p.options(), 'dist')
    expect(await variantFiles(p)).toEqual(made)
    expect(p.fake.stats.generationRequests).toBe(1)
    for (const e of manifest.entries) expect(e.variants.slice(0, -1).map(v => `${v.format}@${v.width}`)).toEqual(e.id === 'skyline' ? ['webp@64'] : ['webp@128'])
  })

  it('formats: [] never loads sharp, nor does a warm build; a build that must make variants does', async () => {
    const p = await createProject('variants-lazy')
    await prefill(p)
    const child = fileURLToPath(new URL('./bundlers/build-child.mjs', import.meta.url))
    const loaded = async (options: FluxAssetsOptions) => {
      const { stdout } = await promisify(execFile)(process.execPath, [child, p.dir, JSON.stringify({ ...p.options(options), logger: undefined })], { env: {} })
      return (JSON.parse(stdout) as { sharp: boolean }).sharp
    }
    expect(await loaded({ formats: [] })).toBe(false)
    expect(await loaded({})).toBe(true)
    expect(await loaded({})).toBe(false)
    expect(p.fake.stats.generationRequests).toBe(0)
  })
})

describe('Variants (the stage alone)', () => {
  it('sizes: widths sorted and deduplicated, none over the image, heights to scale', () => {
    const t = { formats: ['webp' as const], widths: [300, 2000, 100, 300], quality: { webp: 75, avif: 50 }, blur: true }
    expect(targetsOf(1024, 768, { ...t, widths: [100, 300, 2000] }).map(x => [x.width, x.height])).toEqual([[100, 75], [300, 225], [1024, 768]])
    expect(targetsOf(400, 300, { ...t, widths: [500, 800] }).map(x => x.width)).toEqual([400])
    expect(targetsOf(400, 300, { ...t, widths: [] }).map(x => x.width)).toEqual([400])
  })

  it('makes each variant once: a second look (a new build) finds them all, and other settings make only theirs', async () => {
    const p = await createProject('variants-unit')
    const [hit] = [...(await prefill(p)).values()]
    const encodes: string[] = []
    const stage = new Variants(new FileStore(p.path('.flux-cache')), { onEncode: e => void encodes.push(`${e.format}@${e.width}`) })
    const t = { formats: ['webp' as const], widths: [64, 128], quality: { webp: 75, avif: 50 }, blur: true }
    const set = await stage.of(hit!, t)
    expect(encodes.sort()).toEqual(['blur@16', 'webp@128', 'webp@64'])
    stage.reset()
    expect(await stage.of(hit!, t)).toEqual(set)
    expect(encodes).toHaveLength(3)
    // Another quality is another variant; the blur is shared.
    await stage.of(hit!, { ...t, quality: { webp: 60, avif: 50 } })
    expect(encodes.slice(3).sort()).toEqual(['webp@128', 'webp@64'])
  })
})
