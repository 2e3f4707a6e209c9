import type { ResolvedOptions } from '../types'
import type { ImageProvider } from './contract'
import { DEFAULT_MODEL, planRequest, type RequestPlan, type RequestSettings } from './models'

/**
 * A provider as the stages before any call see it: light (no HTTP client), so planning and keying never load
 * undici. `load()` brings the HTTP side in when an image must actually be generated.
 */
export interface ProviderDefinition {
  /** Part of every cache key. */
  id: string
  defaultModel: string
  /** What to send for a model and the user's settings, or what the model cannot take (profiles: models.ts). */
  plan(model: string, settings: RequestSettings): RequestPlan
  load(options: ResolvedOptions): Promise<ImageProvider>
}

export const together: ProviderDefinition = {
  id: 'together',
  defaultModel: DEFAULT_MODEL,
  plan: planRequest,
  // Loaded on first use: undici takes ~100 ms to import, a tenth of a warm build that never calls the API.
  load: async options => (await import('./together')).createTogetherProvider(options),
}

/** The provider a run uses. One today; the AI SDK adapter (#15) adds more here. */
export const defaultProvider = together

export { DEFAULT_MODEL }
