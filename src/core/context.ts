import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { dirname, isAbsolute, relative, resolve } from 'node:path'
import { devImageUrl } from './dev'
import { FluxError, ScriptError } from './errors'
import { createEngine, type Engine } from './generate'
import { placeholderSvg } from './image'
import { sha256 } from './key'
import { resolveOptions } from './options'
import { formatSummary } from './price'
import { parseScript } from './scan'
import type { AssetRecord, CacheHit, FluxAssetsOptions, Logger, RunSummary } from './types'

/** One image as the bundle ships it. */
export interface OutputImage {
  key: string
  /** Path relative to the output dir, content-hashed: `assets/<id-slug>-<hash8>.<ext>`. */
  fileName: string
  /** What the bundler's emitFile returned (Rollup-like bundlers: a reference for `import.meta.ROLLUP_FILE_URL_`). */
  ref?: string
}

/** How a build ships files: the bundler's own emitFile and asset URLs (Vite base, webpack publicPath). */
export interface BuildOutput {
  /** Folder of emitted images, relative to the output dir. */
  assetsDir: string
  /** Emits a file at `fileName` (relative to the output dir); returns the bundler's reference, if it has one. */
  emitFile(fileName: string, source: string | Uint8Array): string | undefined
  /** The JS expression that evaluates to an emitted image's URL in the bundle. */
  url(image: OutputImage): string
}

/** Where `?flux` URLs point: the build's emitted files, or (Vite dev) the cache route under the server's base. */
export type Target = BuildOutput | { devBase: string }

export interface Manifest {
  version: 1
  entries: Array<Pick<AssetRecord, 'script' | 'pointer' | 'id' | 'prompt' | 'key' | 'width' | 'height' | 'placeholder'> & { file: string }>
}

export const MANIFEST_FILE = 'flux-assets.json'
export const VIRTUAL_ID = 'virtual:flux-assets'
export const FLUX_QUERY = /\?flux$/

/** `[a-z0-9-]` only, never empty, at most 40 characters: an id is a label, never a path. */
export function slug(id: string): string {
  const s = id
    .normalize('NFKD')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 40)
    .replace(/-+$/, '')
  return s || 'asset'
}

/**
 * What the plugin keeps between hooks: the engine (one per plugin instance, so one connection pool and one lock
 * owner) and, per build, the records and the images already emitted. Nothing here needs a bundler to test.
 */
export class FluxContext {
  engine: Engine | undefined
  /** Script files found by the last full scan, for watch mode. */
  files: string[] = []
  /** The counts behind the last full scan's summary line. */
  summary: RunSummary | undefined
  private records = new Map<string, AssetRecord>()
  /** The cache entries the engine verified for those records: emitting reads them without checking them twice. */
  private hits = new Map<string, CacheHit>()
  /** This build's emitted images by key: a promise, so concurrent callers share one emit. */
  private images = new Map<string, Promise<OutputImage>>()
  /** The current build's startBuild: loads wait for it, and fail with it when it failed. */
  private building: Promise<unknown> | undefined
  /** Aborted by cancel(): the bundler gave up on the build (watch mode closed), so its API calls stop. */
  private cancelled = new AbortController()

  constructor(
    private readonly user: FluxAssetsOptions,
    private readonly logger?: Logger,
  ) {}

  /** Creates the engine once the bundler has told us its root and output folder. */
  configure(root: string, outDir?: string): Engine {
    if (!this.engine) {
      this.engine = createEngine(resolveOptions({ ...this.user, ...(this.logger && !this.user.logger ? { logger: this.logger } : {}) }, this.user.root ?? root, { outDir }))
    }
    return this.engine
  }

  get root(): string {
    return this.need().options.root
  }

  /** Start of a build: forget what the last build emitted (each build emits its own assets). */
  reset(): void {
    this.records.clear()
    this.images.clear()
  }

  /**
   * A whole build's work, before bundling: discover every script, generate what is missing, emit each unique image
   * once and `flux-assets.json`. Returns the summary line.
   */
  startBuild(out: BuildOutput): Promise<string> {
    const build = this.runBuild(out)
    // webpack and Rspack start building modules while buildStart runs (\`make\` is a parallel hook): loads wait.
    // esbuild goes on loading modules after a failed onStart: those loads must fail too, never generate (and pay)
    // for a build that already failed (a budget stop, bad input). Marked handled: a bundler may never load.
    this.building = build
    build.catch(() => {})
    return build
  }

  private async runBuild(out: BuildOutput): Promise<string> {
    this.reset()
    const summary = await this.generateAll()
    const records = this.allRecords()
    await Promise.all(records.map(r => this.image(r, out)))
    out.emitFile(MANIFEST_FILE, await this.manifest(records))
    return summary
  }

