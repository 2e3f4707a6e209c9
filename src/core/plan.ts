import { keyTextAround, sha256 } from './key'
import { defaultProvider, type ProviderDefinition } from './providers'
import type { RequestFields } from './providers/models'
import type { Store } from './store'
import type { AssetRequest, CacheHit, ImageSettings, ProviderOptions, ResolvedOptions, ScriptIssue } from './types'

/** Per-asset settings a script gave, already validated against the schema. */
export type Overrides = Partial<Omit<ImageSettings, 'provider'>>

/** One asset occurrence as a script writes it. */
export interface Occurrence {
  script: string
  pointer: string
  id: string
  /** As written (trimmed), without prefix or suffix. */
  prompt: string
  overrides: Overrides
}

export type RequestOptions = Pick<ResolvedOptions, 'promptPrefix' | 'promptSuffix' | 'defaults'> & Partial<Pick<ResolvedOptions, 'provider'>>

/** An asset's request, or why its model cannot take its settings (bad input, before any call); notes to say once. */
export type Planned = { request: AssetRequest; issues?: undefined; notes: string[] } | { request?: undefined; issues: ScriptIssue[]; notes: string[] }

/**
 * The one rule for what an image is: the final prompt (prefix + prompt + suffix) and the settings (global, then per
 * asset) as the model's profile turns them into a request: exactly what is sent and changes the pixels, hashed into
 * the cache key. A setting the model cannot take is an issue at the asset (or at its own key, when the script set it).
 */
export function toRequest(asset: Occurrence, options: RequestOptions, provider: ProviderDefinition = options.provider ?? defaultProvider): Planned {
  // Most occurrences share their settings (none of their own, or the same few): their plan and the canonical text
  // around the prompt are worked out once per options, provider and overrides (10,000 scripts: 100,000 occurrences).
  const memo = memoOf(options, provider)
  const overridesText = JSON.stringify(asset.overrides)
  let shared = memo.get(overridesText)
  if (!shared) {
    const planned = planSettings(asset, options, provider)
    if (!planned.request) return planned
    if (memo.size >= MEMO_LIMIT) memo.clear()
    memo.set(overridesText, (shared = { ...planned.request, keys: new Map() }))
  }
  const prompt = options.promptPrefix + asset.prompt + options.promptSuffix
  let key = shared.keys.get(prompt)
  if (key === undefined) {
    key = sha256(shared.before + JSON.stringify(prompt) + shared.after)
    if (shared.keys.size >= MEMO_LIMIT) shared.keys.clear()
    shared.keys.set(prompt, key)
  }
  return { request: { script: asset.script, pointer: asset.pointer, id: asset.id, prompt, settings: { ...shared.settings }, key }, notes: shared.notes }
}

/** Bound on each memo (overrides per options, prompts per overrides), so memory stays flat however many scripts. */
const MEMO_LIMIT = 50_000
type Shared = { settings: ImageSettings; notes: string[]; before: string; after: string; keys: Map<string, string> }
const memos = new WeakMap<RequestOptions, WeakMap<ProviderDefinition, Map<string, Shared>>>()

function memoOf(options: RequestOptions, provider: ProviderDefinition): Map<string, Shared> {
  let byProvider = memos.get(options)
  if (!byProvider) memos.set(options, (byProvider = new WeakMap()))
  let memo = byProvider.get(provider)
  if (!memo) byProvider.set(provider, (memo = new Map()))
  return memo
}

