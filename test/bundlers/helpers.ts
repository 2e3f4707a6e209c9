// Shared by the six bundler tests: a fresh copy of the fixture app with its own cache and its own fake Together,
// the checks every build must pass, and the suite every bundler runs. Each test file only says how to build.
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { cp, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { afterEach, expect, it } from 'vitest'
import type { Manifest } from '../../src/core/manifest'
import { verifyImage } from '../../src/core/image'
import { sha256 } from '../../src/core/key'
import type { FluxAssetsOptions, Logger } from '../../src/core/types'
import { type FakeTogether, type FakeTogetherOptions, startFakeTogether } from '../fake-together.mjs'

export const API_KEY = 'sk-test-SENTINEL-1234567890'
const FIXTURE = fileURLToPath(new URL('../fixtures/app', import.meta.url))
const TMP = fileURLToPath(new URL('../.tmp', import.meta.url))
const RUNNER = fileURLToPath(new URL('./run-bundle.mjs', import.meta.url))

// Never the developer's key or endpoint: every test passes its own, and the no-key test needs none at all.
for (const name of ['TOGETHER_API_KEY', 'TOGETHER_BEARER_TOKEN', 'TOGETHER_BASE_URL']) delete process.env[name]

/** Every asset occurrence of the fixture, as the manifest must list it (plugin options width/height 256). */
export const EXPECTED = [
  { script: 'content/credits.script.json', pointer: '/visual_track/0/assets/credits', id: 'credits', prompt: 'Film credits on a dark background', width: 256, height: 256 },
  { script: 'src/scenes/intro.script.json', pointer: '/visual_track/0/assets/avatar', id: 'avatar', prompt: 'A businessman in a suit', width: 256, height: 256 },
  { script: 'src/scenes/intro.script.json', pointer: '/visual_track/0/assets/office', id: 'office', prompt: 'A glass office at dawn', width: 256, height: 256 },
  { script: 'src/scenes/intro.script.json', pointer: '/visual_track/2/assets/Logo Mark!', id: 'Logo Mark!', prompt: 'A minimal fox logo', width: 512, height: 256 },
  { script: 'src/scenes/outro.script.json', pointer: '/visual_track/0/assets/avatar', id: 'avatar', prompt: 'A businessman in a suit', width: 256, height: 256 },
  { script: 'src/scenes/outro.script.json', pointer: '/visual_track/0/assets/skyline', id: 'skyline', prompt: 'A city skyline at sunset', width: 256, height: 256 },
]
/** Five prompts, one of them used twice. */
export const UNIQUE = new Set(EXPECTED.map(e => e.prompt)).size

export interface Logs extends Logger {
  infos: string[]
  warnings: string[]
  errors: string[]
}

export interface Project {
  /** The copy of the fixture app: the bundler's root. */
  dir: string
  fake: FakeTogether
  logs: Logs
  /** Plugin options: this project's root, cache, key and fake; small images. `extra` wins. */
  options(extra?: FluxAssetsOptions): FluxAssetsOptions
  path(...rel: string[]): string
  /** Rewrites a fixture script through `edit`. */
  editScript(rel: string, edit: (script: any) => void): Promise<void>
}

const cleanups: Array<() => Promise<void>> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

/** A fresh copy of the fixture under test/.tmp/, with its own fake Together; removed after the test. */
export async function createProject(label: string, fakeOptions: FakeTogetherOptions = {}): Promise<Project> {
  const dir = join(TMP, `${label}-${randomBytes(4).toString('hex')}`)
  await mkdir(TMP, { recursive: true })
  await cp(FIXTURE, dir, { recursive: true })
  cleanups.push(() => rm(dir, { recursive: true, force: true }))
  const fake = await startFakeTogether(fakeOptions)
  cleanups.push(() => fake.close())
  const logs: Logs = { infos: [], warnings: [], errors: [], info: m => logs.infos.push(m), warn: m => logs.warnings.push(m), error: m => logs.errors.push(m) }
  const path = (...rel: string[]) => join(dir, ...rel)
  return {
    dir,
    fake,
    logs,
    options: extra => ({ root: dir, cacheDir: '.flux-cache', apiKey: API_KEY, baseURL: fake.baseURL, width: 256, height: 256, logger: logs, ...extra }),
    path,
    async editScript(rel, edit) {
      const script = JSON.parse(await readFile(path(rel), 'utf8'))
      edit(script)
      await writeFile(path(rel), `${JSON.stringify(script, null, 2)}\n`)
    },
  }
}

/** Files under `dir`, relative and posix, recursively. */
export async function listFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true })
  return entries.filter(e => e.isFile()).map(e => relative(dir, join(e.parentPath, e.name)).split('\\').join('/')).sort()
}

