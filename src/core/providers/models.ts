// What each FLUX model on Together takes, and the request fields that follow from a user's settings.
//
// Sources (checked 2026-12, see ../shared/reference/together-api-facts.md, "Per-model parameters"):
// - togethercomputer/skills skills/together-ai/references/images/api-reference.md, "Model Feature Matrix" and the
//   parameter table: guidance_scale for FLUX.2 dev/flex only; prompt_upsampling for FLUX.2 pro only, default true;
//   negative_prompt for FLUX1.1 pro only; aspect_ratio sizes Kontext: 1:1, 16:9, 9:16, 4:3, 3:2; width/height
//   256-1920; steps 1-50; "Dimensions Guide" for the size each ratio gives.
// - togethercomputer/skills .../images/models.md: the 2026-10-07 serverless catalog (FLUX.2 pro/dev/flex/max,
//   FLUX1.1 pro, Kontext pro/max; Kontext default steps 28; "FLUX.1 [schnell], FLUX.1 [dev] ... no longer listed").
// - docs.together.ai/docs/inference/images/reference-images: image_url for Kontext pro/max and FLUX.2 pro/flex,
//   reference_images for FLUX.2 pro/dev/flex.
// - togethercomputer/openapi openapi.yaml POST /images/generations: the body's field names (steps, seed, width,
//   height, negative_prompt, guidance_scale, output_format jpeg|png, image_url, reference_images). It lists neither
//   aspect_ratio nor prompt_upsampling; Together's own skills notes send both as extra body fields.
// Where a source says "?" (FLUX.2 max's upsampling and reference images) the profile leaves the field out: a field
// this table does not send cannot be refused by the model, and the model's own default applies.

import type { ImageSettings, ProviderOptions } from '../types'

export const DEFAULT_MODEL = 'black-forest-labs/FLUX.2-dev'

/** listed: in Together's 2026-10-07 catalog. unlisted: absent from it, not announced as retired. retired: Together says it is no longer served. */
export type CatalogStatus = 'listed' | 'unlisted' | 'retired'

export interface Range {
  min: number
  max: number
}

export interface ModelProfile {
  id: string
  /** Together's display name, e.g. `FLUX.2 [dev]`. */
  label: string
  status: CatalogStatus
  /** `steps`: its range, and the value sent when the user set none (absent: send none, the model picks). */
  steps?: Range & { sendByDefault?: number }
  /** `guidance_scale`. */
  guidance?: Range
  negativePrompt: boolean
  /** `prompt_upsampling` is taken; `false` is sent unless the user asks for true (upstream default true rewrites the prompt). */
  promptUpsampling: boolean
  /** How the size is set: width/height within limits, or one of a few aspect ratios (with the size each gives). */
  size: PixelSizing | AspectSizing
  imageUrl: boolean
  referenceImages: boolean
}

export interface PixelSizing {
  kind: 'pixels'
  /** Absent: no limit known beyond what options already check (positive multiple of 8). */
  min?: number
  max?: number
  /** Sizes that are not a multiple of this work but may be rounded by the model: a note, not a refusal. */
  preferredMultiple?: number
}

export interface AspectSizing {
  kind: 'aspect'
  /** Ratio → the size it gives (skills api-reference.md, "Dimensions Guide"): a nominal size, the bytes tell the truth. */
  ratios: Record<string, { width: number; height: number }>
}

/**
 * The user's settings for one image, after defaults and per-asset overrides: the same fields as what is sent
 * (`outputFormat` always set for Together by the option's default; `providerOptions` for AI SDK models only).
 */
export type RequestSettings = Omit<ImageSettings, 'provider' | 'model'>

/**
 * The pixel-changing body fields to send, exactly. The provider adds `model`, `prompt`, `n` and `response_format`
 * (which changes no pixel). Hashing these fields is hashing what was sent.
 */
export interface RequestFields {
  width?: number
  height?: number
  aspect_ratio?: string
  steps?: number
  guidance_scale?: number
  negative_prompt?: string
  prompt_upsampling?: boolean
  seed?: number
  /** Together: always sent. AI SDK models: never. */
  output_format?: 'jpeg' | 'png'
  /** AI SDK models: `providerOptions` of `generateImage`, as sent. */
  provider_options?: ProviderOptions
}

