import { cacheKey } from './key'
import type { Store } from './store'
import type { AssetRequest, CacheHit, ImageSettings, ResolvedOptions } from './types'

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

export type RequestOptions = Pick<ResolvedOptions, 'promptPrefix' | 'promptSuffix' | 'defaults'>

/**
 * The one rule for what an image is: the final prompt (prefix + prompt + suffix) and the settings (global, then per
 * asset), hashed into its cache key. Whatever changes the pixels is in here; nothing else is.
 */
export function toRequest(asset: Occurrence, options: RequestOptions): AssetRequest {
  const settings = { provider: 'together', ...options.defaults, ...asset.overrides } as ImageSettings
  if (settings.seed === undefined) delete settings.seed
  const prompt = options.promptPrefix + asset.prompt + options.promptSuffix
  return { script: asset.script, pointer: asset.pointer, id: asset.id, prompt, settings, key: cacheKey(prompt, settings) }
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

/** Dedupes the requests by key and looks each key up once. */
export async function plan(requests: AssetRequest[], store: Pick<Store, 'get'>): Promise<Plan> {
  const unique = new Map<string, AssetRequest>()
  for (const request of requests) if (!unique.has(request.key)) unique.set(request.key, request)
  const keys = [...unique.keys()]
  const hits = await Promise.all(keys.map(key => store.get(key)))
  const cached = new Map<string, CacheHit>()
  keys.forEach((key, i) => hits[i] && cached.set(key, hits[i]))
  return { requests, unique, cached, missing: [...unique.values()].filter(r => !cached.has(r.key)) }
}
