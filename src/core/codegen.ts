import type { OutputImage, Picture, PictureFile } from './emit'
import type { AssetRecord, CacheHit, RunSummary } from './types'
import type { Blur } from './variants'

export const VIRTUAL_ID = 'virtual:flux-assets'
export const FLUX_QUERY = /\?flux$/

/** A JS expression (an emitted file's URL as the bundler resolves it), as opposed to a string to quote. */
export interface Expr {
  js: string
}

/** What markup needs of one record, with each file's URL as `U`: a JS expression in modules, a file name in the manifest. */
export interface PictureFields<U> {
  /** The fallback: the original image (or the placeholder SVG), for `<img src>`. */
  src: U
  /** Every file: the web variants, then the fallback. */
  variants: Array<{ format: PictureFile['format']; width: number; height: number; url: U; bytes: number }>
  /** `url 480w, url 960w` per format, the fallback's format included. */
  srcset: Partial<Record<PictureFile['format'], U>>
  /** `<source>` elements for `<picture>`, best format first (AVIF, then WebP); the fallback is the `<img>`. */
  sources: Array<{ type: string; srcset: U }>
  /** `null` when `blur: false` or `formats: []`. */
  blur: Blur | null
}

const SOURCE_ORDER = ['avif', 'webp'] as const
const TYPES: Record<string, string> = { avif: 'image/avif', webp: 'image/webp' }

/** A picture's markup fields; `join` concatenates URLs and text into one `U` (a srcset). */
export function pictureFields<U>(p: Picture, url: (image: OutputImage) => U, join: (parts: Array<U | string>) => U): PictureFields<U> {
  const srcset: Partial<Record<PictureFile['format'], U>> = {}
  for (const format of new Set(p.files.map(f => f.format))) {
    const files = p.files.filter(f => f.format === format).sort((a, b) => a.width - b.width)
    srcset[format] = join(files.flatMap((f, i) => [...(i ? [', '] : []), url(f.image), ` ${f.width}w`]))
  }
  return {
    src: url(p.src),
    variants: p.files.map(f => ({ format: f.format, width: f.width, height: f.height, url: url(f.image), bytes: f.image.bytes })),
    srcset,
    sources: SOURCE_ORDER.filter(f => p.files.some(x => x.format === f && x.image !== p.src)).map(f => ({ type: TYPES[f]!, srcset: srcset[f]! })),
    blur: p.blur,
  }
}

/** A module's pictures as JS: each field an expression over `consts`, the module's URL constants. */
export interface ModulePictures {
  fields: Array<PictureFields<Expr>>
  /** `const u0 = <the bundler's URL expression>` for each distinct image, to put before the code using them. */
  consts: string
}

/**
 * The pictures of one module, each URL the bundler's expression written once as a const and each srcset a
 * concatenation of those names. Once: Vite 8 resolves every `import.meta.ROLLUP_FILE_URL_` occurrence through a JS
 * hook (its resolveFileUrl), and a picture names its image in `url`, `src`, `variants` and `srcset` (#16).
 */
export function modulePictures(pictures: Picture[], url: (image: OutputImage) => string): ModulePictures {
  const names = new Map<string, string>()
  const name = (image: OutputImage): Expr => {
    const js = url(image)
    let n = names.get(js)
    if (n === undefined) names.set(js, (n = `u${names.size}`))
    return { js: n }
  }
  const join = (parts: Array<Expr | string>): Expr => ({ js: parts.map(x => (typeof x === 'string' ? JSON.stringify(x) : x.js)).join(' + ') })
  const fields = pictures.map(p => pictureFields<Expr>(p, name, join))
  return { fields, consts: [...names].map(([js, n]) => `const ${n} = ${js}\n`).join('') }
}

/** A value as JS: an Expr as its code, everything else as JSON. */
function toJs(value: unknown): string {
  if (isExpr(value)) return value.js
  if (Array.isArray(value)) return `[${value.map(toJs).join(', ')}]`
  if (value && typeof value === 'object') return `{ ${Object.entries(value).map(([k, v]) => `${JSON.stringify(k)}: ${toJs(v)}`).join(', ')} }`
  return JSON.stringify(value)
}

/**
 * The `?flux` module: the script with each asset value replaced by `{ id, prompt, url, width, height, placeholder }`
 * and its picture: `src`, `variants`, `srcset`, `sources`, `blur` (PictureFields).
 */