/** A setting the model cannot take; `setting` is the user's name for it, to point at the right place in a script. */
export interface Refusal {
  setting: keyof RequestSettings | 'model'
  message: string
}

export type RequestPlan =
  | {
      ok: true
      fields: RequestFields
      /** Undefined for a model this table does not know. */
      profile: ModelProfile | undefined
      /** The size to expect when it is not width × height (aspect-ratio models): for estimates and placeholders. */
      expectedSize?: { width: number; height: number }
      /** Things to say once per run, not errors: unknown parameters, an aspect ratio rounded, a size that may be rounded. */
      notes: string[]
    }
  | { ok: false; refusals: Refusal[] }

const FLUX2_SIZE: PixelSizing = { kind: 'pixels', min: 256, max: 1920, preferredMultiple: 16 }
/** FLUX1.1 pro: "width/height yes" in the facts, no limit given; the API reference's general 256-1920 is used. */
const FLUX11_SIZE: PixelSizing = { kind: 'pixels', min: 256, max: 1920 }
const KONTEXT_SIZE: AspectSizing = {
  kind: 'aspect',
  ratios: {
    '1:1': { width: 1024, height: 1024 },
    '16:9': { width: 1344, height: 768 },
    '9:16': { width: 768, height: 1344 },
    '4:3': { width: 1184, height: 864 },
    '3:2': { width: 1248, height: 832 },
  },
}
const KONTEXT: Omit<ModelProfile, 'id' | 'label' | 'status'> = {
  // Kontext takes steps (default 28, models.md); nothing is sent unless set, so the model's default applies.
  steps: { min: 1, max: 50 },
  negativePrompt: false,
  promptUpsampling: false,
  size: KONTEXT_SIZE,
  imageUrl: true,
  referenceImages: false,
}
/**
 * The retired FLUX.1 models keep exactly today's behaviour so a project that pins one keeps its cache keys: steps 4
 * sent by default (the plugin's old global default, so every key it made for them has `steps: 4`), steps 1-100 and
 * any positive multiple of 8 as options.ts allows today. Nothing new is sent.
 */
const RETIRED_FLUX1: Omit<ModelProfile, 'id' | 'label'> = {
  status: 'retired',
  steps: { min: 1, max: 100, sendByDefault: 4 },
  negativePrompt: false,
  promptUpsampling: false,
  size: { kind: 'pixels' },
  imageUrl: false,
  referenceImages: false,
}

/**
 * FLUX.2 [dev] and [flex], which take steps and guidance: steps 1-50 (api-reference.md; docs examples use 20-28),
 * guidance_scale 1-10 (the API's documented useful range, "1-5 creative, 8-10 faithful"), reference images.
 */
const FLUX2_TUNABLE: Omit<ModelProfile, 'id' | 'label' | 'status' | 'imageUrl'> = {
  steps: { min: 1, max: 50 },
  guidance: { min: 1, max: 10 },
  negativePrompt: false,
  promptUpsampling: false,
  size: FLUX2_SIZE,
  referenceImages: true,
}