  /** The id a `?flux` import resolves to: the script's absolute path plus `?flux`; `undefined` for anything else. */
  resolveId(id: string, importer?: string): string | undefined {
    if (!FLUX_QUERY.test(id)) return undefined
    const path = id.replace(FLUX_QUERY, '')
    let file = isAbsolute(path) ? path : resolve(importer ? dirname(importer) : this.root, path)
    // Vite asks for root-relative URLs (`/src/intro.script.json?flux`): absolute in form, relative to the root in fact.
    if (path.startsWith('/') && !existsSync(file)) file = resolve(this.root, `.${path}`)
    return `${file}?flux`
  }

  /** The `?flux` module of a script file: the script with each asset value replaced by its image. */
  async fluxModule(file: string, target: Target): Promise<string> {
    await this.building
    const { data, records } = await this.recordsFor(file)
    return fluxModuleCode(data, records, await this.urls(records, target))
  }

  /** `virtual:flux-assets`. In dev no build ran first: the scripts are scanned (and generated) now. */
  async virtualModule(target: Target): Promise<string> {
    await this.building
    if ('devBase' in target) await this.generateAll()
    const records = this.allRecords()
    return virtualModuleCode(records, await this.urls(records, target))
  }

  /** Discovers every script and makes sure every image exists. Returns the summary line. */
  async generateAll(): Promise<string> {
    const engine = this.need()
    const { files, requests } = await engine.scan()
    const result = await engine.generate(requests, this.signal())
    // A full scan is the truth: assets removed from a script must not linger (dev, watch).
    this.files = files
    this.records.clear()
    for (const record of result.assets) this.records.set(recordId(record), record)
    this.hits = new Map(result.hits)
    this.summary = result.summary
    return formatSummary(result.summary)
  }

  /** One script's records, generating what is missing (a `?flux` module outside `include`, or dev on demand). */
  async recordsFor(file: string, source?: string): Promise<{ data: unknown; records: AssetRecord[] }> {
    const engine = this.need()
    const script = relative(engine.options.root, file).split('\\').join('/')
    source ??= await readFile(file, 'utf8')
    const { requests, issues } = parseScript(source, script, engine.options)
    if (issues.length) throw new ScriptError(issues)
    const missing = requests.filter(r => this.records.get(recordId(r))?.key !== r.key)
    const result = missing.length ? await engine.generate(missing, this.signal()) : undefined
    for (const [key, hit] of result?.hits ?? []) this.hits.set(key, hit)
    const fresh = new Map((result?.assets ?? []).map(a => [a.pointer, a]))
    const records = requests.map(r => fresh.get(r.pointer) ?? this.records.get(recordId(r))!)
    // The file is the truth for its own assets: drop the ones it no longer has.
    const current = new Set(records.map(recordId))
    for (const [id, record] of this.records) if (record.script === script && !current.has(id)) this.records.delete(id)
    for (const record of records) this.records.set(recordId(record), record)
    return { data: JSON.parse(source.replace(/^\uFEFF/, '')), records }
  }

  /** Every record of the last full build, in script order. */
  allRecords(): AssetRecord[] {
    return [...this.records.values()]
  }

  /**
   * The shippable image of a record, emitted once per key and build: the cached bytes, verified once more against
   * their sha256, or a placeholder SVG.
   */
  image(record: AssetRecord, out: BuildOutput): Promise<OutputImage> {
    let image = this.images.get(record.key)
    if (!image) this.images.set(record.key, (image = this.emitImage(record, out)))
    return image
  }

  private async emitImage(record: AssetRecord, out: BuildOutput): Promise<OutputImage> {
    let source: Uint8Array | string
    let ext: string
    const hit = record.file ? (this.hits.get(record.key) ?? (await this.need().cache.get(record.key))) : undefined
    // read() checks the bytes against the record's size and sha256 once more: a broken file is never shipped.
    const bytes = hit && (await this.need().cache.read(hit))
    if (bytes) {
      source = bytes
      ext = hit!.record.ext
    } else {
      if (record.file) throw new FluxError('FLUX_CACHE_CHANGED', `${record.script}: ${record.id}: the cached image changed on disk during the build; run the build again`)
      source = placeholderSvg(record.id, record.prompt, record.width, record.height, record.error ?? 'not generated')
      ext = 'svg'
    }
    const dir = out.assetsDir.replace(/^\/+|\/+$/g, '')
    // A cached image's hash is its record's: read() has just checked the bytes against it.
    const hash = bytes ? hit!.record.sha256 : sha256(source)
    const fileName = `${dir ? `${dir}/` : ''}${slug(record.id)}-${hash.slice(0, 8)}.${ext}`
    // The bytes are the bundler's from here: keeping them (for the rest of the build) would hold every image twice.
    return { key: record.key, fileName, ref: out.emitFile(fileName, source) }
  }

