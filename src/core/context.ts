import { readFile } from 'node:fs/promises'
import { relative } from 'node:path'
import { FluxError, ScriptError } from './errors'
import { createEngine, type Engine } from './generate'
import { placeholderSvg } from './image'
import { sha256 } from './key'
import { resolveOptions } from './options'
import { formatSummary } from './price'
import { parseScript } from './scan'
import type { AssetRecord, FluxAssetsOptions, Logger } from './types'

/** One image as the bundle ships it. */
export interface OutputImage {
  key: string
  /** Path relative to the output dir, content-hashed: `assets/<id-slug>-<hash8>.<ext>`. */
  fileName: string
  source: Uint8Array | string
}

/** The JS expression that evaluates to an image's URL in the bundle: per bundler (Vite base, webpack publicPath). */
export type UrlExpression = (image: OutputImage) => string

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
  private records = new Map<string, AssetRecord>()
  private images = new Map<string, OutputImage>()

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

  /** Discovers every script and makes sure every image exists. Returns the summary line. */
  async generateAll(): Promise<string> {
    const engine = this.need()
    const { files, requests } = await engine.scan()
    this.files = files
    const result = await engine.generate(requests)
    for (const record of result.assets) this.records.set(`${record.script}#${record.pointer}`, record)
    return formatSummary(result.summary)
  }

  /** One script's records, generating what is missing (a `?flux` module outside `include`, or dev on demand). */
  async recordsFor(file: string, source?: string): Promise<{ data: unknown; records: AssetRecord[] }> {
    const engine = this.need()
    const script = relative(engine.options.root, file).split('\\').join('/')
    source ??= await readFile(file, 'utf8')
    const { requests, issues } = parseScript(source, script, engine.options)
    if (issues.length) throw new ScriptError(issues)
    const missing = requests.filter(r => !this.records.has(`${r.script}#${r.pointer}`) || this.records.get(`${r.script}#${r.pointer}`)!.key !== r.key)
    if (missing.length) for (const record of (await engine.generate(missing)).assets) this.records.set(`${record.script}#${record.pointer}`, record)
    return { data: JSON.parse(source.replace(/^\uFEFF/, '')), records: requests.map(r => this.records.get(`${r.script}#${r.pointer}`)!) }
  }

  /** Every record of the last full build, in script order. */
  allRecords(): AssetRecord[] {
    return [...this.records.values()]
  }

  /**
   * The shippable image of a record, once per key: the cached bytes, verified once more against their sha256, or a
   * placeholder SVG. `emit` is called only the first time a key is seen in this build.
   */
  async image(record: AssetRecord, assetsDir: string, emit?: (image: OutputImage) => void): Promise<OutputImage> {
    const known = this.images.get(record.key)
    if (known) return known
    let source: Uint8Array | string
    let ext: string
    const hit = record.file ? await this.need().cache.get(record.key) : undefined
    const bytes = hit && (await this.need().cache.read(hit))
    if (bytes) {
      source = bytes
      ext = hit!.record.ext
    } else {
      if (record.file) throw new FluxError('FLUX_CACHE_CHANGED', `${record.script}: ${record.id}: the cached image changed on disk during the build; run the build again`)
      source = placeholderSvg(record.id, record.prompt, record.width, record.height, record.error ?? 'not generated')
      ext = 'svg'
    }
    const dir = assetsDir.replace(/^\/+|\/+$/g, '')
    const image = { key: record.key, fileName: `${dir ? `${dir}/` : ''}${slug(record.id)}-${sha256(source).slice(0, 8)}.${ext}`, source }
    this.images.set(record.key, image)
    emit?.(image)
    return image
  }

  manifest(records: AssetRecord[]): string {
    const manifest: Manifest = {
      version: 1,
      entries: records.map(r => ({
        script: r.script,
        pointer: r.pointer,
        id: r.id,
        prompt: r.prompt,
        key: r.key,
        file: this.images.get(r.key)!.fileName,
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

  private need(): Engine {
    if (!this.engine) throw new FluxError('FLUX_NOT_CONFIGURED', 'flux-assets: the plugin was used before the bundler configured it')
    return this.engine
  }
}

/** The `?flux` module: the script with each asset value replaced by `{ id, prompt, url, width, height, placeholder }`. */
export function fluxModuleCode(data: unknown, records: AssetRecord[], urls: string[]): string {
  const tokens = records.map((_, i) => `__FLUX_URL_${i}_${Math.random().toString(36).slice(2)}__`)
  records.forEach((r, i) => setAt(data, r.pointer, { id: r.id, prompt: r.prompt, url: tokens[i], width: r.width, height: r.height, placeholder: r.placeholder }))
  let code = JSON.stringify(data, null, 2)
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

function setAt(data: unknown, pointer: string, value: unknown): void {
  const parts = pointer.split('/').slice(1).map(p => p.replace(/~1/g, '/').replace(/~0/g, '~'))
  let node = data as Record<string, unknown>
  for (const part of parts.slice(0, -1)) node = node[part] as Record<string, unknown>
  // defineProperty: an asset id such as "__proto__" is an own key like any other.
  Object.defineProperty(node, parts.at(-1)!, { value, enumerable: true, writable: true, configurable: true })
}
