import { isImageModel } from './providers/ai-sdk-models'
import type { FluxAssetsOptions } from './types'

/**
 * Every option, once: its type, its allowed values and its default. resolveOptions() validates with it, a script's
 * per-asset settings are validated with it (same rules, same words), and the unknown-option check and the CLI's
 * flags are built from it, so an option added here is covered everywhere.
 */
export type OptionSpec = (
  | { type: 'integer'; min: number; max: number; multipleOf?: number; default?: number }
  | { type: 'number'; min: number; max: number; default?: number }
  | { type: 'enum'; values: readonly string[]; default: string }
  | { type: 'string'; nonEmpty?: boolean; default?: string }
  | { type: 'boolean'; default?: boolean }
  | { type: 'strings' }
  /** An array of distinct values from a list (`formats`). */
  | { type: 'enums'; values: readonly string[]; default: readonly string[] }
  /** An array of integers in a range (`widths`). */
  | { type: 'integers'; min: number; max: number; default: readonly number[] }
  /** An object of integers in a range, by key from a list (`quality`); missing keys take their default. */
  | { type: 'integerMap'; keys: readonly string[]; min: number; max: number; default: Readonly<Record<string, number>> }
  | { type: 'function' }
  | { type: 'object' }
  /** A model id (non-empty string) or an AI SDK image model object, kept as it is. */
  | { type: 'model' }
  /** `{ provider: { option: JSON value } }`: JSON only, since it is hashed into the cache key. */
  | { type: 'providerOptions' }
) & {
  /** Also settable per asset in a script (`{ "prompt": "…", "width": 512 }`). */
  perAsset?: boolean
  /** Changes the pixels, so it is part of the cache key. */
  keyed?: boolean
  /**
   * The CLI flag `--<kebab-name>`: its argument's name in the help (none for a boolean) and what it does. Every
   * keyed option has one, so the CLI can compute the same keys as a build.
   */
  cli?: { arg?: string; doc: string }
}