export async function readManifest(outDir: string): Promise<Manifest> {
  return JSON.parse(await readFile(join(outDir, 'flux-assets.json'), 'utf8'))
}

/** Runs a bundle in a child Node process and returns what the fixture's main.js put on globalThis. */
export async function runBundle(file: string, kind: 'esm' | 'script'): Promise<any> {
  const { stdout } = await promisify(execFile)(process.execPath, [RUNNER, file, kind], { env: {} })
  return JSON.parse(stdout)
}

function at(data: any, pointer: string): any {
  return pointer
    .split('/')
    .slice(1)
    .map(p => p.replace(/~1/g, '/').replace(/~0/g, '~'))
    .reduce((node, part) => node?.[part], data)
}

/** What a build produced, as a test needs it. */
export interface Built {
  outDir: string
  /** The JS file holding the fixture's main.js. */
  bundle: string
  kind: 'esm' | 'script'
  /** The URL a `?flux` import must give for a manifest `file` when the bundle runs in Node. */
  urlOf(file: string): string
  /** How this bundler names emitted images: one of NAMES. */
  names: Names
}

export interface Names {
  /** The images' folder in the output dir. */
  dir: string
  /** `bundler`: the bundler's own content hash (Rollup-likes' `[hash]`); `sha`: the first 8 hex of the bytes' sha256. */
  hash: 'bundler' | 'sha'
}

/**
 * Rollup, Rolldown and Vite name images by `assetFileNames` (default `assets/[name]-[hash][extname]`, their own
 * hash); webpack and Rspack put ours (`<slug>-<sha8>.<ext>`) in the folder of their asset template (default
 * `[hash][ext][query]`: the output root); esbuild under `assets/`.
 */
export const NAMES = {
  rollup: { dir: 'assets', hash: 'bundler' },
  webpack: { dir: '', hash: 'sha' },
  esbuild: { dir: 'assets', hash: 'sha' },
} as const satisfies Record<string, Names>

/**
 * Every check a successful build of the fixture must pass: valid images, one per unique prompt, with our
 * `<slug>-<hash8>.<ext>` names; the manifest exactly as the issue specifies; `?flux` and `virtual:flux-assets`
 * values pointing at the emitted files; the plain JSON import untouched. Returns the manifest.
 */
export interface CheckOptions {
  placeholders?: boolean
  /** A prompt changed since the fixture (watch mode). */
  edited?: { script: string; id: string; prompt: string }
  /** Images a previous build left in the output dir (Rollup does not empty it). */
  leftovers?: string[]
}

