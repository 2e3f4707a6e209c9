import { describe, expect, it } from 'vitest'
import { CACHE_VERSION, cacheKey, canonicalJson, keyTextAround, sha256 } from '../src/core/key'
import { resolveOptions } from '../src/core/options'
import { parseScript } from '../src/core/scan'
import type { ImageSettings } from '../src/core/types'

const BASE: ImageSettings = { provider: 'together', model: 'black-forest-labs/FLUX.1-schnell', width: 1024, height: 768, steps: 4, outputFormat: 'jpeg' }
const PROMPT = 'A professional businessman in a suit'

describe('canonicalJson', () => {
  it('is the same text whatever the key order, at every depth', () => {
    const a = { b: 1, a: { y: [1, { q: 2, p: 1 }], x: 'x' }, c: null }
    const b = { c: null, a: { x: 'x', y: [1, { p: 1, q: 2 }] }, b: 1 }
    expect(canonicalJson(a)).toBe(canonicalJson(b))
    expect(canonicalJson(a)).toBe('{"a":{"x":"x","y":[1,{"p":1,"q":2}]},"b":1,"c":null}')
  })

  it('drops undefined values but keeps array order', () => {
    expect(canonicalJson({ a: undefined, b: 2 })).toBe(canonicalJson({ b: 2 }))
    expect(canonicalJson([2, 1])).not.toBe(canonicalJson([1, 2]))
  })

  it('escapes strings like JSON', () => {
    expect(canonicalJson({ 'k"': 'a\nb' })).toBe('{"k\\"":"a\\nb"}')
  })
})

describe('cacheKey', () => {
  it('is a sha256 hex of the canonical settings, prompt and format version', () => {
    const key = cacheKey(PROMPT, BASE)
    expect(key).toMatch(/^[0-9a-f]{64}$/)
    expect(key).toBe(sha256(canonicalJson({ v: CACHE_VERSION, prompt: PROMPT, ...BASE })))
  })

  it('does not depend on the order of the settings object', () => {
    const reordered = Object.fromEntries(Object.entries(BASE).reverse()) as unknown as ImageSettings
    expect(cacheKey(PROMPT, reordered)).toBe(cacheKey(PROMPT, BASE))
  })

  it('changes with every setting that changes the pixels', () => {
    const variants: Array<[string, ImageSettings]> = [
      ['provider', { ...BASE, provider: 'other' }],
      ['model', { ...BASE, model: 'black-forest-labs/FLUX.1-dev' }],
      ['width', { ...BASE, width: 1032 }],
      ['height', { ...BASE, height: 776 }],
      ['steps', { ...BASE, steps: 5 }],
      ['seed', { ...BASE, seed: 1 }],
      ['outputFormat', { ...BASE, outputFormat: 'png' }],
    ]
    const base = cacheKey(PROMPT, BASE)
    const keys = new Set([base])
    for (const [name, settings] of variants) {
      const key = cacheKey(PROMPT, settings)
      expect(key, name).not.toBe(base)
      keys.add(key)
    }
    expect(keys.size).toBe(variants.length + 1)
    // Two different seeds are two images, and seed 0 is not "no seed".
    expect(cacheKey(PROMPT, { ...BASE, seed: 0 })).not.toBe(base)
    expect(cacheKey(PROMPT, { ...BASE, seed: 2 })).not.toBe(cacheKey(PROMPT, { ...BASE, seed: 1 }))
  })

  it('changes with the prompt, even by one character or whitespace', () => {
    expect(cacheKey(`${PROMPT}.`, BASE)).not.toBe(cacheKey(PROMPT, BASE))
    expect(cacheKey(`${PROMPT} `, BASE)).not.toBe(cacheKey(PROMPT, BASE))
  })
})

describe('keyTextAround (the memoized keying of plan.ts)', () => {
  const settings: ImageSettings[] = [
    BASE,
    { ...BASE, seed: 7, guidance: 3.5, negativePrompt: '"prompt":"x" and \\u0000', aspectRatio: '16:9', promptUpsampling: true },
    { provider: 'openai', model: 'gpt-image-1', width: 1024, height: 1024, providerOptions: { openai: { quality: 'high', prompt: 'nested' } } },
  ]
  const prompts = [PROMPT, 'quotes " and \\ backslash', 'unicode ✓ 🦊 and a NUL \u0000', '']
  it('cuts the canonical text so that before + the quoted prompt + after is what cacheKey hashes', () => {
    for (const s of settings) {
      const [before, after] = keyTextAround(s)
      for (const prompt of prompts) expect(sha256(before + JSON.stringify(prompt) + after)).toBe(cacheKey(prompt, s))
    }
  })
  it('gives every occurrence of a script the key cacheKey gives it, with or without settings of its own, twice over', () => {
    const options = resolveOptions({ root: '/tmp', promptPrefix: 'Pre: ', seed: 3 }, '/tmp', { env: {} })
    const script = JSON.stringify({ visual_track: [{ assets: { a: 'one', b: 'one', c: { prompt: 'one', seed: 9 }, d: { prompt: 'two', seed: 9 }, e: 'two' } }] })
    for (let round = 0; round < 2; round++) {
      const { requests } = parseScript(script, 's.script.json', options)
      expect(requests).toHaveLength(5)
      for (const r of requests) expect(r.key).toBe(cacheKey(r.prompt, r.settings))
      expect(requests[2]!.settings.seed).toBe(9)
      expect(requests[0]!.settings.seed).toBe(3)
      expect(new Set(requests.map(r => r.key)).size).toBe(4)
      // Each request has its own settings object: changing one never changes another's.
      expect(requests[0]!.settings).not.toBe(requests[1]!.settings)
    }
  })
})

