import { relative, sep } from 'node:path'
import fg from 'fast-glob'
import { ScriptError } from './errors'
import { inBatches, type ReadWithStat, readTextWithStatSync } from './fs-read'
import { describeSyntaxError } from './json-errors'
import { type Overrides, type RequestOptions, toRequest } from './plan'
import { OPTIONS, type OptionSpec, PER_ASSET, problem } from './schema'
import type { AssetRequest, ResolvedOptions, ScriptIssue, TransformOverrides } from './types'

/** One script, parsed: its document, its requests, its issues, and notes to say once (e.g. an unknown model). */
export interface ParsedScript {
  data: unknown
  requests: AssetRequest[]
  issues: ScriptIssue[]
  notes: Set<string>
}

/** Longest prompt accepted, in characters (code points), as written in the script. */
export const MAX_PROMPT_LENGTH = 10_000
const OVERRIDE_KEYS = ['prompt', ...PER_ASSET]
/** Per-asset keys that say how the image's web variants are made, not what the image is: never sent, never keyed. */
const TRANSFORM_KEYS = new Set<string>(['formats', 'widths', 'quality', 'blur'])

/** Encode a JSON pointer (RFC 6901) from segments; the root document is `/`. */
export function toPointer(segments: Array<string | number>): string {
  return segments.length === 0 ? '/' : segments.map(s => `/${escapeSegment(String(s))}`).join('')
}

