import { existsSync } from 'node:fs'
import { readFile, stat } from 'node:fs/promises'
import { setTimeout as sleep } from 'node:timers/promises'
import { dirname, isAbsolute, relative, resolve } from 'node:path'
import pLimit from 'p-limit'
import { FLUX_QUERY, fluxModuleCode, type ModulePictures, modulePictures, pictureFields, virtualModuleCode } from './codegen'
import { devPicture } from './dev'
import { type BuildOutput, Emitter, type OutputImage, type Picture } from './emit'
import { createEngine, type Engine } from './engine'
import { FluxError, ScriptError } from './errors'
import { MANIFEST_FILE, manifestJson } from './manifest'
import { resolveOptions, transformOfRequest } from './options'
import { findScripts, parseScript, type ScannedScript, withoutBom } from './scan'
import { readTextWithStat, statOf } from './fs-read'
import { formatSummary } from './summary'
import { declarations, scriptType, writeDeclarations } from './typegen'
import type { AssetRecord, AssetRequest, CacheHit, FluxAssetsOptions, Logger, RunSummary, TransformSettings } from './types'
import { Variants, variantsAhead, type VariantSet, type VariantsHooks } from './variants'

/** Where `?flux` URLs point: the build's emitted files, or (Vite dev) the cache route under the server's base. */
export type Target = BuildOutput | { devBase: string }

/**
 * What the plugin keeps between hooks: the engine (one per plugin instance, so one connection pool and one lock
 * owner) and the state of the build in progress: its records, the entries behind them, its emitted images.
 * Emitting, the manifest and the generated code live in emit.ts, manifest.ts and codegen.ts. No bundler needed to test.
 */
export class BuildSession {
  engine: Engine | undefined
  /** Script files found by the last full scan, for watch mode. */
  files: string[] = []
  /** The counts behind the last full scan's summary line. */
  summary: RunSummary | undefined
  private records = new Map<string, AssetRecord>()
  /** The cache entries the engine verified for those records: emitting reads them without checking them twice. */
  private hits = new Map<string, CacheHit>()
  /** This build's emitted images (each build emits its own). */
  private emitter: Emitter | undefined
  /** Web variants of the cached images (variants.ts): one per plugin instance, so one encode pool. */
  private variantStage: Variants | undefined
  /**
   * Typed scripts: each script's declared type by file, with the size + mtime of the text it was made from. A full
   * scan hands them over as it parses (nothing is read twice); in dev a `?flux` load stats every script and reads
   * again only those that changed. Types only, not documents: memory stays at the size of the declarations.
   */
  private types = new Map<string, ScriptTypeEntry>()
  /** The current build's startBuild: loads wait for it, and fail with it when it failed. */
  private building: Promise<unknown> | undefined
  /** Aborted by cancel(): the bundler gave up on the build (watch mode closed), so its API calls stop. */
  private cancelled = new AbortController()

  constructor(
    private readonly user: FluxAssetsOptions,
    private readonly logger?: Logger,
    /** Tests: count the encodes of the variants stage. */
    private readonly variantHooks?: VariantsHooks,
  ) {}

  /** Creates the engine once the bundler has told us its root and output folder (and whether it is a dev server). */
  configure(root: string, outDir?: string, dev = false): Engine {
    if (!this.engine) {
      this.engine = createEngine(resolveOptions({ ...this.user, ...(this.logger && !this.user.logger ? { logger: this.logger } : {}) }, this.user.root ?? root, { outDir, dev }))
    }
    return this.engine
  }

  get root(): string {
    return this.need().options.root
  }