export const MODEL_PROFILES: readonly ModelProfile[] = [
  {
    id: 'black-forest-labs/FLUX.2-dev',
    label: 'FLUX.2 [dev]',
    status: 'listed',
    ...FLUX2_TUNABLE,
    imageUrl: false, // reference-images page: FLUX.2 [dev] only supports reference_images
  },
  {
    id: 'black-forest-labs/FLUX.2-flex',
    label: 'FLUX.2 [flex]',
    status: 'listed',
    ...FLUX2_TUNABLE,
    imageUrl: true,
  },
  {
    id: 'black-forest-labs/FLUX.2-pro',
    label: 'FLUX.2 [pro]',
    status: 'listed',
    // steps: "not accepted (a 400 is reported)"; prompt_upsampling: default true upstream.
    negativePrompt: false,
    promptUpsampling: true,
    size: FLUX2_SIZE,
    imageUrl: true,
    referenceImages: true,
  },
  {
    id: 'black-forest-labs/FLUX.2-max',
    label: 'FLUX.2 [max]',
    status: 'listed',
    // steps and guidance: no. prompt_upsampling, image_url, reference_images: "?" in every source; not sent.
    negativePrompt: false,
    promptUpsampling: false,
    size: FLUX2_SIZE,
    imageUrl: false,
    referenceImages: false,
  },
  {
    id: 'black-forest-labs/FLUX.1.1-pro',
    label: 'FLUX1.1 [pro]',
    status: 'listed',
    negativePrompt: true,
    promptUpsampling: false,
    size: FLUX11_SIZE,
    imageUrl: false,
    referenceImages: false,
  },
  { id: 'black-forest-labs/FLUX.1-kontext-pro', label: 'FLUX.1 Kontext [pro]', status: 'listed', ...KONTEXT },
  { id: 'black-forest-labs/FLUX.1-kontext-max', label: 'FLUX.1 Kontext [max]', status: 'listed', ...KONTEXT },
  // In the 2025 catalog (default steps 28), absent from the 2026-10-07 one; the live catalog decides.
  { id: 'black-forest-labs/FLUX.1-kontext-dev', label: 'FLUX.1 Kontext [dev]', status: 'unlisted', ...KONTEXT },
  { id: 'black-forest-labs/FLUX.1-schnell', label: 'FLUX.1 [schnell]', ...RETIRED_FLUX1 },
  { id: 'black-forest-labs/FLUX.1-dev', label: 'FLUX.1 [dev]', ...RETIRED_FLUX1 },
  { id: 'black-forest-labs/FLUX.1-schnell-Free', label: 'FLUX.1 [schnell] Free', ...RETIRED_FLUX1 },
]

/** The profile of a model id (case-insensitive), or `undefined`. */
export function findProfile(modelId: string): ModelProfile | undefined {
  const id = modelId.trim().toLowerCase()
  return MODEL_PROFILES.find(p => p.id.toLowerCase() === id)
}

/** What a model takes, in one line: for refusals and `flux-assets models`. */
export function describeAccepts(p: ModelProfile): string {
  const parts: string[] = []
  if (p.size.kind === 'aspect') parts.push(`aspect_ratio ${Object.keys(p.size.ratios).join(', ')} (not width/height)`)
  else if (p.size.min !== undefined && p.size.max !== undefined) parts.push(`width and height ${p.size.min}-${p.size.max}`)
  else parts.push('width and height')
  parts.push(p.steps ? `steps ${p.steps.min}-${p.steps.max}` : 'no steps')
  if (p.guidance) parts.push(`guidance ${p.guidance.min}-${p.guidance.max}`)
  if (p.negativePrompt) parts.push('negativePrompt')
  if (p.promptUpsampling) parts.push('promptUpsampling')
  parts.push('seed', 'jpeg/png')
  if (p.imageUrl || p.referenceImages) parts.push([p.imageUrl && 'image_url', p.referenceImages && 'reference_images'].filter(Boolean).join('/'))
  return parts.join(', ')
}

/**
 * The body fields to send for `modelId` with `settings`, or every setting the model cannot take. A known model gets
 * only what it takes; an unknown one a conservative request (size, seed, format), plus whatever the user set
 * explicitly (steps, guidance, negativePrompt, aspectRatio, promptUpsampling), passed through with one note.
 */
export function planRequest(modelId: string, settings: RequestSettings): RequestPlan {
  const profile = findProfile(modelId)
  return profile ? planKnown(profile, settings) : planUnknown(modelId, settings)
}