export async function checkBuild(p: Project, built: Built, { placeholders = false, edited, leftovers = [] }: CheckOptions = {}): Promise<Manifest> {
  const expected = EXPECTED.map(e => (edited && e.script === edited.script && e.id === edited.id ? { ...e, prompt: edited.prompt } : e))
  const manifest = await readManifest(built.outDir)
  expect(Object.keys(manifest)).toEqual(['version', 'entries'])
  expect(manifest.version).toBe(1)
  const sortKey = (e: { script: string; pointer: string }) => `${e.script}#${e.pointer}`
  const entries = [...manifest.entries].sort((a, b) => sortKey(a).localeCompare(sortKey(b)))
  expect(entries.map(({ script, pointer, id, prompt, width, height }) => ({ script, pointer, id, prompt, width, height }))).toEqual(expected)

  const outputs = new Set(await listFiles(built.outDir))
  const fileOfKey = new Map<string, string>()
  const variantFiles = new Set<string>()
  for (const entry of entries) {
    expect(Object.keys(entry).sort()).toEqual(['blur', 'file', 'height', 'id', 'key', 'placeholder', 'pointer', 'prompt', 'script', 'sources', 'src', 'srcset', 'variants', 'width'])
    expect(entry.placeholder).toBe(placeholders)
    expect(entry.key).toMatch(/^[0-9a-f]{64}$/)
    const slug = entry.id === 'Logo Mark!' ? 'logo-mark' : entry.id
    const { dir, hash } = built.names
    expect(entry.file).toMatch(new RegExp(`^${dir ? `${dir}/` : ''}${slug}-${hash === 'sha' ? '[0-9a-f]{8}' : '[\\w-]{8}'}\\.${placeholders ? 'svg' : entry.id === 'Logo Mark!' ? 'png' : 'jpg'}$`))
    expect(outputs.has(entry.file), `${entry.file} is emitted`).toBe(true)
    const bytes = await readFile(join(built.outDir, entry.file))
    if (hash === 'sha') expect(entry.file, 'named by the hash of its bytes').toContain(`-${sha256(bytes).slice(0, 8)}.`)
    if (placeholders) expect(bytes.toString('utf8')).toContain('<svg')
    else expect(entry.file.endsWith(`.${verifyImage(bytes)}`)).toBe(true)
    await checkPicture(built, entry, bytes.length, placeholders)
    for (const v of entry.variants) variantFiles.add(v.file)
    // One key, one file; another key, another file.
    expect(fileOfKey.get(entry.key) ?? entry.file).toBe(entry.file)
    fileOfKey.set(entry.key, entry.file)
  }
  expect(new Set(fileOfKey.values()).size).toBe(new Set(expected.map(e => e.prompt)).size)
  // No stray images: exactly the files of the entries' pictures (the original, and its WebP unless a placeholder).
  const images = [...outputs].filter(f => /\.(jpg|png|webp|avif|svg)$/.test(f) && !leftovers.includes(f))
  expect(images.sort()).toEqual([...variantFiles].sort())
  expect(variantFiles.size).toBe(fileOfKey.size * (placeholders ? 1 : 2))

  const text = await readFile(built.bundle, 'utf8')
  // The name, not the path: a relative base resolves from the chunk's own folder.
  for (const file of variantFiles) expect(text, `bundle mentions ${file}`).toContain(file.split('/').pop())
  const app = await runBundle(built.bundle, built.kind)
  const original = (rel: string) => readFile(p.path(rel), 'utf8').then(JSON.parse)
  expect(app.plain).toEqual(await original('src/scenes/intro.script.json'))
  for (const [name, script] of [['intro', 'src/scenes/intro.script.json'], ['outro', 'src/scenes/outro.script.json']] as const) {
    const data = app[name]
    const source = await original(script)
    expect(data.title).toBe(source.title)
    expect(data.visual_track.map((s: any) => s.text)).toEqual(source.visual_track.map((s: any) => s.text))
    for (const e of entries.filter(e => e.script === script)) {
      expect(at(data, e.pointer)).toEqual({ id: e.id, prompt: e.prompt, url: built.urlOf(e.file), width: e.width, height: e.height, placeholder: e.placeholder, ...pictureAsUrls(e, built.urlOf) })
    }
  }
  expect(Object.keys(app.scripts).sort()).toEqual([...new Set(expected.map(e => e.script))])
  for (const e of entries) {
    // model and cost are build-time facts the manifest does not have: session.test.ts checks their values.
    expect(app.scripts[e.script]).toContainEqual({ pointer: e.pointer, id: e.id, prompt: e.prompt, key: e.key, url: built.urlOf(e.file), width: e.width, height: e.height, placeholder: e.placeholder, model: expect.any(String), cost: placeholders ? null : expect.any(Number), ...pictureAsUrls(e, built.urlOf) })
  }
  return manifest
}

type Entry = Manifest['entries'][number]

/**
 * An entry's picture at the default settings: the original as the fallback `src`, one WebP at the image's own size
 * (emitted, a whole WebP of the bytes it says) and a blur under 1 KB; a placeholder: its SVG alone, a flat colour.
 */