export const OPTIONS = {
  root: { type: 'string', nonEmpty: true, cli: { arg: '<dir>', doc: 'Project root (default: current directory)' } },
  include: { type: 'strings', cli: { arg: '<glob>', doc: 'Script files, repeatable (default: **/*.script.json)' } },
  exclude: { type: 'strings', cli: { arg: '<glob>', doc: 'Globs to skip, repeatable' } },
  cacheDir: { type: 'string', nonEmpty: true, default: '.flux-cache', cli: { arg: '<dir>', doc: 'Cache folder (default: .flux-cache)' } },
  apiKey: { type: 'string' },
  baseURL: { type: 'string', nonEmpty: true, cli: { arg: '<url>', doc: 'API base URL (default: TOGETHER_BASE_URL, else Together)' } },
  width: { type: 'integer', min: 8, max: 4096, multipleOf: 8, default: 1024, perAsset: true, keyed: true, cli: { arg: '<px>', doc: 'Image width (default: 1024)' } },
  height: { type: 'integer', min: 8, max: 4096, multipleOf: 8, default: 768, perAsset: true, keyed: true, cli: { arg: '<px>', doc: 'Image height (default: 768)' } },
  steps: { type: 'integer', min: 1, max: 100, perAsset: true, keyed: true, cli: { arg: '<n>', doc: "Steps (default: the model's own)" } },
  seed: { type: 'integer', min: 0, max: Number.MAX_SAFE_INTEGER, perAsset: true, keyed: true, cli: { arg: '<n>', doc: 'Fixed seed for every asset' } },
  model: { type: 'model', perAsset: true, keyed: true, cli: { arg: '<id>', doc: 'Model (default: black-forest-labs/FLUX.2-dev)' } },
  guidance: { type: 'number', min: 0, max: 100, perAsset: true, keyed: true, cli: { arg: '<n>', doc: 'guidance_scale, for models that take it' } },
  negativePrompt: { type: 'string', perAsset: true, keyed: true, cli: { arg: '<text>', doc: 'Negative prompt, for models that take it' } },
  aspectRatio: { type: 'string', nonEmpty: true, perAsset: true, keyed: true, cli: { arg: '<w:h>', doc: 'For models sized by aspect ratio (Kontext)' } },
  promptUpsampling: { type: 'boolean', perAsset: true, keyed: true, cli: { doc: 'Let FLUX.2 [pro] rewrite prompts' } },
  outputFormat: { type: 'enum', values: ['jpeg', 'png'], default: 'jpeg', perAsset: true, keyed: true, cli: { arg: '<fmt>', doc: 'jpeg (default) or png' } },
  providerOptions: { type: 'providerOptions', perAsset: true, keyed: true, cli: { arg: '<json>', doc: "AI SDK providers' own options, as JSON" } },
  responseFormat: { type: 'enum', values: ['base64', 'url'], default: 'base64', cli: { arg: '<fmt>', doc: 'base64 (default) or url' } },
  promptPrefix: { type: 'string', default: '', keyed: true, cli: { arg: '<text>', doc: 'Prepended to every prompt' } },
  promptSuffix: { type: 'string', default: '', keyed: true, cli: { arg: '<text>', doc: 'Appended to every prompt' } },
  concurrency: { type: 'integer', min: 1, max: 64, default: 4, cli: { arg: '<n>', doc: 'Requests at once (default: 4)' } },
  retries: { type: 'integer', min: 0, max: 20, default: 4, cli: { arg: '<n>', doc: 'Retries per image after the first attempt (default: 4)' } },
  maxRetryDelay: { type: 'integer', min: 0, max: 3_600_000, default: 60_000, cli: { arg: '<ms>', doc: 'Longest retry-after waited for, in all (default: 60000)' } },
  timeout: { type: 'integer', min: 1, max: 3_600_000, default: 120_000, cli: { arg: '<ms>', doc: 'Per-request timeout (default: 120000)' } },
  maxImageBytes: { type: 'integer', min: 1, max: 2 ** 31, default: 25 * 1024 * 1024, cli: { arg: '<bytes>', doc: 'Largest image accepted (default: 25 MB)' } },
  strict: { type: 'boolean', default: false, cli: { doc: 'Exit 1 if any image is a placeholder or failed' } },
  apiFailure: { type: 'enum', values: ['fail', 'placeholder'], default: 'fail', cli: { arg: '<mode>', doc: 'fail (default) or placeholder: what an account-level failure does' } },
  offline: { type: 'boolean', default: false, cli: { doc: 'Make no API call; missing images become placeholders' } },
  maxNewImages: { type: 'integer', min: 0, max: Number.MAX_SAFE_INTEGER, default: 100, cli: { arg: '<n>', doc: 'Stop before calling when more would be generated (default: 100)' } },
  maxCost: { type: 'number', min: 0, max: 1_000_000, cli: { arg: '<usd>', doc: 'Stop before calling when the estimate is over this (default: no cap)' } },
  dts: { type: 'boolean', default: true },
  signal: { type: 'object' },
  logger: { type: 'object' },
  onProgress: { type: 'function' },
  // Web variants (variants.ts): not keyed, they change what is made from an image, not the image. A variant's own
  // key is its source's sha256 plus these settings plus the encoder's version.
  formats: { type: 'enums', values: ['webp', 'avif'], default: ['webp'], perAsset: true },
  widths: { type: 'integers', min: 16, max: 8192, default: [], perAsset: true },
  quality: { type: 'integerMap', keys: ['webp', 'avif'], min: 1, max: 100, default: { webp: 75, avif: 50 }, perAsset: true },
  blur: { type: 'boolean', default: true, perAsset: true },
} as const satisfies { [K in keyof Required<FluxAssetsOptions>]: OptionSpec }

export type OptionName = keyof typeof OPTIONS

/** Options a script may set per asset, in the order error messages list them. */
export const PER_ASSET = (Object.keys(OPTIONS) as OptionName[]).filter(name => (OPTIONS[name] as OptionSpec).perAsset)