function escapeSegment(segment: string): string {
  return segment.includes('~') || segment.includes('/') ? segment.replace(/~/g, '~0').replace(/\//g, '~1') : segment
}

/** A script's text without the byte-order mark some editors write first (JSON.parse refuses it). */
export function withoutBom(text: string): string {
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text
}

/**
 * Pure: one script's text → its parsed document, its asset requests (keyed by plan's rule) and its issues. `script`
 * is the root-relative posix path.
 */
export function parseScript(source: string, script: string, options: RequestOptions): ParsedScript {
  const requests: AssetRequest[] = []
  const issues: ScriptIssue[] = []
  const notes = new Set<string>()
  const issue = (where: string, message: string) => issues.push({ script, where, message })

  const text = withoutBom(source)
  if (text.trim() === '') return issue('1:1', 'file is empty'), { data: undefined, requests, issues, notes }
  let doc: unknown
  try {
    doc = JSON.parse(text)
  } catch (error) {
    const { where, message, frame } = describeSyntaxError(text, error instanceof Error ? error.message : String(error))
    issues.push({ script, where, message, frame })
    return { data: undefined, requests, issues, notes }
  }

  const deep = deeper(doc, 0) ? tooDeep(doc) : undefined
  if (deep) return issue(deep, `nested more than ${MAX_DEPTH} levels deep: a script this deep cannot become a \`?flux\` module (bundlers and JSON.stringify run out of stack)`), { data: undefined, requests, issues, notes }
  if (!isObject(doc)) return issue('/', 'expected an object with a "visual_track" array'), { data: doc, requests, issues, notes }
  const track = doc.visual_track
  if (!Array.isArray(track)) return issue('/visual_track', 'expected an array of scenes'), { data: doc, requests, issues, notes }

  for (let i = 0; i < track.length; i++) {
    const scene: unknown = track[i]
    const scenePointer = `/visual_track/${i}`
    if (!isObject(scene)) {
      issue(scenePointer, 'expected a scene object')
      continue
    }
    if (!Object.hasOwn(scene, 'assets')) continue
    const assets = scene.assets
    const assetsPointer = `${scenePointer}/assets`
    if (!isObject(assets)) {
      issue(assetsPointer, 'expected an object of { id: prompt }')
      continue
    }
    for (const id of Object.keys(assets)) {
      const pointer = `${assetsPointer}/${escapeSegment(id)}`
      if (id === '' || CONTROL.test(id)) {
        // Shown escaped: a raw ESC or NUL in a terminal error message is worse than an inexact pointer.
        issue(`${assetsPointer}/${escapeSegment(showControls(id))}`, 'asset id must be non-empty and printable')
        continue
      }
      const asset = readAsset(assets[id], pointer, issue)
      if (!asset) continue
      const planned = toRequest({ script, pointer, id, prompt: asset.prompt, overrides: asset.overrides }, options)
      if (planned.request) requests.push(asset.transform ? { ...planned.request, transform: asset.transform } : planned.request)
      else issues.push(...planned.issues)
      for (const note of planned.notes) notes.add(note)
    }
  }
  return { data: doc, requests, issues, notes }
}

/** Deepest nesting of objects and arrays a script may have; real scripts use a handful of levels. */
export const MAX_DEPTH = 256

/**
 * Whether an object or array of `doc` sits at MAX_DEPTH or deeper (`tooDeep` then says where). Recursive, at most
 * MAX_DEPTH calls deep, and allocates nothing: it runs on every script (10,000 at scale), `tooDeep` only on a bad one.
 */
function deeper(value: unknown, depth: number): boolean {
  if (typeof value !== 'object' || value === null) return false
  if (depth >= MAX_DEPTH) return true
  if (Array.isArray(value)) {
    for (const item of value) if (deeper(item, depth + 1)) return true
  } else {
    for (const key in value) if (Object.hasOwn(value, key) && deeper((value as Record<string, unknown>)[key], depth + 1)) return true
  }
  return false
}

/** The pointer of the first value nested deeper than MAX_DEPTH, or undefined. Iterative: the document may be 100,000 deep. */
function tooDeep(doc: unknown): string | undefined {
  type Node = { value: unknown; depth: number; key?: string; parent?: Node }
  const stack: Node[] = [{ value: doc, depth: 0 }]
  for (let node = stack.pop(); node; node = stack.pop()) {
    if (typeof node.value !== 'object' || node.value === null) continue
    if (node.depth >= MAX_DEPTH) {
      const segments: string[] = []
      for (let n: Node | undefined = node; n?.key !== undefined; n = n.parent) segments.unshift(n.key)
      const pointer = toPointer(segments)
      return pointer.length > 100 ? `${pointer.slice(0, pointer.lastIndexOf('/', 100))}/…` : pointer
    }
    for (const [key, value] of Object.entries(node.value)) stack.push({ value, depth: node.depth + 1, key, parent: node })
  }
  return undefined
}

const CONTROL = /[\u0000-\u001f\u007f]/
function showControls(id: string): string {
  return id.replace(/[\u0000-\u001f\u007f]/g, c => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** One asset value → its trimmed prompt and overrides, or undefined after reporting every problem in it. */
function readAsset(value: unknown, pointer: string, issue: (where: string, message: string) => void): { prompt: string; overrides: Overrides; transform?: TransformOverrides } | undefined {
  if (typeof value === 'string') {
    const prompt = checkPrompt(value, pointer, issue)
    return prompt === undefined ? undefined : { prompt, overrides: {} }
  }
  if (!isObject(value)) return issue(pointer, `expected a prompt string or { prompt }, got ${describeValue(value)}`), undefined

  let ok = true
  const fail = (key: string, message: string) => {
    ok = false
    issue(`${pointer}/${escapeSegment(key)}`, message)
  }
  let prompt: string | undefined
  if (!Object.hasOwn(value, 'prompt')) fail('prompt', 'prompt is missing')
  else if (typeof value.prompt !== 'string') fail('prompt', 'expected a prompt string')
  else if ((prompt = checkPrompt(value.prompt, `${pointer}/prompt`, issue)) === undefined) ok = false

  const overrides: Overrides = {}
  let transform: TransformOverrides | undefined
  for (const key of Object.keys(value)) {
    const v = value[key]
    if (key === 'prompt') continue
    const spec: OptionSpec | undefined = (PER_ASSET as string[]).includes(key) ? OPTIONS[key as keyof typeof OPTIONS] : undefined
    if (!spec) {
      fail(key, `unknown key ${JSON.stringify(key)} (allowed: ${OVERRIDE_KEYS.join(', ')})`)
      continue
    }
    // The same rules and words as the global option (schema.ts).
    const wrong = problem(spec, v)
    if (wrong) fail(key, wrong)
    else if (TRANSFORM_KEYS.has(key)) ((transform ??= {}) as Record<string, unknown>)[key] = v
    else (overrides as Record<string, unknown>)[key] = v
  }
  return ok && prompt !== undefined ? { prompt, overrides, ...(transform ? { transform } : {}) } : undefined
}

/** What was found instead, short: `the number 3`, `an array`, `null`. */
function describeValue(value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  if (typeof value === 'number' || typeof value === 'boolean') return `the ${typeof value} ${JSON.stringify(value)}`
  return `a ${typeof value}`
}

function checkPrompt(raw: string, pointer: string, issue: (where: string, message: string) => void): string | undefined {
  const prompt = raw.trim()
  if (prompt === '') return issue(pointer, 'prompt is empty'), undefined
  // Code points never outnumber UTF-16 units: only count them when the cheap length is already over.
  if (prompt.length > MAX_PROMPT_LENGTH) {
    let count = 0
    for (const _ of prompt) count++
    if (count > MAX_PROMPT_LENGTH) return issue(pointer, `prompt is ${count} characters; the limit is ${MAX_PROMPT_LENGTH}`), undefined
  }
  return prompt
}

/** fast-glob over options.include/exclude under options.root; absolute paths, sorted, deduplicated. */
export async function findScripts(options: Pick<ResolvedOptions, 'root' | 'include' | 'exclude'>): Promise<string[]> {
  if (options.include.length === 0) return []
  const found = await fg(options.include, {
    cwd: options.root,
    absolute: true,
    ignore: options.exclude,
    onlyFiles: true,
    dot: false,
    followSymbolicLinks: false,
  })
  return [...new Set(found)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
}

/** A script the scan parsed without an issue, handed to `onScript` (typed scripts: typegen.ts) so nothing reads it again. */
export interface ScannedScript {
  file: string
  /** Root-relative posix path. */
  script: string
  data: unknown
  /** Of the bytes read. */
  size: number
  mtimeMs: number
}

/**
 * Find + read + parse every script. Throws ScriptError with ALL issues across all files if any. The reads are
 * synchronous, in batches of at most BATCH_MS (fs-read.ts) with the event loop free in between: on a 2-core machine
 * the thread pool's round trips cost about three times the sync calls (bench scenario 3). `onScript` sees each parsed
 * document as it is read (the scan keeps none of them).
 */
export async function scanScripts(options: ResolvedOptions, onScript?: (scanned: ScannedScript) => void): Promise<{ files: string[]; requests: AssetRequest[]; notes: string[] }> {
  const files = await findScripts(options)
  const requests: AssetRequest[] = []
  const issues: ScriptIssue[] = []
  const notes = new Set<string>()
  // fast-glob gives `root` + the relative path; `relative()` resolves both paths again on every call (~9 µs, 94 ms
  // for 10,000 files against 12 ms for a slice). Anything else (e.g. Windows: fast-glob writes `/`) takes relative().
  const prefix = options.root.endsWith(sep) ? options.root : options.root + sep
  await inBatches(files, file => {
    const script = (file.startsWith(prefix) ? file.slice(prefix.length) : relative(options.root, file)).split(sep).join('/')
    let read: ReadWithStat
    try {
      read = readTextWithStatSync(file)
    } catch (error) {
      issues.push({ script, where: '/', message: readFailure(error) })
      return
    }
    const parsed = parseScript(read.text, script, options)
    if (onScript && parsed.issues.length === 0) onScript({ file, script, data: parsed.data, size: read.size, mtimeMs: read.mtimeMs })
    for (const r of parsed.requests) requests.push(r)
    for (const i of parsed.issues) issues.push(i)
    for (const n of parsed.notes) notes.add(n)
  })
  if (issues.length > 0) throw new ScriptError(issues)
  return { files, requests, notes: [...notes] }
}

function readFailure(error: unknown): string {
  const code = (error as NodeJS.ErrnoException | undefined)?.code
  switch (code) {
    case 'ENOENT':
      return 'could not read the file: it no longer exists (ENOENT)'
    case 'EACCES':
    case 'EPERM':
      return `could not read the file: permission denied (${code})`
    case 'EISDIR':
      return 'could not read the file: it is a directory (EISDIR)'
    default:
      return `could not read the file${code ? ` (${code})` : ''}`
  }
}