  /** The variants stage, over the engine's store. */
  get variants(): Variants {
    return (this.variantStage ??= new Variants(this.need().store, this.variantHooks))
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
    this.records.clear()
    this.emitter = this.newEmitter()
    // A new build looks in the cache again: a variant damaged since the last one is made again from its source.
    this.variants.reset()
    // The variants of an image start as soon as its verified entry exists (cached ones after plan, generated ones as
    // they are stored), while other images are still being generated; emit awaits the same work (Variants memoizes).
    // A build that fails stops what has not started and ends only once the rest has, so nothing of it runs on into
    // the next build (watch mode) or past cancel().
    const stop = new AbortController()
    try {
      const summary = await this.generateAll(stop.signal)
      const records = this.allRecords()
      await Promise.all(records.map(r => this.picture(r, out)))
      if (!out.deferManifest) out.emitFile({ fileName: MANIFEST_FILE }, await this.manifest(records, undefined, out))
      return summary
    } catch (error) {
      stop.abort(error)
      await this.variants.settled()
      throw error
    } finally {
      // The roots file generate() started writing, while the images were emitted: written before the build ends.
      await this.engine?.flush()
    }
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
    return devNotice(records, target) + fluxModuleCode(data, records, await this.pictures(records, target))
  }

  /** `virtual:flux-assets`. In dev no build ran first: the scripts are scanned (and generated) now. */
  async virtualModule(target: Target): Promise<string> {
    await this.building
    if ('devBase' in target) {
      const line = await this.generateAll()
      // The dev server says what it paid for, like a build does.
      if (this.summary!.generated || this.summary!.failed) this.need().options.logger.info(line)
    }
    const records = this.allRecords()
    // Dev: the entries generateAll() has just looked up (or stored) are not looked up a second time.
    return devNotice(records, target) + virtualModuleCode(records, await this.pictures(records, target, 'devBase' in target ? this.hits : undefined), this.hits, this.summary)
  }

  /**
   * Discovers every script and makes sure every image exists. Returns the summary line. With `variantsSignal` (a
   * build), each image's variants start as soon as its entry exists, stopped by that signal.
   */
  async generateAll(variantsSignal?: AbortSignal): Promise<string> {
    const engine = this.need()
    const typed = new Map<string, ScriptTypeEntry>()
    const onScript = engine.options.dts ? (s: ScannedScript) => void typed.set(s.file, { script: s.script, size: s.size, mtimeMs: s.mtimeMs, type: scriptType(s.data) }) : undefined
    const { files, requests } = await engine.scan(onScript)
    if (onScript) this.types = typed
    const result = await engine.generate(requests, this.signal(), variantsSignal && variantsAhead(this.variants, requests, r => this.transformOf(r), variantsSignal))
    // A full scan is the truth: assets removed from a script must not linger (dev, watch).
    this.files = files
    this.records.clear()
    for (const record of result.assets) this.records.set(recordId(record), record)
    this.hits = new Map(result.hits)
    this.summary = result.summary
    await this.writeTypes(false)
    return formatSummary(result.summary)
  }

  /** One script's records, generating what is missing (a `?flux` module outside `include`, or dev on demand). */
  async recordsFor(file: string, source?: string): Promise<{ data: unknown; records: AssetRecord[] }> {
    const engine = this.need()
    const script = relative(engine.options.root, file).split('\\').join('/')
    source ??= await readFile(file, 'utf8')
    let parsed = parseScript(source, script, engine.options)
    // Dev: an editor saving on every keystroke would buy every half-typed prompt. Before paying, wait until the
    // file has been still for a moment and read it again: only the prompt the user finished is bought.
    if (engine.options.dev && !parsed.issues.length && parsed.requests.some(r => this.records.get(recordId(r))?.key !== r.key)) {
      const settled = await settle(file)
      if (settled !== undefined && settled !== source) parsed = parseScript((source = settled), script, engine.options)
    }
    const { data, requests, issues, notes } = parsed
    if (issues.length) throw new ScriptError(issues)
    engine.note(notes)
    const missing = requests.filter(r => this.records.get(recordId(r))?.key !== r.key)
    const result = missing.length ? await engine.generate(missing, this.signal()) : undefined
    if (engine.options.dev && result && (result.summary.generated || result.summary.failed)) engine.options.logger.info(`${script}: ${formatSummary(result.summary)}`)
    for (const [key, hit] of result?.hits ?? []) this.hits.set(key, hit)
    const fresh = new Map((result?.assets ?? []).map(a => [a.pointer, a]))
    const records = requests.map(r => fresh.get(r.pointer) ?? this.records.get(recordId(r))!)
    // The file is the truth for its own assets: drop the ones it no longer has.
    const current = new Set(records.map(recordId))
    for (const [id, record] of this.records) if (record.script === script && !current.has(id)) this.records.delete(id)
    for (const record of records) this.records.set(recordId(record), record)
    // Dev: an edited script's own type follows it (a full build writes them all in generateAll).
    if (engine.options.dev) await this.writeTypes(true)
    return { data, records }
  }