  /** The URL expression of each record, in order. */
  private urls(records: AssetRecord[], target: Target): Promise<string[]> {
    if ('devBase' in target) return Promise.all(records.map(r => devImageUrl(this.need().cache, r, target.devBase)))
    return Promise.all(records.map(async r => target.url(await this.image(r, target))))
  }

  /** `flux-assets.json`: one entry per asset occurrence, `file` relative to the output dir. */
  async manifest(records: AssetRecord[]): Promise<string> {
    const files = new Map(await Promise.all(records.map(async r => [r.key, (await this.images.get(r.key)!).fileName] as const)))
    const manifest: Manifest = {
      version: 1,
      entries: records.map(r => ({
        script: r.script,
        pointer: r.pointer,
        id: r.id,
        prompt: r.prompt,
        key: r.key,
        file: files.get(r.key)!,
        width: r.width,
        height: r.height,
        placeholder: r.placeholder,
      })),
    }
    return `${JSON.stringify(manifest, null, 2)}\n`
  }

  async close(): Promise<void> {
    await this.engine?.close()
  }

  /**
   * Aborts the generation in progress, if any: requests in flight are cut off, finished images stay cached, nothing
   * is left half written. Later builds (a restarted watch) start afresh.
   */
  cancel(reason = 'the build was cancelled'): void {
    this.cancelled.abort(new FluxError('FLUX_ABORTED', `flux-assets: ${reason}`))
    this.cancelled = new AbortController()
  }

  /** The signal for this build's generation: the user's `signal` option or cancel(), whichever comes first. */
  private signal(): AbortSignal {
    const user = this.engine?.options.signal
    return user ? AbortSignal.any([user, this.cancelled.signal]) : this.cancelled.signal
  }

  private need(): Engine {
    if (!this.engine) throw new FluxError('FLUX_NOT_CONFIGURED', 'flux-assets: the plugin was used before the bundler configured it')
    return this.engine
  }
}

/** The `?flux` module: the script with each asset value replaced by `{ id, prompt, url, width, height, placeholder }`. */
export function fluxModuleCode(data: unknown, records: AssetRecord[], urls: string[]): string {
  const tokens = records.map((_, i) => `__FLUX_URL_${i}_${Math.random().toString(36).slice(2)}__`)
  records.forEach((r, i) => setAt(data, r.pointer, { id: r.id, prompt: r.prompt, url: tokens[i], width: r.width, height: r.height, placeholder: r.placeholder }))
  // JSON is not quite JS: in an object literal `"__proto__": x` sets the prototype instead of a key. A computed key
  // defines an own property. Pretty-printed, a key is the only place `"__proto__":` can start a line.
  let code = JSON.stringify(data, null, 2).replace(/^(\s*)"__proto__":/gm, '$1["__proto__"]:')
  tokens.forEach((token, i) => (code = code.replace(JSON.stringify(token), () => urls[i]!)))
  return `export default ${code}\n`
}

/** `virtual:flux-assets`: the manifest entries grouped by script, each with its `url`. */
export function virtualModuleCode(records: AssetRecord[], urls: string[]): string {
  const byScript = new Map<string, string[]>()
  records.forEach((r, i) => {
    const entry = `{ pointer: ${JSON.stringify(r.pointer)}, id: ${JSON.stringify(r.id)}, prompt: ${JSON.stringify(r.prompt)}, key: ${JSON.stringify(r.key)}, url: ${urls[i]}, width: ${r.width}, height: ${r.height}, placeholder: ${r.placeholder} }`
    byScript.set(r.script, [...(byScript.get(r.script) ?? []), entry])
  })
  const body = [...byScript].map(([script, entries]) => `  ${JSON.stringify(script)}: [\n    ${entries.join(',\n    ')}\n  ]`).join(',\n')
  return `const scripts = {\n${body}\n}\nexport default scripts\n`
}

function recordId(r: Pick<AssetRecord, 'script' | 'pointer'>): string {
  return `${r.script}#${r.pointer}`
}

function setAt(data: unknown, pointer: string, value: unknown): void {
  const parts = pointer.split('/').slice(1).map(p => p.replace(/~1/g, '/').replace(/~0/g, '~'))
  let node = data as Record<string, unknown>
  for (const part of parts.slice(0, -1)) node = node[part] as Record<string, unknown>
  // defineProperty: an asset id such as "__proto__" is an own key like any other.
  Object.defineProperty(node, parts.at(-1)!, { value, enumerable: true, writable: true, configurable: true })
}
