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
  /**
   * Whether calls may be made at all (policy's "no key" row), before loading anything. An AI SDK provider reads its
   * key itself at call time (from its variable or its own `apiKey`): it says `true`, and a missing key comes back as
   * `FLUX_NO_KEY` from the first call, before any request is sent.
   */
  canCall(options: Pick<ResolvedOptions, 'apiKey'>): boolean
  load(options: ResolvedOptions): Promise<ImageProvider>
}

export const together: ProviderDefinition = {
  id: 'together',
  defaultModel: DEFAULT_MODEL,
  plan: (model, settings) =>
    settings.providerOptions === undefined
      ? planRequest(model, settings)
      : { ok: false, refusals: [{ setting: 'providerOptions', message: 'providerOptions are sent to an AI SDK model only, and the `model` option is a Together model: remove them, or set `model` to an AI SDK image model' }] },
  canCall: options => !!options.apiKey,
  // Loaded on first use: undici takes ~100 ms to import, a tenth of a warm build that never calls the API.
  load: async options => (await import('./together')).createTogetherProvider(options),
}

/** The provider a run uses unless the `model` option is an AI SDK model (ai-sdk-models.ts `aiSdkDefinition`). */
export const defaultProvider = together

export { DEFAULT_MODEL }
