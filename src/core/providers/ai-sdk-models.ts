// Any AI SDK image model as the provider (#15), as the stages before a call see it: no `ai` import here. What is
// sent is `generateImage({ prompt, size | aspectRatio, seed, providerOptions })` (ai 6, generate-image.ts), so that
// is what is planned and keyed; the model's `provider` and `modelId` are the key's provider and model.
//
// Key variables, from each provider's source (vercel/ai packages/<name>/src/<name>-provider.ts, `loadApiKey`'s
// `environmentVariableName`; fal: `loadFalApiKey` reads FAL_API_KEY, then FAL_KEY). Provider names: the `provider`
// of the model each creates (`fal.image`, `replicate`, `black-forest-labs.image`, `openai.image`, `<name>.image`).
import type { AiSdkImageModel, ResolvedOptions } from '../types'
import type { ImagePrice } from './catalog'
import type { ProviderDefinition } from './index'
import type { Refusal, RequestFields, RequestPlan, RequestSettings } from './models'

/** An AI SDK image model, told from a model id or anything else. */
export function isImageModel(value: unknown): value is AiSdkImageModel {
  const m = value as Partial<AiSdkImageModel> | null
  return typeof m === 'object' && m !== null && typeof m.doGenerate === 'function' && typeof m.provider === 'string' && typeof m.modelId === 'string' && typeof m.specificationVersion === 'string'
}

/** `fal.image` → `fal`: the provider's name, as `providerOptions` and the tables below use it. */
export function familyOf(provider: string): string {
  return provider.split('.')[0]!.trim()
}

/** `fal.image fal-ai/flux/schnell`. */
export function describeModel(model: Pick<AiSdkImageModel, 'provider' | 'modelId'>): string {
  return `${model.provider} ${model.modelId}`
}

const KEY_NAMES: Readonly<Record<string, readonly string[]>> = {
  fal: ['FAL_API_KEY', 'FAL_KEY'],
  replicate: ['REPLICATE_API_TOKEN'],
  'black-forest-labs': ['BFL_API_KEY'],
  openai: ['OPENAI_API_KEY'],
  azure: ['AZURE_API_KEY'],
  // @ai-sdk/togetherai 2.x reads TOGETHER_AI_API_KEY, 3.x TOGETHER_API_KEY.
  togetherai: ['TOGETHER_AI_API_KEY', 'TOGETHER_API_KEY'],
  deepinfra: ['DEEPINFRA_API_KEY'],
  fireworks: ['FIREWORKS_API_KEY'],
  luma: ['LUMA_API_KEY'],
  xai: ['XAI_API_KEY'],
  google: ['GOOGLE_GENERATIVE_AI_API_KEY'],
  prodia: ['PRODIA_TOKEN'],
}

/** The variables the model's provider reads its key from; none known (an OpenAI-compatible endpoint): `[]`. */
export function keyNamesOf(provider: string): readonly string[] {
  return KEY_NAMES[familyOf(provider)] ?? []
}

/**
 * Prices of the common FLUX offers per provider, USD (checked 2026-05 on pages quoting each provider's pricing page:
 * fal "$0.003 per megapixel" for schnell, "$0.025 per megapixel, billed rounding up to the nearest megapixel" on the
 * FLUX.1 [dev] page; Replicate $0.003 / $0.025 / $0.04 per image; BFL per image as LiteLLM's provider docs list them).
 * Anything else: cost unknown (and `maxCost` stops before a call; `maxNewImages` still counts).
 */
export const AI_SDK_PRICES: Readonly<Record<string, Readonly<Record<string, ImagePrice>>>> = {
  fal: {
    'fal-ai/flux/schnell': { kind: 'per-megapixel', usd: 0.003, roundUp: true },
    'fal-ai/flux/dev': { kind: 'per-megapixel', usd: 0.025, roundUp: true },
    'fal-ai/flux-1/schnell': { kind: 'per-megapixel', usd: 0.003, roundUp: true },
    'fal-ai/flux-1/dev': { kind: 'per-megapixel', usd: 0.025, roundUp: true },
    'fal-ai/flux-pro/kontext': { kind: 'per-image', usd: 0.04 },
  },
  replicate: {
    'black-forest-labs/flux-schnell': { kind: 'per-image', usd: 0.003 },
    'black-forest-labs/flux-dev': { kind: 'per-image', usd: 0.025 },
    'black-forest-labs/flux-1.1-pro': { kind: 'per-image', usd: 0.04 },
  },
  'black-forest-labs': {
    'flux-dev': { kind: 'per-image', usd: 0.025 },
    'flux-pro': { kind: 'per-image', usd: 0.05 },
    'flux-pro-1.1': { kind: 'per-image', usd: 0.04 },
    'flux-pro-1.1-ultra': { kind: 'per-image', usd: 0.06 },
    'flux-kontext-pro': { kind: 'per-image', usd: 0.04 },
  },
}