export function fluxModuleCode(data: unknown, records: AssetRecord[], { fields: pictures, consts }: ModulePictures): string {
  const tokens = records.map((_, i) => `__FLUX_ASSET_${i}_${Math.random().toString(36).slice(2)}__`)
  records.forEach((r, i) => setAt(data, r.pointer, tokens[i]))
  // JSON is not quite JS: in an object literal `"__proto__": x` sets the prototype instead of a key. A computed key
  // defines an own property. Pretty-printed, a key is the only place `"__proto__":` can start a line.
  let code = JSON.stringify(data, null, 2).replace(/^(\s*)"__proto__":/gm, '$1["__proto__"]:')
  records.forEach((r, i) => {
    const p = pictures[i]!
    const value = { id: r.id, prompt: r.prompt, url: p.src, width: r.width, height: r.height, placeholder: r.placeholder, ...p }
    code = code.replace(JSON.stringify(tokens[i]), () => toJs(value))
  })
  return `${consts}export default ${code}\n`
}

/**
 * `virtual:flux-assets`: the manifest entries grouped by script, each with its `url`, its `model` and its `cost` (the
 * cache record's estimate, `null` when unknown or a placeholder); and, as `summary`, the build's counts (summarize()'s).
 *
 * The entries are one JSON string, parsed where the module runs, with each URL expression (the bundler's, or a
 * srcset made of them) in an array of code beside it and `{"$js": i}` in its place: the bundler parses, transforms
 * and minifies one string literal instead of an object literal per image (300 images: 177 KB of object literals cost
 * the build ~15 MB of peak memory, bench scenario 4), and a browser parses JSON faster than the same literal as JS.
 * Vite's own JSON plugin does the same above 10 kB (`json.stringify: 'auto'`). Only our own fields are in there, so no
 * user data can look like `{"$js": i}`.
 */
export function virtualModuleCode(records: AssetRecord[], { fields: pictures, consts }: ModulePictures, hits: ReadonlyMap<string, CacheHit> = new Map(), summary?: RunSummary): string {
  const code: string[] = []
  const index = new Map<string, number>()
  const ref = (expr: Expr) => {
    let i = index.get(expr.js)
    if (i === undefined) index.set(expr.js, (i = code.push(expr.js) - 1))
    return { $js: i }
  }
  const scripts: Record<string, unknown[]> = {}
  records.forEach((r, i) => {
    const cost = hits.get(r.key)?.record.cost
    const p = pictures[i]!
    const entry = { pointer: r.pointer, id: r.id, prompt: r.prompt, key: r.key, url: p.src, width: r.width, height: r.height, placeholder: r.placeholder, model: r.settings.model, cost: !r.placeholder && typeof cost === 'number' ? cost : null, ...p }
    // defineProperty: a script path such as "__proto__" is a key like any other (JSON.parse makes it one, too).
    if (!Object.hasOwn(scripts, r.script)) Object.defineProperty(scripts, r.script, { value: [], enumerable: true, writable: true, configurable: true })
    scripts[r.script]!.push(entry)
  })
  const json = JSON.stringify(scripts, (_, value: unknown) => (isExpr(value) ? ref(value) : value))
  const revive = `(_, v) => (v !== null && typeof v === 'object' && '$js' in v ? x[v.$js] : v)`
  return `${consts}const x = [${code.join(', ')}]\nconst scripts = JSON.parse(${JSON.stringify(json)}, ${revive})\nexport default scripts\nexport const summary = ${JSON.stringify(summary ?? null)}\n`
}

/** An Expr as `pictureFields` makes them: an object with `js` alone. */
function isExpr(value: unknown): value is Expr {
  return typeof value === 'object' && value !== null && 'js' in value && Object.keys(value).length === 1
}

function setAt(data: unknown, pointer: string, value: unknown): void {
  const parts = pointer.split('/').slice(1).map(p => p.replace(/~1/g, '/').replace(/~0/g, '~'))
  let node = data as Record<string, unknown>
  for (const part of parts.slice(0, -1)) node = node[part] as Record<string, unknown>
  // defineProperty: an asset id such as "__proto__" is an own key like any other.
  Object.defineProperty(node, parts.at(-1)!, { value, enumerable: true, writable: true, configurable: true })
}
