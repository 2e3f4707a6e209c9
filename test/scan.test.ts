import fs from 'node:fs'
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises'
import { basename, dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { ScriptError, formatIssues } from '../src/core/errors'
import { cacheKey } from '../src/core/key'
import { findScripts, MAX_DEPTH, parseScript, scanScripts, toPointer } from '../src/core/scan'
import type { ResolvedOptions, ScriptIssue } from '../src/core/types'
import { turnsDuring } from './core-helpers'

const here = dirname(fileURLToPath(import.meta.url))

function makeOptions(overrides: Partial<ResolvedOptions> = {}): ResolvedOptions {
  const root = overrides.root ?? here
  return {
    root,
    include: ['**/*.script.json'],
    exclude: ['**/node_modules/**', '**/.*/**'],
    cacheDir: resolve(root, '.flux-cache'),
    apiKey: undefined,
    baseURL: 'https://api.together.xyz/v1',
    responseFormat: 'base64',
    promptPrefix: '',
    promptSuffix: '',
    defaults: { model: 'black-forest-labs/FLUX.2-dev', width: 1024, height: 768, outputFormat: 'jpeg' },
    concurrency: 4,
    retries: 4,
    maxRetryDelay: 60_000,
    timeout: 120_000,
    maxImageBytes: 25 * 1024 * 1024,
    strict: false,
    apiFailure: 'fail',
    dev: false,
    offline: false,
    maxNewImages: 100,
    maxCost: undefined,
    dts: false,
    signal: undefined,
    logger: { info() {}, warn() {}, error() {} },
    onProgress: undefined,
    transform: { formats: ['webp'], widths: [], quality: { webp: 75, avif: 50 }, blur: true },
    ...overrides,
  }
}

const DEFAULT_SETTINGS = { provider: 'together', model: 'black-forest-labs/FLUX.2-dev', width: 1024, height: 768, outputFormat: 'jpeg' }

const parse = (doc: unknown, options = makeOptions(), script = 'intro.script.json') =>
  parseScript(typeof doc === 'string' ? doc : JSON.stringify(doc), script, options)

/** One scene holding the given assets. */
const scene = (assets: unknown) => ({ visual_track: [{ assets }] })
const issuesOf = (doc: unknown): Array<[string, string]> => parse(doc).issues.map(i => [i.where, i.message])

describe('toPointer', () => {
  it('encodes segments with RFC 6901 escaping; the root is "/"', () => {
    expect(toPointer([])).toBe('/')
    expect(toPointer(['visual_track', 0, 'assets', 'a/b~c'])).toBe('/visual_track/0/assets/a~1b~0c')
    expect(toPointer(['~1'])).toBe('/~01')
  })
})

describe('parseScript: requests', () => {
  it('turns string and object assets into requests with merged settings, in document order', () => {
    const { requests, issues } = parse({
      title: 'ignored',
      visual_track: [
        { note: 'no assets here' },
        { assets: {} },
        {
          assets: {
            avatar: 'A professional businessman in a suit',
            hero: { prompt: '  A laptop showing code ', width: 512, height: 256, steps: 8, seed: 42, model: 'black-forest-labs/FLUX.1-dev', outputFormat: 'png' },
          },
          extra: { anything: [1, 2] },
        },
      ],
    })
    expect(issues).toEqual([])
    expect(requests).toEqual([
      {
        script: 'intro.script.json',
        pointer: '/visual_track/2/assets/avatar',
        id: 'avatar',
        prompt: 'A professional businessman in a suit',
        settings: DEFAULT_SETTINGS,
        key: cacheKey('A professional businessman in a suit', DEFAULT_SETTINGS as never),
      },
      {
        script: 'intro.script.json',
        pointer: '/visual_track/2/assets/hero',
        id: 'hero',
        prompt: 'A laptop showing code',
        settings: { provider: 'together', model: 'black-forest-labs/FLUX.1-dev', width: 512, height: 256, steps: 8, seed: 42, outputFormat: 'png' },
        key: expect.stringMatching(/^[0-9a-f]{64}$/),
      },
    ])
    expect(requests[1]!.key).toBe(cacheKey('A laptop showing code', requests[1]!.settings))
  })

  it('a partial override keeps the other global settings', () => {
    const [request] = parse(scene({ a: { prompt: 'p', width: 512 } })).requests
    expect(request!.settings).toEqual({ ...DEFAULT_SETTINGS, width: 512 })
  })

  it('puts prefix and suffix verbatim into the prompt and the key', () => {
    const options = makeOptions({ promptPrefix: 'Watercolor, ', promptSuffix: ', soft light' })
    const [withAffixes] = parse(scene({ a: 'a cat' }), options).requests
    const [plain] = parse(scene({ a: 'a cat' })).requests
    expect(withAffixes!.prompt).toBe('Watercolor, a cat, soft light')
    expect(withAffixes!.key).toBe(cacheKey('Watercolor, a cat, soft light', withAffixes!.settings))
    expect(withAffixes!.key).not.toBe(plain!.key)
  })

  it('the key depends on neither the asset id nor the script path', () => {
    const a = parse(scene({ avatar: 'a cat' }), makeOptions(), 'a.script.json').requests[0]!
    const b = parse({ visual_track: [{}, { assets: { other: 'a cat' } }] }, makeOptions(), 'deep/b.script.json').requests[0]!
    expect(a.id).not.toBe(b.id)
    expect(a.key).toBe(b.key)
    const c = parse(scene({ avatar: 'a dog' }), makeOptions(), 'a.script.json').requests[0]!
    expect(c.key).not.toBe(a.key)
  })

  it('the same prompt written as a string and as { prompt } gives the same key', () => {
    const a = parse(scene({ x: 'a cat' })).requests[0]!
    const b = parse(scene({ y: { prompt: ' a cat' } })).requests[0]!
    expect(b.key).toBe(a.key)
  })

  it('seed is present only when set globally or per asset', () => {
    const none = parse(scene({ a: 'p' })).requests[0]!
    expect('seed' in none.settings).toBe(false)
    const undefinedSeed = makeOptions({ defaults: { ...makeOptions().defaults, seed: undefined } })
    expect('seed' in parse(scene({ a: 'p' }), undefinedSeed).requests[0]!.settings).toBe(false)
    const global = makeOptions({ defaults: { ...makeOptions().defaults, seed: 7 } })
    expect(parse(scene({ a: 'p' }), global).requests[0]!.settings.seed).toBe(7)
    expect(parse(scene({ a: { prompt: 'p', seed: 0 } }), global).requests[0]!.settings.seed).toBe(0)
    expect(parse(scene({ a: { prompt: 'p', seed: 9 } })).requests[0]!.settings.seed).toBe(9)
  })

  it('escapes ~ and / in pointers', () => {
    const [request] = parse(scene({ 'a/b~c': 'p' })).requests
    expect(request!.pointer).toBe('/visual_track/0/assets/a~1b~0c')
    expect(request!.id).toBe('a/b~c')
    expect(issuesOf(scene({ 'x/y': { prompt: 'p', 'w~h': 1 } }))).toEqual([
      ['/visual_track/0/assets/x~1y/w~0h', 'unknown key "w~h" (allowed: prompt, width, height, steps, seed, model, guidance, negativePrompt, aspectRatio, promptUpsampling, outputFormat, providerOptions, formats, widths, quality, blur)'],
    ])
  })

  it('accepts hostile ids as labels only', () => {
    const ids = ['../../etc/passwd', 'CON', 'x'.repeat(300), '__proto__', 'constructor', 'C:\\Windows', 'émoji 🎬', ' spaced ']
    const doc = `{"visual_track":[{"assets":{${ids.map(id => `${JSON.stringify(id)}:"p"`).join(',')}}}]}`
    const { requests, issues } = parse(doc)
    expect(issues).toEqual([])
    expect(requests.map(r => r.id).sort()).toEqual([...ids].sort())
    expect(new Set(requests.map(r => r.key)).size).toBe(1)
  })

  // How fast is the bench's business (bench/scale.mjs), not a test's: these machines are shared and noisy.
  it('parses a script with 10,000 assets', () => {
    const assets: Record<string, string> = {}
    for (let i = 0; i < 10_000; i++) assets[`asset-${i}`] = `prompt number ${i}`
    const { requests, issues } = parse(scene(assets))
    expect(issues).toEqual([])
    expect(requests).toHaveLength(10_000)
    expect(requests[9_999]!.pointer).toBe('/visual_track/0/assets/asset-9999')
  })

  it('reports 10,000 bad assets, each once', () => {
    const assets: Record<string, number> = {}
    for (let i = 0; i < 10_000; i++) assets[`a${i}`] = i
    const { issues } = parse(scene(assets))
    expect(issues).toHaveLength(10_000)
    expect(issues[0]).toEqual({ script: 'intro.script.json', where: '/visual_track/0/assets/a0', message: 'expected a prompt string or { prompt }, got the number 0' })
  })
})

describe('parseScript: validation', () => {
  const NOT_PROMPT = (got: string) => `expected a prompt string or { prompt }, got ${got}`

  it('root must be an object', () => {
    for (const doc of ['[]', 'null', '"x"', '3']) {
      expect(issuesOf(doc)).toEqual([['/', 'expected an object with a "visual_track" array']])
    }
  })

  it('visual_track must be an array', () => {
    expect(issuesOf({})).toEqual([['/visual_track', 'expected an array of scenes']])
    expect(issuesOf({ visual_track: { 0: {} } })).toEqual([['/visual_track', 'expected an array of scenes']])
  })

  it('scenes must be objects and assets plain objects', () => {
    expect(issuesOf({ visual_track: [{}, 1, null, [], { assets: [] }, { assets: 'x' }, { assets: null }, { assets: { ok: 'p' } }] })).toEqual([
      ['/visual_track/1', 'expected a scene object'],
      ['/visual_track/2', 'expected a scene object'],
      ['/visual_track/3', 'expected a scene object'],
      ['/visual_track/4/assets', 'expected an object of { id: prompt }'],
      ['/visual_track/5/assets', 'expected an object of { id: prompt }'],
      ['/visual_track/6/assets', 'expected an object of { id: prompt }'],
    ])
  })

  it('asset ids must be non-empty and printable', () => {
    expect(issuesOf(scene({ '': 'p' }))).toEqual([['/visual_track/0/assets/', 'asset id must be non-empty and printable']])
    // The bad id is shown escaped, never as raw control characters.
    expect(issuesOf(scene({ 'a\nb': 'p', 'x\u001b[31m': 'p', 'del\u007f': 'p', 'fine id': 'p' }))).toEqual([
      ['/visual_track/0/assets/a\\u000ab', 'asset id must be non-empty and printable'],
      ['/visual_track/0/assets/x\\u001b[31m', 'asset id must be non-empty and printable'],
      ['/visual_track/0/assets/del\\u007f', 'asset id must be non-empty and printable'],
    ])
  })

  it('asset values must be a prompt string or { prompt }', () => {
    expect(issuesOf(scene({ a: 1, b: [], c: null, d: true, e: 'ok' }))).toEqual([
      ['/visual_track/0/assets/a', NOT_PROMPT('the number 1')],
      ['/visual_track/0/assets/b', NOT_PROMPT('an array')],
      ['/visual_track/0/assets/c', NOT_PROMPT('null')],
      ['/visual_track/0/assets/d', NOT_PROMPT('the boolean true')],
    ])
  })

  it('prompts must not be empty or blank', () => {
    expect(issuesOf(scene({ a: '', b: ' \n\t ', c: { prompt: '  ' }, d: { width: 512 }, e: { prompt: 5 } }))).toEqual([
      ['/visual_track/0/assets/a', 'prompt is empty'],
      ['/visual_track/0/assets/b', 'prompt is empty'],
      ['/visual_track/0/assets/c/prompt', 'prompt is empty'],
      ['/visual_track/0/assets/d/prompt', 'prompt is missing'],
      ['/visual_track/0/assets/e/prompt', 'expected a prompt string'],
    ])
  })

  it('rejects a 100 KB prompt, and accepts exactly 10,000 characters', () => {
    const huge = 'x'.repeat(100_000)
    expect(issuesOf(scene({ a: huge, b: { prompt: huge } }))).toEqual([
      ['/visual_track/0/assets/a', 'prompt is 100000 characters; the limit is 10000'],
      ['/visual_track/0/assets/b/prompt', 'prompt is 100000 characters; the limit is 10000'],
    ])
    expect(issuesOf(scene({ a: 'y'.repeat(10_000), b: `  ${'z'.repeat(10_000)}  ` }))).toEqual([])
    expect(issuesOf(scene({ a: 'y'.repeat(10_001) }))).toEqual([['/visual_track/0/assets/a', 'prompt is 10001 characters; the limit is 10000']])
    // Characters, not UTF-16 units: 10,000 emoji are 20,000 units.
    expect(issuesOf(scene({ a: '🎬'.repeat(10_000) }))).toEqual([])
  })

  it('checks every override and names the offending key', () => {
    // The schema's bounds; the retired FLUX.1 [schnell]'s profile keeps them all (any multiple of 8, steps 1-100),
    // so only the schema speaks here. What a model takes on top is models.test.ts's business.
    const issuesOf = (doc: unknown) =>
      parse(doc, makeOptions({ defaults: { ...makeOptions().defaults, model: 'black-forest-labs/FLUX.1-schnell' } })).issues.map(i => [i.where, i.message])
    const at = (key: string) => `/visual_track/0/assets/hero/${key}`
    // The same words as the global option's (schema.ts), with the value that was wrong.
    const SIZE = (bad: unknown) => `must be a multiple of 8 from 8 to 4096, got ${typeof bad === 'number' ? bad : JSON.stringify(bad)}`
    for (const bad of [0, -8, 12, 8.5, 4104, '512', null]) {
      expect(issuesOf(scene({ hero: { prompt: 'p', width: bad } }))).toEqual([[at('width'), SIZE(bad)]])
      expect(issuesOf(scene({ hero: { prompt: 'p', height: bad } }))).toEqual([[at('height'), SIZE(bad)]])
    }
    expect(issuesOf(scene({ hero: { prompt: 'p', width: 8, height: 4096 } }))).toEqual([])
    const got = (bad: unknown) => `got ${typeof bad === 'number' ? bad : JSON.stringify(bad)}`
    for (const bad of [0, 101, 2.5, '4']) expect(issuesOf(scene({ hero: { prompt: 'p', steps: bad } }))).toEqual([[at('steps'), `must be an integer from 1 to 100, ${got(bad)}`]])
    expect(issuesOf(scene({ hero: { prompt: 'p', steps: 1 } }))).toEqual([])
    expect(issuesOf(scene({ hero: { prompt: 'p', steps: 100 } }))).toEqual([])
    for (const bad of [-1, 1.5, 2 ** 53, '1']) {
      expect(issuesOf(scene({ hero: { prompt: 'p', seed: bad } }))).toEqual([[at('seed'), `must be an integer from 0 to 9007199254740991, ${got(bad)}`]])
    }
    expect(issuesOf(scene({ hero: { prompt: 'p', seed: 2 ** 53 - 1 } }))).toEqual([])
    for (const bad of ['', '  ']) expect(issuesOf(scene({ hero: { prompt: 'p', model: bad } }))).toEqual([[at('model'), 'must be a non-empty string']])
    for (const bad of [3, null]) expect(issuesOf(scene({ hero: { prompt: 'p', model: bad } }))).toEqual([[at('model'), `must be a string, ${got(bad)}`]])
    for (const bad of ['webp', 'JPEG', 'jpg', null]) expect(issuesOf(scene({ hero: { prompt: 'p', outputFormat: bad } }))).toEqual([[at('outputFormat'), `must be one of jpeg, png, ${got(bad)}`]])
  })

  it('rejects unknown override keys, including __proto__', () => {
    const doc = '{"visual_track":[{"assets":{"hero":{"prompt":"p","foo":1,"__proto__":{"width":8}}}}]}'
    const { issues, requests } = parse(doc)
    expect(requests).toEqual([])
    expect(issues.map(i => [i.where, i.message])).toEqual([
      ['/visual_track/0/assets/hero/foo', 'unknown key "foo" (allowed: prompt, width, height, steps, seed, model, guidance, negativePrompt, aspectRatio, promptUpsampling, outputFormat, providerOptions, formats, widths, quality, blur)'],
      ['/visual_track/0/assets/hero/__proto__', 'unknown key "__proto__" (allowed: prompt, width, height, steps, seed, model, guidance, negativePrompt, aspectRatio, promptUpsampling, outputFormat, providerOptions, formats, widths, quality, blur)'],
    ])
  })

  it('collects every problem at once and keeps the valid assets', () => {
    const { issues, requests } = parse({
      visual_track: [
        { assets: { good: 'fine', bad: 3 } },
        'scene?',
        { assets: { hero: { prompt: '', width: 7, steps: 0, colour: 'red' } } },
        { assets: [] },
      ],
    })
    expect(issues.map(i => [i.where, i.message])).toEqual([
      ['/visual_track/0/assets/bad', NOT_PROMPT('the number 3')],
      ['/visual_track/1', 'expected a scene object'],
      ['/visual_track/2/assets/hero/prompt', 'prompt is empty'],
      ['/visual_track/2/assets/hero/width', 'must be a multiple of 8 from 8 to 4096, got 7'],
      ['/visual_track/2/assets/hero/steps', 'must be an integer from 1 to 100, got 0'],
      ['/visual_track/2/assets/hero/colour', 'unknown key "colour" (allowed: prompt, width, height, steps, seed, model, guidance, negativePrompt, aspectRatio, promptUpsampling, outputFormat, providerOptions, formats, widths, quality, blur)'],
      ['/visual_track/3/assets', 'expected an object of { id: prompt }'],
    ])
    expect(issues.every(i => i.script === 'intro.script.json')).toBe(true)
    expect(requests.map(r => r.id)).toEqual(['good'])
  })
})

describe('parseScript: syntax', () => {
  // Where and what; the code frame has its own test below.
  const syntax = (text: string) => parse(text).issues.map(({ frame: _, ...issue }) => issue)

  it('reports a trailing comma at the comma, with the line and a caret under it', () => {
    const text = '{\n  "visual_track": [\n    { "assets": { "a": "p" } },\n  ]\n}\n'
    expect(syntax(text)).toEqual([{ script: 'intro.script.json', where: '3:31', message: 'invalid JSON: trailing comma' }])
    expect(parse(text).issues[0]!.frame).toBe('3 |     { "assets": { "a": "p" } },\n  |                               ^')
    expect(syntax('{\n  "visual_track": [],\n}')).toEqual([{ script: 'intro.script.json', where: '2:21', message: 'invalid JSON: trailing comma' }])
  })

  it('a code frame for every syntax error, cut around the place on a long line, in the error message', () => {
    expect(parse('{\n\t"visual_track" []\n}').issues[0]!.frame).toBe('2 | \t"visual_track" []\n  | \t               ^')
    const long = `{"visual_track": [${'"x",'.repeat(100)} bad]}`
    const frame = parse(long).issues[0]!.frame!
    const [line, caret] = frame.split('\n')
    expect(line!.length).toBeLessThan(120)
    expect(line![caret!.indexOf('^')]).toBe('b')
    expect(formatIssues(parse('{\n  "a": 1,\n}').issues)).toBe('intro.script.json: 2:9: invalid JSON: trailing comma\n  2 |   "a": 1,\n    |         ^')
  })

  it('finds line:column whether or not V8 gives a position', () => {
    // V8 gives a position for these ...
    expect(syntax('{\n  "visual_track" []\n}')).toEqual([
      { script: 'intro.script.json', where: '2:18', message: "invalid JSON: expected ':' after property name" },
    ])
    expect(syntax('{"a":\r\n  "b\\q"}')[0]!.where).toBe('2:6')
    // ... and not for these ("Unexpected token 'x', "..." is not valid JSON").
    expect(syntax('{\n  "visual_track": tru }')).toEqual([{ script: 'intro.script.json', where: '2:22', message: "invalid JSON: unexpected token ' '" }])
    expect(syntax('{\n  "visual_track": [tru]\n}')).toEqual([{ script: 'intro.script.json', where: '2:23', message: "invalid JSON: unexpected token ']'" }])
    expect(syntax('{\n  "visual_track": tru\n}')).toEqual([{ script: 'intro.script.json', where: '2:22', message: 'invalid JSON: unexpected line break' }])
    expect(syntax('{\n  "visual_track": fa\u0001}')).toEqual([{ script: 'intro.script.json', where: '2:21', message: 'invalid JSON: unexpected character U+0001' }])
    expect(syntax('{\n  "a": [1, 2],\n  "b": nope\n}')).toEqual([{ script: 'intro.script.json', where: '3:9', message: "invalid JSON: unexpected token 'o'" }])
    // The fallback scan walks strings with escapes, numbers and nesting like the parser does.
    expect(syntax('{"a": "x\\"y}\\u00e9", "n": [-1.5e+3, {"k": null}], "b": nope}')[0]!.where).toBe('1:57')
    // Old-Mac `\r` line ends count as lines, `\r\n` as one.
    expect(syntax('{"a":\r\r"b\\q"}')[0]!.where).toBe('3:4')
    expect(syntax('{"a":\r\n\r\n"b",]')[0]!.where).toBe('3:4')
    expect(syntax('NaN')).toEqual([{ script: 'intro.script.json', where: '1:1', message: 'invalid JSON: not valid JSON' }])
  })

  it('never echoes the file into the message', () => {
    const text = `{"visual_track": [${'"x",'.repeat(5_000)} bad]}`
    const [issue] = syntax(text)
    expect(issue!.where).toBe(`1:${text.indexOf('bad') + 1}`)
    expect(issue!.message).toBe("invalid JSON: unexpected token 'b'")
  })

  it('reports an unexpected end of file at the end', () => {
    expect(syntax('{\n  "visual_track": [\n')).toEqual([{ script: 'intro.script.json', where: '3:1', message: 'invalid JSON: unexpected end of file' }])
    expect(syntax('{"a": "unterminated')).toEqual([{ script: 'intro.script.json', where: '1:20', message: 'invalid JSON: unterminated string' }])
  })

  it('accepts a BOM and does not count it as a column', () => {
    expect(parse('\uFEFF{"visual_track":[{"assets":{"a":"p"}}]}').requests).toHaveLength(1)
    expect(syntax('\uFEFF{,}')).toEqual([{ script: 'intro.script.json', where: '1:2', message: "invalid JSON: expected property name or '}'" }])
  })

  it('refuses nesting at exactly MAX_DEPTH levels and accepts one level less, wherever the deep branch is', () => {
    const nested = (n: number) => `${'['.repeat(n)}${']'.repeat(n)}`
    // "n" is at depth 1: n brackets put the innermost array at depth n.
    expect(parse(`{"visual_track": [], "n": ${nested(MAX_DEPTH - 1)}}`).issues).toEqual([])
    expect(parse(`{"visual_track": [], "n": ${nested(MAX_DEPTH)}}`).issues.map(i => i.message)).toEqual([expect.stringContaining(`nested more than ${MAX_DEPTH} levels deep`)])
    // A deep branch after shallow ones, in an object inside an array.
    expect(parse(`{"visual_track": [{}, {"assets": {}, "x": [1, {"y": ${nested(MAX_DEPTH - 4)}}]}]}`).issues).toHaveLength(1)
    expect(parse(`{"visual_track": [{}, {"assets": {}, "x": [1, {"y": ${nested(MAX_DEPTH - 5)}}]}]}`).issues).toEqual([])
  })

  it('reports an empty file', () => {
    for (const text of ['', '\uFEFF', '  \n\t\n']) {
      expect(syntax(text)).toEqual([{ script: 'intro.script.json', where: '1:1', message: 'file is empty' }])
    }
  })
})

describe('findScripts / scanScripts', () => {
  let root: string
  const write = async (path: string, content: unknown) => {
    const file = join(root, path)
    await mkdir(dirname(file), { recursive: true })
    await writeFile(file, typeof content === 'string' ? content : JSON.stringify(content))
  }

  beforeAll(async () => {
    await mkdir(resolve(here, '.tmp'), { recursive: true })
    root = await mkdtemp(resolve(here, '.tmp/scan-'))
    await write('b.script.json', scene({ b1: 'bee', b2: 'wasp' }))
    await write('a/intro.script.json', scene({ a1: 'ant' }))
    await write('a/empty.script.json', { visual_track: [] })
    await write('a/notes.json', scene({ x: 'not a script' }))
    await write('drafts/draft.script.json', scene({ d: 'draft' }))
    await write('node_modules/pkg/x.script.json', scene({ n: 'from a package' }))
    await write('.hidden/h.script.json', scene({ h: 'hidden' }))
    await write('.dot.script.json', scene({ h: 'dot file' }))
    await write(`../${basename(root)}-outside/deep/o.script.json`, scene({ o: 'outside' }))
    await symlink(`${root}-outside`, join(root, 'linked'), 'dir')
  })
  afterAll(async () => {
    await rm(root, { recursive: true, force: true })
    await rm(`${root}-outside`, { recursive: true, force: true })
  })

  it('finds scripts sorted and deduplicated, honouring include and exclude, skipping node_modules, dot-folders and symlinks', async () => {
    const options = makeOptions({ root, include: ['**/*.script.json', 'a/*.script.json'], exclude: ['**/node_modules/**', '**/.*/**', 'drafts/**'] })
    expect(await findScripts(options)).toEqual([join(root, 'a/empty.script.json'), join(root, 'a/intro.script.json'), join(root, 'b.script.json')])
    expect(await findScripts({ ...options, include: ['a/**/*.json'], exclude: [] })).toEqual([
      join(root, 'a/empty.script.json'),
      join(root, 'a/intro.script.json'),
      join(root, 'a/notes.json'),
    ])
    // Even with no exclude at all: dot-folders are never entered and symlinked folders never followed.
    const all = await findScripts({ ...options, exclude: [] })
    expect(all).toContain(join(root, 'node_modules/pkg/x.script.json'))
    expect(all.some(f => f.includes('.hidden') || f.includes('.dot') || f.includes('outside'))).toBe(false)
    expect(await findScripts({ ...options, include: [] })).toEqual([])
    // A pattern naming a folder matches that folder, never the files inside it (notes.json is no script).
    expect(await findScripts({ ...options, include: ['a'], exclude: [] })).toEqual([])
  })

  it('returns every file found and the requests in file then document order', async () => {
    const { files, requests } = await scanScripts(makeOptions({ root, exclude: ['**/node_modules/**', '**/.*/**', 'drafts/**'] }))
    expect(files).toEqual([join(root, 'a/empty.script.json'), join(root, 'a/intro.script.json'), join(root, 'b.script.json')])
    expect(requests.map(r => [r.script, r.id])).toEqual([
      ['a/intro.script.json', 'a1'],
      ['b.script.json', 'b1'],
      ['b.script.json', 'b2'],
    ])
  })

  it('reads in batches and lets the event loop run between them (a dev server scanning 10,000 scripts stays responsive)', async () => {
    for (let i = 0; i < 60; i++) await write(`many/s${String(i).padStart(2, '0')}.script.json`, scene({ [`a${i}`]: `prompt ${i}` }))
    try {
      const { result, marks, turns } = await turnsDuring(mark => scanScripts(makeOptions({ root, include: ['many/*.script.json'], exclude: [] }), mark))
      expect(result.requests).toHaveLength(60)
      expect(marks).toBe(60)
      // Turns ran while the scripts were being read: the reads are not one synchronous loop.
      expect(turns).toBeGreaterThanOrEqual(5)
    } finally {
      await rm(join(root, 'many'), { recursive: true, force: true })
    }
  })

  it('throws one ScriptError with the issues of every file', async () => {
    await write('bad/one.script.json', '{\n  "visual_track": [1,]\n}')
    await write('bad/two.script.json', scene({ hero: { prompt: 'p', width: 7 } }))
    try {
      const error = await scanScripts(makeOptions({ root, include: ['bad/*.script.json', 'b.script.json'] })).catch(e => e)
      expect(error).toBeInstanceOf(ScriptError)
      const issues: ScriptIssue[] = (error as ScriptError).issues
      expect(issues).toEqual([
        { script: 'bad/one.script.json', where: '2:21', message: 'invalid JSON: trailing comma', frame: '2 |   "visual_track": [1,]\n  |                     ^' },
        { script: 'bad/two.script.json', where: '/visual_track/0/assets/hero/width', message: 'must be a multiple of 8 from 8 to 4096, got 7' },
      ])
      expect((error as ScriptError).code).toBe('FLUX_SCRIPT_INVALID')
      expect((error as ScriptError).message).toBe(formatIssues(issues))
      expect((error as ScriptError).message).toBe(
        [
          '2 problems in script files:',
          '  bad/one.script.json: 2:21: invalid JSON: trailing comma',
          '    2 |   "visual_track": [1,]',
          '      |                     ^',
          '  bad/two.script.json: /visual_track/0/assets/hero/width: must be a multiple of 8 from 8 to 4096, got 7',
        ].join('\n'),
      )
    } finally {
      await rm(join(root, 'bad'), { recursive: true, force: true })
    }
  })

  it('reports a file that cannot be read as an issue, not a crash', async () => {
    // The scan reads with sync calls in batches (fs-read.ts: far cheaper than the thread pool for 10,000 files).
    const realOpen = fs.openSync
    const spy = vi.spyOn(fs, 'openSync').mockImplementation(((path: unknown, ...rest: unknown[]) => {
      if (String(path).endsWith('b.script.json')) throw Object.assign(new Error('EACCES: permission denied, open'), { code: 'EACCES' })
      if (String(path).endsWith('intro.script.json')) throw Object.assign(new Error('ENOENT: no such file'), { code: 'ENOENT' })
      return (realOpen as (...args: unknown[]) => number)(path, ...rest)
    }) as typeof fs.openSync)
    try {
      const error = (await scanScripts(makeOptions({ root, exclude: ['**/node_modules/**', 'drafts/**'] })).catch(e => e)) as ScriptError
      expect(error).toBeInstanceOf(ScriptError)
      expect(error.issues).toEqual([
        { script: 'a/intro.script.json', where: '/', message: 'could not read the file: it no longer exists (ENOENT)' },
        { script: 'b.script.json', where: '/', message: 'could not read the file: permission denied (EACCES)' },
      ])
    } finally {
      spy.mockRestore()
    }
  })
})