  /**
   * The typed-script declarations of every script found (typegen.ts), unless `dts: false`; written only when their
   * text changes. `check`: a script may have changed since it was typed (dev), so each is stat'ed and the changed
   * ones read again (at most READ_LIMIT at once).
   */
  private async writeTypes(check: boolean): Promise<void> {
    const { options } = this.need()
    if (!options.dts) return
    // Dev before any full scan (only ?flux modules loaded so far): find them, so every script is typed.
    const files = this.files.length ? this.files : await findScripts(options)
    if (check) {
      const limit = pLimit(READ_LIMIT)
      await Promise.all(files.map(file => limit(() => this.retype(file))))
      const found = new Set(files)
      for (const file of this.types.keys()) if (!found.has(file)) this.types.delete(file)
    }
    const scripts = files.map(file => this.types.get(file)).filter(t => t !== undefined)
    await writeDeclarations(options.root, declarations(scripts))
  }

  /** One script's type again if its size or mtime changed since it was typed; one that cannot be read or parsed has none. */
  private async retype(file: string): Promise<void> {
    const known = this.types.get(file)
    const info = known && (await statOf(file).catch(() => undefined))
    if (known && info && info.size === known.size && info.mtimeMs === known.mtimeMs) return
    const read = await readTextWithStat(file).catch(() => undefined)
    let data: unknown
    try {
      data = read && (JSON.parse(withoutBom(read.text)) as unknown)
    } catch {
      data = undefined
    }
    if (!read || data === undefined) return void this.types.delete(file)
    this.types.set(file, { script: relative(this.root, file).split('\\').join('/'), size: read.size, mtimeMs: read.mtimeMs, type: scriptType(data) })
  }

  /** Every record of the last full build, in script order. */
  /** The entry of a key as this session last found or stored it (unchecked since: read() checks it). */
  knownHit(key: string): CacheHit | undefined {
    return this.hits.get(key)
  }

  allRecords(): AssetRecord[] {
    return [...this.records.values()]
  }

  /** This build's emitter; an entry found damaged while emitting is made again through the engine (see repair). */
  private newEmitter(): Emitter {
    return new Emitter(this.need().store, record => this.repair(record))
  }

  /**
   * A cached image damaged on disk, found while emitting: generated again (once, through the engine's rules: budget,
   * offline, no key) or a placeholder, with a warning; every record of its key follows, so the manifest and `?flux`
   * modules agree with what ships. Never a failed build.
   */
  private async repair(record: AssetRecord): Promise<{ record: AssetRecord; hit?: CacheHit }> {
    const engine = this.need()
    engine.options.logger.warn(`${record.script}: ${record.id}: the cached image is damaged on disk (its bytes no longer match their sha256): making it again`)
    const result = await engine.generate([record], this.signal())
    const fresh = result.assets[0]!
    const hit = result.hits.get(record.key)
    if (hit) this.hits.set(record.key, hit)
    else this.hits.delete(record.key)
    const { file, width, height, placeholder, error } = fresh
    for (const [id, r] of this.records) if (r.key === record.key) this.records.set(id, { ...r, file, width, height, placeholder, error })
    return { record: fresh, hit }
  }

  /** A record's variant settings: its script's over the global ones. */
  transformOf(record: Pick<AssetRequest, 'transform'>): TransformSettings {
    return transformOfRequest(record, this.need().options.transform)
  }