/** The table's price for an AI SDK model, or `null`: cost unknown. */
export function aiSdkPrice(provider: string, modelId: string): ImagePrice | null {
  return AI_SDK_PRICES[familyOf(provider)]?.[modelId] ?? null
}

/**
 * Settings only Together's request has, which change the pixels: an AI SDK model takes them through
 * `providerOptions`, in its own words, so a script or option setting one is refused. (`outputFormat` changes only the
 * encoding: it is not sent, with a note.)
 */
export const TOGETHER_ONLY = ['steps', 'guidance', 'negativePrompt', 'promptUpsampling'] as const
const ASPECT = /^[1-9]\d{0,3}:[1-9]\d{0,3}$/

/** The provider definition of an AI SDK model: planned here, its adapter (ai-sdk.ts, `ai`) loaded on first call. */
export function aiSdkDefinition(model: AiSdkImageModel): ProviderDefinition {
  return {
    id: model.provider,
    defaultModel: model.modelId,
    plan: (modelId, settings) => planAiSdk(model, modelId, settings),
    canCall: () => true,
    load: async (options: ResolvedOptions) => (await import('./ai-sdk')).createAiSdkProvider(model, options),
  }
}

/**
 * Exactly what `generateImage` is given: `size` (`WxH`) unless an aspect ratio was set, then `aspectRatio`; `seed`
 * when set; `providerOptions` when any. A script's "model" naming another model is refused: one AI SDK model makes
 * every image of a run (README, Providers).
 */
function planAiSdk(model: AiSdkImageModel, modelId: string, s: RequestSettings): RequestPlan {
  const name = describeModel(model)
  const refusals: Refusal[] = []
  if (modelId !== model.modelId) {
    refusals.push({
      setting: 'model',
      message: `"model": "${modelId}" cannot be used here: the \`model\` option is an AI SDK model (${name}), which makes every image. Remove "model" from this asset (images made with it stay cached), or build these with a \`model\` option that is that model`,
    })
  }
  for (const setting of TOGETHER_ONLY) {
    if (s[setting] !== undefined) {
      refusals.push({ setting, message: `"${setting}" is a Together setting, and the \`model\` option is an AI SDK model (${name}), which takes a size or an aspect ratio, a seed and providerOptions: set it in "providerOptions": { "${familyOf(model.provider)}": { ... } } as that provider names it` })
    }
  }
  if (s.aspectRatio !== undefined && !ASPECT.test(s.aspectRatio)) refusals.push({ setting: 'aspectRatio', message: `"aspectRatio" must be "width:height" (e.g. "16:9"), got ${JSON.stringify(s.aspectRatio)}` })
  if (refusals.length) return { ok: false, refusals }

  const notes: string[] = []
  if (s.outputFormat !== undefined) {
    notes.push(`"outputFormat" is not sent to an AI SDK model (${name}): its provider picks the format (the file is named by its bytes); ask for one in "providerOptions" as that provider names it (fal: { "fal": { "outputFormat": "png" } })`)
  }
  const fields: RequestFields = s.aspectRatio !== undefined ? { aspect_ratio: s.aspectRatio } : { width: s.width, height: s.height }
  if (s.seed !== undefined) fields.seed = s.seed
  if (s.providerOptions && Object.keys(s.providerOptions).length) fields.provider_options = s.providerOptions
  return { ok: true, fields, profile: undefined, ...(s.aspectRatio !== undefined ? { expectedSize: nominalSize(s.aspectRatio) } : {}), notes }
}

/** The size an aspect ratio is expected to give, for placeholders and estimates: 1024 on the long side (fal's presets). */
export function nominalSize(ratio: string): { width: number; height: number } {
  const [w, h] = ratio.split(':').map(Number) as [number, number]
  const short = (side: number) => Math.max(8, Math.round((1024 * side) / Math.max(w, h) / 8) * 8)
  return w >= h ? { width: 1024, height: short(h) } : { width: short(w), height: 1024 }
}