/** An occurrence's settings as planned, and the canonical key text before and after its prompt (see cacheKey). */
function planSettings(asset: Occurrence, options: RequestOptions, provider: ProviderDefinition): { request: Omit<Shared, 'keys'>; issues?: undefined; notes: string[] } | { request?: undefined; issues: ScriptIssue[]; notes: string[] } {
  const merged = { ...options.defaults, ...asset.overrides }
  const providerOptions = mergeProviderOptions(options.defaults.providerOptions, asset.overrides.providerOptions)
  if (providerOptions) merged.providerOptions = providerOptions
  const model = merged.model ?? provider.defaultModel
  const planned = provider.plan(model, merged)
  if (!planned.ok) {
    const issues = planned.refusals.map(r => {
      const own = Object.hasOwn(asset.overrides, r.setting)
      return { script: asset.script, where: own ? `${asset.pointer}/${r.setting}` : asset.pointer, message: own ? r.message : `${r.message} (set by the option "${r.setting}")` }
    })
    return { issues, notes: [] }
  }
  const settings = toSettings(provider.id, model, planned.fields, planned.expectedSize ?? merged)
  const [before, after] = keyTextAround(settings)
  return { request: { settings, notes: planned.notes, before, after }, notes: planned.notes }
}

/**
 * The request fields in our names. Only what is sent is present: the key of a FLUX.1 [schnell] image is exactly
 * today's ({ provider, model, width, height, steps, seed?, outputFormat }), so existing caches keep working.
 */
function toSettings(provider: string, model: string, f: RequestFields, size: { width: number; height: number }): ImageSettings {
  const settings: ImageSettings = { provider, model, width: f.width ?? size.width, height: f.height ?? size.height, outputFormat: f.output_format }
  // AI SDK models are sent no format: no such field, rather than one that is undefined.
  if (f.output_format === undefined) delete settings.outputFormat
  if (f.steps !== undefined) settings.steps = f.steps
  if (f.seed !== undefined) settings.seed = f.seed
  if (f.guidance_scale !== undefined) settings.guidance = f.guidance_scale
  if (f.negative_prompt !== undefined) settings.negativePrompt = f.negative_prompt
  if (f.aspect_ratio !== undefined) settings.aspectRatio = f.aspect_ratio
  if (f.prompt_upsampling !== undefined) settings.promptUpsampling = f.prompt_upsampling
  if (f.provider_options !== undefined) settings.providerOptions = f.provider_options
  return settings
}

/** Global provider options, then an asset's: per provider name, the asset's entries win (`{ fal: { ...global, ...asset } }`). */
export function mergeProviderOptions(global: ProviderOptions | undefined, asset: ProviderOptions | undefined): ProviderOptions | undefined {
  if (!global || !asset) return asset ?? global
  const merged: ProviderOptions = { ...global }
  for (const [name, values] of Object.entries(asset)) merged[name] = { ...global[name], ...values }
  return merged
}

/** A run's work, before any rule or call: the unique images, which of them the cache has, which it lacks. */
export interface Plan {
  /** Every asset occurrence, in script order. */
  requests: AssetRequest[]
  /** One request per cache key (the first occurrence): the same prompt and settings in two places is one image. */
  unique: Map<string, AssetRequest>
  /** Verified cache entries by key. */
  cached: Map<string, CacheHit>
  /** Unique requests without a cache entry, in order. */
  missing: AssetRequest[]
}

/**
 * Dedupes the requests by key and looks each key up once. `onMissing` hears of the first key without an entry as soon
 * as it is found, while the others are still being looked up (the engine starts loading its provider there).
 */
export async function plan(requests: AssetRequest[], store: Pick<Store, 'get'>, onMissing?: (request: AssetRequest) => void): Promise<Plan> {
  const unique = new Map<string, AssetRequest>()
  for (const request of requests) if (!unique.has(request.key)) unique.set(request.key, request)
  const keys = [...unique.keys()]
  let told = !onMissing
  const hits = await Promise.all(
    keys.map(key =>
      store.get(key).then(hit => {
        if (!hit && !told) (told = true), onMissing!(unique.get(key)!)
        return hit
      }),
    ),
  )
  const cached = new Map<string, CacheHit>()
  keys.forEach((key, i) => hits[i] && cached.set(key, hits[i]))
  return { requests, unique, cached, missing: [...unique.values()].filter(r => !cached.has(r.key)) }
}
