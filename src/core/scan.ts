import { promises as fsp } from 'node:fs'
import { relative, sep } from 'node:path'
import fg from 'fast-glob'
import { ScriptError } from './errors'
import { cacheKey } from './key'
import type { AssetRequest, ImageSettings, ResolvedOptions, ScriptIssue } from './types'

/** Longest prompt accepted, in characters (code points), as written in the script. */
export const MAX_PROMPT_LENGTH = 10_000
const OVERRIDE_KEYS = ['prompt', 'width', 'height', 'steps', 'seed', 'model', 'outputFormat']
const READ_CONCURRENCY = 32

type ParseOptions = Pick<ResolvedOptions, 'promptPrefix' | 'promptSuffix' | 'defaults'>
type Overrides = Partial<Omit<ImageSettings, 'provider'>>

/** Encode a JSON pointer (RFC 6901) from segments; the root document is `/`. */
export function toPointer(segments: Array<string | number>): string {
  return segments.length === 0 ? '/' : segments.map(s => `/${escapeSegment(String(s))}`).join('')
}

function escapeSegment(segment: string): string {
  return segment.includes('~') || segment.includes('/') ? segment.replace(/~/g, '~0').replace(/\//g, '~1') : segment
}

/** Pure: one script's text → its asset requests and its issues. `script` is the root-relative posix path. */
export function parseScript(source: string, script: string, options: ParseOptions): { requests: AssetRequest[]; issues: ScriptIssue[] } {
  const requests: AssetRequest[] = []
  const issues: ScriptIssue[] = []
  const issue = (where: string, message: string) => issues.push({ script, where, message })

  const text = source.charCodeAt(0) === 0xfeff ? source.slice(1) : source
  if (text.trim() === '') return issue('1:1', 'file is empty'), { requests, issues }
  let doc: unknown
  try {
    doc = JSON.parse(text)
  } catch (error) {
    const { where, message } = describeSyntaxError(text, error instanceof Error ? error.message : String(error))
    return issue(where, message), { requests, issues }
  }

  if (!isObject(doc)) return issue('/', 'expected an object with a "visual_track" array'), { requests, issues }
  const track = doc.visual_track
  if (!Array.isArray(track)) return issue('/visual_track', 'expected an array of scenes'), { requests, issues }

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
      const settings = { provider: 'together', ...options.defaults, ...asset.overrides } as ImageSettings
      if (settings.seed === undefined) delete settings.seed
      const prompt = options.promptPrefix + asset.prompt + options.promptSuffix
      requests.push({ script, pointer, id, prompt, settings, key: cacheKey(prompt, settings) })
    }
  }
  return { requests, issues }
}