describe('cache key of parsed assets', () => {
  const doc = (assets: Record<string, unknown>) => JSON.stringify({ visual_track: [{ assets }] })
  const keyOf = (assets: Record<string, unknown>, user: Parameters<typeof resolveOptions>[0] = {}, script = 'a.script.json') => {
    const options = resolveOptions({ root: '/nonexistent-flux-root', ...user }, undefined, { env: {} })
    const { requests, issues } = parseScript(doc(assets), script, options)
    expect(issues).toEqual([])
    expect(requests).toHaveLength(1)
    return requests[0]!.key
  }
  const base = () => keyOf({ avatar: PROMPT })

  it('does not change with the asset id, the script path or the API key', () => {
    expect(keyOf({ someone_else: PROMPT })).toBe(base())
    expect(keyOf({ '../../etc/passwd': PROMPT })).toBe(base())
    expect(keyOf({ avatar: PROMPT }, {}, 'deep/other/place.script.json')).toBe(base())
    expect(keyOf({ avatar: PROMPT }, { apiKey: 'sk-test-SENTINEL-1234567890' })).toBe(base())
    expect(keyOf({ avatar: PROMPT }, { apiKey: 'sk-test-OTHER-0987654321' })).toBe(base())
    expect(keyOf({ avatar: PROMPT }, { baseURL: 'http://127.0.0.1:1/v1' })).toBe(base())
  })

  it('changes with the prompt prefix and suffix (the final prompt is hashed)', () => {
    const prefixed = keyOf({ avatar: PROMPT }, { promptPrefix: 'Watercolour. ' })
    const suffixed = keyOf({ avatar: PROMPT }, { promptSuffix: ', watercolour' })
    expect(prefixed).not.toBe(base())
    expect(suffixed).not.toBe(base())
    expect(prefixed).not.toBe(suffixed)
    // The same final prompt written either way is the same image.
    expect(keyOf({ avatar: PROMPT }, { promptPrefix: 'Watercolour. ' })).toBe(keyOf({ avatar: `Watercolour. ${PROMPT}` }))
  })

  it('changes with each global option and each per-asset override that changes the pixels', () => {
    const globals = [{ model: 'black-forest-labs/FLUX.1-dev' }, { width: 512 }, { height: 512 }, { steps: 8 }, { seed: 7 }, { outputFormat: 'png' as const }]
    const keys = new Set([base()])
    for (const g of globals) {
      const key = keyOf({ avatar: PROMPT }, g)
      expect(key, JSON.stringify(g)).not.toBe(base())
      keys.add(key)
      // A per-asset override equal to the global option is the same image.
      expect(keyOf({ avatar: { prompt: PROMPT, ...g } }), JSON.stringify(g)).toBe(key)
    }
    expect(keys.size).toBe(globals.length + 1)
  })

  it('does not change with options that do not touch the pixels', () => {
    for (const user of [{ responseFormat: 'url' as const }, { concurrency: 1 }, { retries: 0 }, { timeout: 5 }, { cacheDir: 'elsewhere' }, { maxNewImages: 0 }]) {
      expect(keyOf({ avatar: PROMPT }, user), JSON.stringify(user)).toBe(base())
    }
  })
})

/**
 * Golden keys: literals computed by the code of 2026-12-02 (v0.1.0), before any refactor or model change. Users'
 * caches are addressed by these exact keys: if one of these fails, every cached image of a project pinned to
 * FLUX.1-schnell would be orphaned and paid for again. Never update a literal to make this pass.
 */
describe('golden cache keys (existing caches keep working)', () => {
  const SCRIPT = JSON.stringify({
    visual_track: [
      {
        assets: {
          avatar: 'A professional businessman in a suit',
          prop: { prompt: 'A laptop showing code', seed: 42, outputFormat: 'png', width: 512, height: 512, steps: 8 },
        },
      },
    ],
  })
  const keys = (user: Parameters<typeof resolveOptions>[0]) => {
    const options = resolveOptions({ root: '/nonexistent-flux-root', ...user }, undefined, { env: {} })
    const { requests, issues } = parseScript(SCRIPT, 'a.script.json', options)
    expect(issues).toEqual([])
    return Object.fromEntries(requests.map(r => [r.id, r.key]))
  }

  it('FLUX.1-schnell pinned, no steps set: the keys of today (steps 4 keyed by default)', () => {
    expect(keys({ model: 'black-forest-labs/FLUX.1-schnell' })).toEqual({
      avatar: 'da835bfaa1e0d7b06f7e228e72f26c916d0b65aa57da2f561bd9eba3b4a06b48',
      prop: '5f4a474dd5e2448bca2b0dbdab177c85dda9cd6f88df67d60ec690e815b177f0',
    })
  })

  it('with prompt prefix, suffix and a global seed', () => {
    expect(keys({ model: 'black-forest-labs/FLUX.1-schnell', promptPrefix: 'Style: ', promptSuffix: ', 4k', seed: 7 })).toEqual({
      avatar: 'bcd272f4a3e403507405a8fe154f8c872259804a58facc7379a43f09211e2345',
      prop: '405cb4b8302a86164f9ea3556ba77fb2e1bb6c2be894b3853d2819a2a1411321',
    })
  })
})