  /** A record's picture, emitted (once per build): its image, its variants (cached or made now), its blur. */
  private async picture(record: AssetRecord, out: BuildOutput): Promise<Picture> {
    this.emitter ??= this.newEmitter()
    let hit = record.file ? this.hits.get(record.key) : undefined
    if (record.file && !hit) hit = await this.need().store.get(record.key)
    const set: VariantSet = hit ? await this.variants.of(hit, this.transformOf(record)) : { variants: [], blur: null }
    return this.emitter.picture(record, out, set, hit, async variant => (await this.variants.one(hit!, variant)).hit)
  }

  /**
   * The picture of each record, in order, as JS expressions (the bundler's URLs, or the dev server's). `fresh`: dev,
   * entries found by this same load, used as they are.
   */
  private async pictures(records: AssetRecord[], target: Target, fresh?: ReadonlyMap<string, CacheHit>): Promise<ModulePictures> {
    const url = (image: OutputImage) => ('devBase' in target ? JSON.stringify(image.fileName) : target.url(image))
    const pictures = await Promise.all(
      records.map(r => ('devBase' in target ? devPicture(this.need().store, this.variants, r, this.transformOf(r), target.devBase, r.file ? fresh?.get(r.key) : undefined) : this.picture(r, target))),
    )
    return modulePictures(pictures, url)
  }

  /**
   * `flux-assets.json` of this build's records (every one emitted). `fileOf` gives an image's final file name where
   * the bundler chose it (Rollup-likes, after the build's start); default: the name we emitted it at.
   */
  async manifest(records: AssetRecord[], fileOf: (image: OutputImage) => string = image => image.fileName, out?: BuildOutput): Promise<string> {
    this.emitter ??= this.newEmitter()
    const target = out ?? NO_OUTPUT
    const pictures = await Promise.all(records.map(r => this.picture(r, target)))
    const files = new Map(pictures.map((p, i) => [records[i]!.key, fileOf(p.src)]))
    return manifestJson(records, files, pictures.map(p => pictureFields(p, fileOf, parts => parts.map(x => x).join(''))))
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

/** For the manifest, whose records were all emitted by the build's start: the emitter's memo answers, nothing is emitted. */
const NO_OUTPUT: BuildOutput = {
  assetsDir: '',
  emitFile: () => {
    throw new FluxError('FLUX_NOT_EMITTED', 'flux-assets: the manifest named an image the build did not emit')
  },
  url: () => '',
}

/** A script's declared type (typegen.ts) and the size + mtime of the text it was made from. */
interface ScriptTypeEntry {
  script: string
  size: number
  mtimeMs: number
  type: string
}

/** Scripts read at once when their types are checked (dev): bounded, as the scan's reads are (EMFILE). */
const READ_LIMIT = 32

/** How long a script must be still (no write) before the dev server pays for its new prompts. */
export const SETTLE_MS = 400

/** Waits until `file` has not been written for SETTLE_MS (at most a few rounds), then returns its text. */
async function settle(file: string): Promise<string | undefined> {
  for (let round = 0; round < 20; round++) {
    const info = await stat(file).catch(() => undefined)
    if (!info) return undefined
    const quiet = Date.now() - info.mtimeMs
    if (quiet >= SETTLE_MS) return readFile(file, 'utf8').catch(() => undefined)
    await sleep(SETTLE_MS - quiet)
  }
  return readFile(file, 'utf8').catch(() => undefined)
}

/** Dev server: why images are placeholders, in the browser console too (the terminal has it already). */
function devNotice(records: AssetRecord[], target: Target): string {
  if (!('devBase' in target)) return ''
  const reasons = [...new Set(records.filter(r => r.placeholder && r.error).map(r => r.error!))]
  return reasons.map(reason => `console.warn(${JSON.stringify(`[flux-assets] placeholder: ${reason}`)})\n`).join('')
}

function recordId(r: Pick<AssetRecord, 'script' | 'pointer'>): string {
  return `${r.script}#${r.pointer}`
}