const CONTROL = /[\u0000-\u001f\u007f]/
function showControls(id: string): string {
  return id.replace(/[\u0000-\u001f\u007f]/g, c => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** One asset value → its trimmed prompt and overrides, or undefined after reporting every problem in it. */
function readAsset(value: unknown, pointer: string, issue: (where: string, message: string) => void): { prompt: string; overrides: Overrides } | undefined {
  if (typeof value === 'string') {
    const prompt = checkPrompt(value, pointer, issue)
    return prompt === undefined ? undefined : { prompt, overrides: {} }
  }
  if (!isObject(value)) return issue(pointer, 'expected a prompt string or { prompt }'), undefined

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
  for (const key of Object.keys(value)) {
    const v = value[key]
    switch (key) {
      case 'prompt':
        break
      case 'width':
      case 'height':
        if (Number.isInteger(v) && (v as number) > 0 && (v as number) % 8 === 0 && (v as number) <= 4096) overrides[key] = v as number
        else fail(key, 'expected a positive multiple of 8 (at most 4096)')
        break
      case 'steps':
        if (Number.isInteger(v) && (v as number) >= 1 && (v as number) <= 100) overrides.steps = v as number
        else fail(key, 'expected an integer from 1 to 100')
        break
      case 'seed':
        if (Number.isSafeInteger(v) && (v as number) >= 0) overrides.seed = v as number
        else fail(key, `expected an integer from 0 to ${Number.MAX_SAFE_INTEGER}`)
        break
      case 'model':
        if (typeof v === 'string' && v.trim() !== '') overrides.model = v
        else fail(key, 'expected a non-empty model id')
        break
      case 'outputFormat':
        if (v === 'jpeg' || v === 'png') overrides.outputFormat = v
        else fail(key, 'expected "jpeg" or "png"')
        break
      default:
        fail(key, `unknown key ${JSON.stringify(key)} (allowed: ${OVERRIDE_KEYS.join(', ')})`)
    }
  }
  return ok && prompt !== undefined ? { prompt, overrides } : undefined
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

/** V8's message → `line:column` and a short message, the same on Node 20 and 22. */
function describeSyntaxError(text: string, raw: string): { where: string; message: string } {
  const position = /at position (\d+)/.exec(raw)
  const lineColumn = /\(line (\d+) column (\d+)\)/.exec(raw)
  const offset = position ? Math.min(Number(position[1]), text.length) : lineColumn ? undefined : syntaxErrorOffset(text)
  const where = offset === undefined ? `${lineColumn![1]}:${lineColumn![2]}` : lineColumnAt(text, offset)

  if (offset !== undefined && (text[offset] === '}' || text[offset] === ']') && text.slice(0, offset).trimEnd().endsWith(',')) {
    return { where, message: 'invalid JSON: trailing comma' }
  }
  let message = raw
    .replace(/ in JSON at position \d+.*$/s, '')
    .replace(/ \(line \d+ column \d+\)$/, '')
    .replace(/^(Unexpected token '.+?'), .*$/s, '$1')
    .replace(/^Unexpected end of JSON input$/, 'Unexpected end of file')
    .replace(/^Unexpected token '([\u0000-\u001f])'$/, (_, c: string) =>
      c === '\n' || c === '\r' ? 'Unexpected line break' : `Unexpected character U+${c.charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')}`,
    )
  if (message.includes('is not valid JSON')) message = 'not valid JSON'
  if (message.length > 120) message = `${message.slice(0, 120)}…`
  return { where, message: `invalid JSON: ${message.charAt(0).toLowerCase()}${message.slice(1)}` }
}

/** 1-based line and column (UTF-16 units, as editors count) of an offset; `\n`, `\r\n` and `\r` end lines. */
function lineColumnAt(text: string, offset: number): string {
  let line = 1
  let start = 0
  for (let i = 0; i < offset; i++) {
    const c = text.charCodeAt(i)
    if (c === 10 || (c === 13 && text.charCodeAt(i + 1) !== 10)) {
      line++
      start = i + 1
    }
  }
  return `${line}:${offset - start + 1}`
}

/**
 * Offset of the first JSON syntax error, for V8 messages that carry no position
 * (`Unexpected token ']', "[1,]" is not valid JSON`). Iterative: deep nesting cannot overflow the stack.
 */
function syntaxErrorOffset(text: string): number {
  const n = text.length
  const stack: string[] = []
  let i = 0
  let expect: 'value' | 'valueOrClose' | 'key' | 'keyOrClose' | 'next' = 'value'
  const skipSpace = () => {
    while (i < n && ' \t\n\r'.includes(text[i]!)) i++
  }
  const digits = (): boolean => {
    const start = i
    while (i < n && text[i]! >= '0' && text[i]! <= '9') i++
    return i > start
  }
  /** From the opening quote to just past the closing one; false with `i` at the bad character. */
  const string = (): boolean => {
    for (i++; i < n; i++) {
      const c = text[i]!
      if (c === '"') {
        i++
        return true
      }
      if (c < ' ') return false
      if (c !== '\\') continue
      const e = text[++i]
      if (e === 'u') {
        for (let k = 0; k < 4; k++) if (!/[0-9a-fA-F]/.test(text[++i] ?? '')) return false
      } else if (e === undefined || !'"\\/bfnrt'.includes(e)) return false
    }
    return false
  }
  for (;;) {
    skipSpace()
    if (expect === 'next') {
      const top = stack[stack.length - 1]
      if (top === undefined || i >= n) return i
      if (text[i] === (top === '{' ? '}' : ']')) {
        stack.pop()
        i++
      } else if (text[i] === ',') {
        i++
        expect = top === '{' ? 'key' : 'value'
      } else return i
      continue
    }
    if (i >= n) return n
    const c = text[i]!
    if (expect === 'key' || expect === 'keyOrClose') {
      if (c === '}' && expect === 'keyOrClose') {
        stack.pop()
        i++
        expect = 'next'
        continue
      }
      if (c !== '"' || !string()) return i
      skipSpace()
      if (text[i] !== ':') return i
      i++
      expect = 'value'
      continue
    }
    if (c === ']' && expect === 'valueOrClose') {
      stack.pop()
      i++
    } else if (c === '{' || c === '[') {
      stack.push(c)
      i++
      expect = c === '{' ? 'keyOrClose' : 'valueOrClose'
      continue
    } else if (c === '"') {
      if (!string()) return i
    } else if (c === '-' || (c >= '0' && c <= '9')) {
      if (c === '-') i++
      if (text[i] === '0') i++
      else if (!digits()) return i
      if (text[i] === '.') {
        i++
        if (!digits()) return i
      }
      if (text[i] === 'e' || text[i] === 'E') {
        i++
        if (text[i] === '+' || text[i] === '-') i++
        if (!digits()) return i
      }
    } else {
      const word = c === 't' ? 'true' : c === 'f' ? 'false' : c === 'n' ? 'null' : ''
      if (!word) return i
      for (const w of word) if (text[i++] !== w) return i - 1
    }
    expect = 'next'
  }
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

/** Find + read (concurrently) + parse every script. Throws ScriptError with ALL issues across all files if any. */
export async function scanScripts(options: ResolvedOptions): Promise<{ files: string[]; requests: AssetRequest[] }> {
  const files = await findScripts(options)
  const results: Array<{ requests: AssetRequest[]; issues: ScriptIssue[] }> = new Array(files.length)
  let next = 0
  const worker = async () => {
    while (next < files.length) {
      const index = next++
      const file = files[index]!
      const script = relative(options.root, file).split(sep).join('/')
      let source: string
      try {
        source = await fsp.readFile(file, 'utf8')
      } catch (error) {
        results[index] = { requests: [], issues: [{ script, where: '/', message: readFailure(error) }] }
        continue
      }
      results[index] = parseScript(source, script, options)
    }
  }
  await Promise.all(Array.from({ length: Math.min(READ_CONCURRENCY, files.length) }, worker))
  const issues = results.flatMap(r => r.issues)
  if (issues.length > 0) throw new ScriptError(issues)
  return { files, requests: results.flatMap(r => r.requests) }
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