async function checkPicture(built: Built, entry: Entry, originalBytes: number, placeholder: boolean): Promise<void> {
  const fallback = { format: placeholder ? 'svg' : entry.file.endsWith('.png') ? 'png' : 'jpeg', width: entry.width, height: entry.height, file: entry.file, bytes: originalBytes }
  expect(entry.src).toBe(entry.file)
  if (placeholder) {
    expect(entry.variants).toEqual([fallback])
    expect(entry.sources).toEqual([])
    expect(entry.srcset).toEqual({ svg: `${entry.file} ${entry.width}w` })
    expect(entry.blur).toEqual({ color: '#2c3a4f', dataURL: expect.stringMatching(/^data:image\/svg\+xml,/) })
    return
  }
  const [webp, last] = entry.variants
  expect(entry.variants).toHaveLength(2)
  expect(last).toEqual(fallback)
  expect(webp).toEqual({ format: 'webp', width: entry.width, height: entry.height, file: expect.stringMatching(/\.webp$/), bytes: expect.any(Number) })
  const bytes = await readFile(join(built.outDir, webp!.file))
  expect(bytes.toString('latin1', 8, 12)).toBe('WEBP')
  expect(bytes.length).toBe(webp!.bytes)
  expect(entry.srcset).toEqual({ webp: `${webp!.file} ${entry.width}w`, [fallback.format]: `${entry.file} ${entry.width}w` })
  expect(entry.sources).toEqual([{ type: 'image/webp', srcset: entry.srcset.webp }])
  expect(entry.blur!.color).toMatch(/^#[0-9a-f]{6}$/)
  expect(entry.blur!.dataURL).toMatch(/^data:image\/webp;base64,/)
  expect(entry.blur!.dataURL.length).toBeLessThan(1024)
}

/** An entry's picture fields as the bundle's modules give them: every file name as the URL the bundle resolves it to. */
export function pictureAsUrls(e: Entry, urlOf: (file: string) => string) {
  const srcset = (s: string) => s.split(', ').map(part => part.replace(/^(\S+)/, file => urlOf(file))).join(', ')
  return {
    src: urlOf(e.src),
    variants: e.variants.map(({ file, ...v }) => ({ ...v, url: urlOf(file) })),
    srcset: Object.fromEntries(Object.entries(e.srcset).map(([k, v]) => [k, srcset(v!)])),
    sources: e.sources.map(x => ({ ...x, srcset: srcset(x.srcset) })),
    blur: e.blur,
  }
}

/** The build's error message, whatever shape the bundler gives it. */
export async function buildError(build: Promise<unknown>): Promise<string> {
  const error = await build.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(error, 'the build fails').toBeDefined()
  const e = error as { message?: string; errors?: Array<{ text?: string; message?: string }> }
  return [e.message ?? String(error), ...(e.errors ?? []).map(x => x.text ?? x.message ?? '')].join('\n')
}

export interface Adapter {
  name: string
  /** Builds the project with the plugin and `options` into `outDir`; rejects with the bundler's error. */
  build(p: Project, options: FluxAssetsOptions, outDir: string): Promise<Built>
}

/** The checks every bundler passes. Each bundler's test file adds its own caveats. */
export function bundlerSuite(adapter: Adapter): void {
  it(`${adapter.name}: emits one valid image per unique prompt, the manifest, and ?flux URLs that point at them`, async () => {
    // Slow generations: bundling must wait for them (webpack's \`make\` hook runs buildStart beside the module build).
    const p = await createProject(adapter.name, { latencyMs: 150 })
    const built = await adapter.build(p, p.options(), p.path('dist'))
    await checkBuild(p, built)
    expect(p.fake.stats.generations).toBe(UNIQUE)
    expect(p.logs.infos.filter(m => /\d+ generated · \d+ cached/.test(m))).toHaveLength(1)
    expect(p.logs.errors).toEqual([])
  })

  it(`${adapter.name}: a rebuild on the same cache makes zero API calls and emits the same files`, async () => {
    const p = await createProject(adapter.name)
    const first = await readManifest((await adapter.build(p, p.options(), p.path('dist'))).outDir)
    const requests = p.fake.stats.generationRequests
    const built = await adapter.build(p, p.options(), p.path('dist2'))
    expect(p.fake.stats.generationRequests).toBe(requests)
    expect(await checkBuild(p, built)).toEqual(first)
  })

  it(`${adapter.name}: with no key, builds with SVG placeholders and says so`, async () => {
    const p = await createProject(adapter.name)
    const built = await adapter.build(p, p.options({ apiKey: undefined }), p.path('dist'))
    await checkBuild(p, built, { placeholders: true })
    expect(p.fake.stats.generationRequests).toBe(0)
    expect(p.logs.warnings.join('\n')).toMatch(/no API key/)
  })

  it(`${adapter.name}: bad script input fails the build naming the file and the JSON pointer`, async () => {
    const p = await createProject(adapter.name)
    await p.editScript('src/scenes/outro.script.json', s => (s.visual_track[0].assets.skyline = 42))
    const message = await buildError(adapter.build(p, p.options(), p.path('dist')))
    expect(message).toContain('src/scenes/outro.script.json: /visual_track/0/assets/skyline: expected a prompt string or { prompt }')
    expect(p.fake.stats.generationRequests).toBe(0)
  })

  it(`${adapter.name}: strict mode and a budget stop fail the build with the engine's message`, async () => {
    const p = await createProject(adapter.name)
    const strict = await buildError(adapter.build(p, p.options({ offline: true, strict: true }), p.path('dist')))
    expect(strict).toContain(`strict: ${UNIQUE} images are placeholders, and strict allows none:`)
    expect(strict).toContain('src/scenes/intro.script.json /visual_track/0/assets/avatar: offline: no API call made')
    const budget = await buildError(adapter.build(p, p.options({ maxNewImages: 2 }), p.path('dist')))
    expect(budget).toContain(`${UNIQUE} new images would be generated`)
    expect(budget).toContain('more than maxNewImages (2): nothing was generated')
    expect(p.fake.stats.generationRequests).toBe(0)
  })
}

/**
 * Watch mode: with a first build done (generations === UNIQUE), edits one prompt and waits for the rebuild that
 * `nextBuild()` (called before the edit) resolves on. Only that image is generated, only its manifest entry
 * changes, and the rebuilt bundle carries the new prompt and URL.
 */
export async function checkWatchEdit(p: Project, built: () => Promise<Built>, nextBuild: () => Promise<unknown>, change: { script: string; id: string; prompt: string }) {
  expect(p.fake.stats.generations).toBe(UNIQUE)
  const first = await built()
  const before = await readManifest(first.outDir)
  const rebuilt = nextBuild()
  await p.editScript(change.script, s => {
    for (const scene of s.visual_track) if (scene.assets && change.id in scene.assets) scene.assets[change.id] = change.prompt
  })
  await rebuilt
  expect(p.fake.stats.generations).toBe(UNIQUE + 1)
  const changed = (e: Manifest['entries'][number]) => e.script === change.script && e.id === change.id
  const old = before.entries.find(changed)!.file
  // Rollup-likes do not empty the output dir: the old image and its variants stay beside the new ones.
  const after = await checkBuild(p, await built(), { edited: change, leftovers: before.entries.find(changed)!.variants.map(v => v.file) })
  expect(after.entries.find(changed)!.file).not.toBe(old)
  expect(after.entries.filter(e => !changed(e))).toEqual(before.entries.filter(e => !changed(e)))
}

/** Rollup-style watchers (Rollup, Rolldown, Vite): resolves at the next successful build, rejects on an error. */
export function nextWatchBuild(watcher: { on(event: 'event', listener: (event: any) => void): unknown; off(event: 'event', listener: (event: any) => void): unknown }): Promise<void> {
  return new Promise((resolve, reject) => {
    // One edit can reach the watcher as two changes (a write, then its truncate or metadata), and the second starts
    // another rebuild that empties the output again: the build is done once an END is followed by a quiet moment.
    let quiet: ReturnType<typeof setTimeout> | undefined
    const onEvent = (event: any) => {
      if (event.code === 'BUNDLE_END') void event.result?.close?.()
      if (event.code === 'START') clearTimeout(quiet)
      if (event.code === 'ERROR') {
        watcher.off('event', onEvent)
        reject(event.error)
      }
      if (event.code === 'END') {
        clearTimeout(quiet)
        quiet = setTimeout(() => {
          watcher.off('event', onEvent)
          resolve()
        }, 300)
      }
    }
    watcher.on('event', onEvent)
  })
}