/** What is wrong with a value, as `must be …, got …`; `undefined` when it is fine (or absent). */
export function problem(spec: OptionSpec, value: unknown): string | undefined {
  if (value === undefined) return undefined
  const got = `got ${typeof value === 'number' ? value : JSON.stringify(value) ?? typeof value}`
  switch (spec.type) {
    case 'integer': {
      const n = value as number
      const ok = Number.isInteger(n) && n >= spec.min && n <= spec.max && (!spec.multipleOf || n % spec.multipleOf === 0)
      return ok ? undefined : `must be ${spec.multipleOf ? `a multiple of ${spec.multipleOf}` : 'an integer'} from ${spec.min} to ${spec.max}, ${got}`
    }
    case 'number': {
      const ok = typeof value === 'number' && Number.isFinite(value) && value >= spec.min && value <= spec.max
      return ok ? undefined : `must be a number from ${spec.min} to ${spec.max}, ${got}`
    }
    case 'enum':
      return spec.values.includes(value as string) ? undefined : `must be one of ${spec.values.join(', ')}, ${got}`
    case 'string':
      if (typeof value !== 'string') return `must be a string, ${got}`
      return spec.nonEmpty && value.trim() === '' ? 'must be a non-empty string' : undefined
    case 'boolean':
      return typeof value === 'boolean' ? undefined : `must be true or false, ${got}`
    case 'strings':
      return typeof value === 'string' || (Array.isArray(value) && value.every(v => typeof v === 'string')) ? undefined : `must be a string or an array of strings, ${got}`
    case 'enums': {
      const ok = Array.isArray(value) && value.every(v => spec.values.includes(v)) && new Set(value).size === value.length
      return ok ? undefined : `must be an array of distinct values from ${spec.values.join(', ')}, ${got}`
    }
    case 'integers': {
      const ok = Array.isArray(value) && value.every(n => Number.isInteger(n) && n >= spec.min && n <= spec.max)
      return ok ? undefined : `must be an array of integers from ${spec.min} to ${spec.max}, ${got}`
    }
    case 'integerMap': {
      const ok =
        typeof value === 'object' && value !== null && !Array.isArray(value) &&
        Object.entries(value).every(([k, n]) => spec.keys.includes(k) && Number.isInteger(n) && n >= spec.min && n <= spec.max)
      return ok ? undefined : `must be an object of ${spec.keys.join(', ')} with integers from ${spec.min} to ${spec.max}, ${got}`
    }
    case 'function':
      return typeof value === 'function' ? undefined : `must be a function, ${got}`
    case 'object':
      return typeof value === 'object' && value !== null ? undefined : `must be an object, ${got}`
    case 'model':
      if (typeof value === 'string') return value.trim() === '' ? 'must be a non-empty string' : undefined
      if (typeof value !== 'object' || value === null) return `must be a string, ${got}`
      // An object: only an AI SDK image model (never in a script: JSON has no functions).
      return isImageModel(value) ? undefined : `must be a model id or an AI SDK image model (e.g. fal.image('fal-ai/flux/schnell')), got an object that is neither`
    case 'providerOptions': {
      const ok = isPlainObject(value) && Object.values(value).every(v => isPlainObject(v) && isJson(v))
      return ok ? undefined : `must be an object of provider names to objects of JSON values (e.g. { "fal": { "numInferenceSteps": 4 } }), got ${isJson(value) ? got : 'something that is not JSON'}`
    }
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && [Object.prototype, null].includes(Object.getPrototypeOf(value))
}

/** Strings, finite numbers, booleans, null, arrays and plain objects of them: what hashes and stores as it is. */
function isJson(value: unknown, depth = 0): boolean {
  if (depth > 32) return false
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return true
  if (typeof value === 'number') return Number.isFinite(value)
  if (Array.isArray(value)) return value.every(v => isJson(v, depth + 1))
  return isPlainObject(value) && Object.values(value).every(v => isJson(v, depth + 1))
}
