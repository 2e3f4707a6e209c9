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
  | { type: 'function' }
  | { type: 'object' }
) & {
  /** Also settable per asset in a script (`{ "prompt": "…", "width": 512 }`). */
  perAsset?: boolean
  /** Changes the pixels, so it is part of the cache key. */
  keyed?: boolean
}

export const OPTIONS = {
  root: { type: 'string', nonEmpty: true },
  include: { type: 'strings' },
  exclude: { type: 'strings' },
  cacheDir: { type: 'string', nonEmpty: true, default: '.flux-cache' },
  apiKey: { type: 'string' },
  baseURL: { type: 'string', nonEmpty: true },
  width: { type: 'integer', min: 8, max: 4096, multipleOf: 8, default: 1024, perAsset: true, keyed: true },
  height: { type: 'integer', min: 8, max: 4096, multipleOf: 8, default: 768, perAsset: true, keyed: true },
  steps: { type: 'integer', min: 1, max: 100, perAsset: true, keyed: true },
  seed: { type: 'integer', min: 0, max: Number.MAX_SAFE_INTEGER, perAsset: true, keyed: true },
  model: { type: 'string', nonEmpty: true, perAsset: true, keyed: true },
  guidance: { type: 'number', min: 0, max: 100, perAsset: true, keyed: true },
  negativePrompt: { type: 'string', perAsset: true, keyed: true },
  aspectRatio: { type: 'string', nonEmpty: true, perAsset: true, keyed: true },
  promptUpsampling: { type: 'boolean', perAsset: true, keyed: true },
  outputFormat: { type: 'enum', values: ['jpeg', 'png'], default: 'jpeg', perAsset: true, keyed: true },
  responseFormat: { type: 'enum', values: ['base64', 'url'], default: 'base64' },
  promptPrefix: { type: 'string', default: '', keyed: true },
  promptSuffix: { type: 'string', default: '', keyed: true },
  concurrency: { type: 'integer', min: 1, max: 64, default: 4 },
  retries: { type: 'integer', min: 0, max: 20, default: 4 },
  maxRetryDelay: { type: 'integer', min: 0, max: 3_600_000, default: 60_000 },
  timeout: { type: 'integer', min: 1, max: 3_600_000, default: 120_000 },
  maxImageBytes: { type: 'integer', min: 1, max: 2 ** 31, default: 25 * 1024 * 1024 },
  strict: { type: 'boolean', default: false },
  apiFailure: { type: 'enum', values: ['fail', 'placeholder'], default: 'fail' },
  offline: { type: 'boolean', default: false },
  maxNewImages: { type: 'integer', min: 0, max: Number.MAX_SAFE_INTEGER, default: 100 },
  maxCost: { type: 'number', min: 0, max: 1_000_000 },
  dts: { type: 'boolean', default: true },
  signal: { type: 'object' },
  logger: { type: 'object' },
  onProgress: { type: 'function' },
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
    case 'function':
      return typeof value === 'function' ? undefined : `must be a function, ${got}`
    case 'object':
      return typeof value === 'object' && value !== null ? undefined : `must be an object, ${got}`
  }
}