function planKnown(p: ModelProfile, s: RequestSettings): RequestPlan {
  const refusals: Refusal[] = []
  const notes: string[] = []
  const name = `${p.label} (${p.id})`
  const refuse = (setting: keyof RequestSettings, what: string) => refusals.push({ setting, message: `${name} ${what}; it takes ${describeAccepts(p)}` })
  const fields: RequestFields = { output_format: s.outputFormat ?? 'jpeg' }
  let expectedSize: { width: number; height: number } | undefined

  if (p.size.kind === 'aspect') {
    const ratios = p.size.ratios
    if (s.aspectRatio !== undefined) {
      if (!(s.aspectRatio in ratios)) refuse('aspectRatio', `does not take aspect ratio "${s.aspectRatio}"`)
      else fields.aspect_ratio = s.aspectRatio
    } else {
      const nearest = nearestRatio(s.width, s.height, Object.keys(ratios))
      fields.aspect_ratio = nearest
      if (!isExactly(nearest, s.width, s.height)) {
        notes.push(`${name} sizes images by aspect ratio: ${s.width}×${s.height} is sent as the nearest ratio ${nearest} (${ratios[nearest]!.width}×${ratios[nearest]!.height}); set aspectRatio to choose`)
      }
    }
    if (fields.aspect_ratio) expectedSize = { ...ratios[fields.aspect_ratio]! }
  } else {
    const { min, max, preferredMultiple } = p.size
    for (const side of ['width', 'height'] as const) {
      const v = s[side]
      if (max !== undefined && v > max) refuse(side, `does not take ${side} ${v}: over the ${max} px maximum`)
      else if (min !== undefined && v < min) refuse(side, `does not take ${side} ${v}: under the ${min} px minimum`)
    }
    if (s.aspectRatio !== undefined) refuse('aspectRatio', 'sizes images by width and height, not by aspectRatio')
    fields.width = s.width
    fields.height = s.height
    if (preferredMultiple && (s.width % preferredMultiple || s.height % preferredMultiple)) {
      notes.push(`${name}: ${s.width}×${s.height} is not a multiple of ${preferredMultiple}; the model may round it (the size received is what is reported)`)
    }
  }

  if (s.steps !== undefined) {
    if (!p.steps) refuse('steps', `does not take steps (it picks its own)`)
    else if (!Number.isInteger(s.steps) || s.steps < p.steps.min || s.steps > p.steps.max) refuse('steps', `does not take steps ${s.steps}`)
    else fields.steps = s.steps
  } else if (p.steps?.sendByDefault !== undefined) {
    fields.steps = p.steps.sendByDefault
  }

  if (s.guidance !== undefined) {
    if (!p.guidance) refuse('guidance', 'does not take guidance (guidance_scale)')
    else if (!Number.isFinite(s.guidance) || s.guidance < p.guidance.min || s.guidance > p.guidance.max) refuse('guidance', `does not take guidance ${s.guidance}`)
    else fields.guidance_scale = s.guidance
  }

  if (s.negativePrompt !== undefined && s.negativePrompt.trim() !== '') {
    if (!p.negativePrompt) refuse('negativePrompt', 'does not take a negativePrompt')
    else fields.negative_prompt = s.negativePrompt
  }

  if (p.promptUpsampling) fields.prompt_upsampling = s.promptUpsampling === true
  else if (s.promptUpsampling === true) refuse('promptUpsampling', 'does not take promptUpsampling')

  if (s.seed !== undefined) fields.seed = s.seed

  if (refusals.length) return { ok: false, refusals }
  return { ok: true, fields, profile: p, notes, ...(expectedSize ? { expectedSize } : {}) }
}

function planUnknown(modelId: string, s: RequestSettings): RequestPlan {
  const fields: RequestFields = { width: s.width, height: s.height, output_format: s.outputFormat ?? 'jpeg' }
  if (s.seed !== undefined) fields.seed = s.seed
  const passed: string[] = []
  const pass = <K extends keyof RequestFields>(field: K, value: RequestFields[K] | undefined) => {
    if (value === undefined) return
    fields[field] = value
    passed.push(field)
  }
  pass('steps', s.steps)
  pass('guidance_scale', s.guidance)
  pass('negative_prompt', s.negativePrompt?.trim() ? s.negativePrompt : undefined)
  pass('aspect_ratio', s.aspectRatio)
  pass('prompt_upsampling', s.promptUpsampling)
  const also = passed.length ? `, and ${passed.join(', ')} as set (the model may refuse them)` : ''
  return {
    ok: true,
    fields,
    profile: undefined,
    notes: [`model "${modelId}" is not in this plugin's table, so its parameters are unknown: sending only prompt, width, height, seed and output format${also}`],
  }
}

function ratioValue(ratio: string): number {
  const [w = 1, h = 1] = ratio.split(':').map(Number)
  return w / h
}

function isExactly(ratio: string, width: number, height: number): boolean {
  const [w = 1, h = 1] = ratio.split(':').map(Number)
  return width * h === height * w
}

/** The ratio closest to width/height, compared on a log scale (so 2:1 and 1:2 are as far from 1:1). */
function nearestRatio(width: number, height: number, ratios: string[]): string {
  const target = Math.log(width / height)
  let best = ratios[0]!
  for (const r of ratios) if (Math.abs(Math.log(ratioValue(r)) - target) < Math.abs(Math.log(ratioValue(best)) - target)) best = r
  return best
}
