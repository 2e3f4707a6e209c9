import type { ProviderDefinition } from './providers'

/** What the user passes: to the bundler plugin, to `generateAssets`, or through CLI flags. */
export interface FluxAssetsOptions {
  /** Project root; scripts are found and reported relative to it. Default: the bundler's root or `process.cwd()`. */
  root?: string
  /** Globs of script JSON files, relative to root. Default `['**\/*.script.json']`. */
  include?: string | string[]
  /** Globs to skip. Default: node_modules, the build output dir, the cache dir and dot-folders. */
  exclude?: string | string[]
  /** Where images are cached, relative to root. Default `.flux-cache`. */
  cacheDir?: string
  /**
   * Together API key. Default: env `TOGETHER_API_KEY`, else `TOGETHER_BEARER_TOKEN` (also read from `<root>/.env`).
   * Not for an AI SDK `model`: its provider reads its own variable (`FAL_KEY`, ...), or takes `apiKey` itself.
   */
  apiKey?: string
  /** Default: env `TOGETHER_BASE_URL`, else `https://api.together.xyz/v1`. Together's only (an AI SDK provider takes its own). */
  baseURL?: string
  /**
   * A Together model id, default `black-forest-labs/FLUX.2-dev`: a model the plugin knows gets only the parameters it
   * takes; any other id gets a conservative request (see the README's Models section).
   *
   * Or any AI SDK image model, which then makes every image: `fal.image('fal-ai/flux/schnell')` (`import { fal } from
   * '@ai-sdk/fal'`; needs the `ai` package). See the README's Providers section.
   */
  model?: string | AiSdkImageModel
  /**
   * For an AI SDK `model`: provider-specific settings, passed to `generateImage` as they are, by provider name
   * (`{ fal: { numInferenceSteps: 4 } }`). Per asset too; an asset's entries win over these, per provider. Part of the
   * cache key.
   */
  providerOptions?: ProviderOptions
  /** Default 1024 (a multiple of 8; FLUX.2 takes 256–1920). */
  width?: number
  /** Default 768 (a multiple of 8; FLUX.2 takes 256–1920). */
  height?: number
  /** Default: not sent, the model's own default (the retired FLUX.1 [schnell] keeps sending 4). */
  steps?: number
  /** `guidance_scale`, for models that take it (FLUX.2 [dev], [flex]). Default: not sent. */
  guidance?: number
  /** For models that take it (FLUX1.1 [pro]). Default: none. */
  negativePrompt?: string
  /** For models sized by aspect ratio (Kontext): `1:1`, `16:9`, `9:16`, `4:3`, `3:2`. Default: nearest to width/height. */
  aspectRatio?: string
  /** FLUX.2 [pro] rewrites prompts unless told not to: `false` is sent unless this is `true`. */
  promptUpsampling?: boolean
  /** Fixed seed for every asset; per-asset `seed` overrides. Default: none. */
  seed?: number
  /** Default `jpeg`. */
  outputFormat?: OutputFormat
  /** How Together returns the image. Default `base64`; `url` is downloaded at once. */
  responseFormat?: 'base64' | 'url'
  /** Prepended to every prompt (e.g. a house style). Part of the cache key. */
  promptPrefix?: string
  /** Appended to every prompt. Part of the cache key. */
  promptSuffix?: string
  /** Requests in flight at once. Default 4. */
  concurrency?: number
  /** Retries per image after the first attempt. Default 4. */
  retries?: number
  /** Longest wait a server may ask for (retry-after) before the asset fails instead, in ms. Default 60_000. */
  maxRetryDelay?: number
  /** Per-request timeout in ms. Default 120_000. */
  timeout?: number
  /** Largest image accepted, in bytes (url mode download and base64 alike). Default 25 MB. */
  maxImageBytes?: number
  /** Any placeholder or failure fails the run. Default false. */
  strict?: boolean
  /**
   * What an account-level failure does (key rejected, account gated, out of credits, model not served, API
   * unreachable, cache disk full): `'fail'` (default) fails the build / exits 1; `'placeholder'` ships placeholders.
   * The dev server always keeps going with placeholders. `strict` wins over both.
   */
  apiFailure?: 'fail' | 'placeholder'
  /** Make no API call: cached images are used, missing ones become placeholders. Default false. */
  offline?: boolean
  /** Stop before the first call when more uncached images than this would be generated (per dev/watch session). Default 100. */
  maxNewImages?: number
  /**
   * Stop before the first call when the estimated cost of the missing images (per dev/watch session, in USD) is over
   * this; an unknown price counts as over it. Default: no cap.
   */
  maxCost?: number
  /**
   * Typed scripts: the plugin writes `<root>/.flux-assets/scripts.d.ts` (git-ignored) with each script's own shape
   * for its `?flux` import. Default true; the CLI and `generateAssets` never write it.
   */
  dts?: boolean
  /** Aborts the whole run. */
  signal?: AbortSignal
  /** Where messages go. Default: console warnings/errors, info silent. */
  logger?: Logger
  /** Progress events, e.g. for a TTY progress line. */
  onProgress?: (progress: Progress) => void
  /**
   * Web formats made from each image with sharp, beside the original (always shipped, as the `<img>` fallback).
   * Default `['webp']`; `'avif'` on request (smaller, and several times slower to encode). `[]`: no variants, no
   * blur, and sharp is never loaded. Also per asset.
   */
  formats?: VariantFormat[]
  /** Widths (px) to make in each format, never upscaled (a width over the image's is the image's). Default: none, the image's own width. Also per asset. */
  widths?: number[]
  /** Encoder quality per format, 1-100. Default `{ webp: 75, avif: 50 }`. Also per asset. */
  quality?: Partial<Record<VariantFormat, number>>
  /** A dominant colour and a tiny blurred image (a data URL well under 1 KB) to show while loading. Default true. Also per asset. */
  blur?: boolean
}

/** The web formats variants are made in. */
export type VariantFormat = 'webp' | 'avif'

/** How an image's web variants are made: the options above, defaults applied (per asset on top of global). */
export interface TransformSettings {
  formats: VariantFormat[]
  /** Sorted, unique; empty: the image's own width. */
  widths: number[]
  quality: Record<VariantFormat, number>
  blur: boolean
}

/** Variant settings as written (an option, or an asset in a script): any may be left out. */
export type TransformOverrides = Partial<Omit<TransformSettings, 'quality'>> & { quality?: Partial<Record<VariantFormat, number>> }

export type OutputFormat = 'jpeg' | 'png'

/**
 * What this package needs of an AI SDK image model (`ImageModelV2` / `ImageModelV3` of `@ai-sdk/provider`), without
 * depending on the package: a model from any AI SDK provider fits.
 */
export interface AiSdkImageModel {
  readonly specificationVersion: string
  /** e.g. `fal.image`: part of every cache key it makes. */
  readonly provider: string
  /** e.g. `fal-ai/flux/schnell`: part of every cache key it makes. */
  readonly modelId: string
  doGenerate(options: any): PromiseLike<unknown>
}

/** JSON values by provider name, then option name: `{ fal: { numInferenceSteps: 4 } }`. */
export type ProviderOptions = Record<string, Record<string, JsonValue>>
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue }

export interface Logger {
  info(message: string): void
  warn(message: string): void
  error(message: string): void
  /** Retries and other detail. Absent: such lines go to `info`. The plugin's own shows them only with DEBUG=flux-assets. */
  debug?(message: string): void
}

/** Options with every default applied, validated, env resolved. Never the user's object. */
export interface ResolvedOptions {
  root: string
  include: string[]
  exclude: string[]
  /** Absolute. */
  cacheDir: string
  /** The key of the provider in use, as found (Together sends it; for an AI SDK model it is only redacted). */
  apiKey: string | undefined
  /** Where a key comes from, for messages (absent: Together's): `TOGETHER_API_KEY`, or the AI SDK provider's variables (`FAL_API_KEY`, `FAL_KEY`). */
  keyNames?: readonly string[]
  /**
   * Variables from `<root>/.env` that the AI SDK provider reads from `process.env` (its key), found there and not in the
   * environment: set in `process.env` (never overriding) before its first call, as dotenv would.
   */
  providerEnv?: Record<string, string>
  /** The AI SDK model of the `model` option, the user's object itself; `undefined`: Together. */
  imageModel?: AiSdkImageModel
  /** Makes every image: Together (also when absent), or the adapter around `imageModel`. */
  provider?: ProviderDefinition
  baseURL: string
  responseFormat: 'base64' | 'url'
  promptPrefix: string
  promptSuffix: string
  /**
   * Global image settings as the user gave them; per-asset overrides are applied on top, then the model's profile.
   * `model` is the id (an AI SDK model's `modelId`).
   */
  defaults: Omit<ImageSettings, 'provider'>
  concurrency: number
  retries: number
  maxRetryDelay: number
  timeout: number
  maxImageBytes: number
  strict: boolean
  apiFailure: 'fail' | 'placeholder'
  /** A dev server: failures become placeholders and messages, never a stopped server. */
  dev: boolean
  offline: boolean
  maxNewImages: number
  maxCost: number | undefined
  dts: boolean
  signal: AbortSignal | undefined
  logger: Logger
  onProgress: ((progress: Progress) => void) | undefined
  /** Global variant settings (assets may override them in their script). */
  transform: TransformSettings
}

/**
 * What is sent that changes the pixels, exactly: hashed (with the final prompt) into the cache key. A field the model
 * is not sent is absent (no `steps` for FLUX.2 [dev] unless set). `width`/`height` are the size asked for (for
 * aspect-ratio models: the size of `aspectRatio`, which is what is sent).
 */
export interface ImageSettings {
  provider: string
  model: string
  width: number
  height: number
  steps?: number
  guidance?: number
  negativePrompt?: string
  aspectRatio?: string
  promptUpsampling?: boolean
  seed?: number
  /** Always sent to Together; never to an AI SDK model (its `providerOptions` can ask for a format). */
  outputFormat?: OutputFormat
  /** AI SDK models: the provider options sent, global and per asset merged. */
  providerOptions?: ProviderOptions
}

/** One asset occurrence found in one script. */
export interface AssetRequest {
  /** Script path relative to root, posix separators. */
  script: string
  /** JSON pointer (RFC 6901) of the asset value, e.g. `/visual_track/0/assets/avatar`. */
  pointer: string
  /** The asset id: a label, never a path. */
  id: string
  /** The final prompt: prefix + prompt + suffix. */
  prompt: string
  settings: ImageSettings
  /** sha256 hex of the canonical settings + prompt. */
  key: string
  /** Variant settings the script set on this asset (`formats`, `widths`, `quality`, `blur`); absent when none. Not part of the key. */
  transform?: TransformOverrides
}

/** What `generateAssets` returns for each asset occurrence. */
export interface AssetRecord extends AssetRequest {
  /** Absolute path of the cached image; `null` for a placeholder. */
  file: string | null
  /** The size of the image received (read from its bytes), or of the placeholder. */
  width: number
  height: number
  placeholder: boolean
  /** Why this is a placeholder, when it is one. */
  error?: string
}

export type ImageFormat = 'png' | 'jpeg' | 'webp'

/** The JSON record stored beside each cached image. */
export interface CacheRecord {
  version: number
  key: string
  prompt: string
  settings: ImageSettings
  /** File extension of the image, from its bytes. */
  ext: 'png' | 'jpg' | 'webp'
  size: number
  sha256: string
  /** Read from the image's header when it was stored (absent in entries written before 2026-12). */
  width?: number
  height?: number
  /** USD this image was estimated to cost when it was made; `null`: the price was unknown. */
  cost?: number | null
  /** mtime of the image file right after it was moved into place: lets a read skip re-hashing. */
  mtimeMs: number
  responseId?: string
  createdAt: string
}

export interface CacheHit {
  record: CacheRecord
  /** Absolute path of the verified image. */
  file: string
}

export interface Progress {
  total: number
  done: number
  cached: number
  generating: number
  generated: number
  /** Images that get a placeholder without any call (offline, no key). */
  placeholders: number
  /** Images that were attempted (or stopped) and got no image. */
  failed: number
  /** USD paid so far this run; `null` when a price is unknown. */
  spent: number | null
}

export interface RunSummary {
  /** Asset occurrences. */
  assets: number
  /** Unique images (cache keys). */
  unique: number
  generated: number
  /**
   * Images billed this run: at least `generated`, more when a billed image was lost and paid for again (an expired
   * url-mode download, a broken image). Always set by the engine.
   */
  paid: number
  cached: number
  placeholders: number
  failed: number
  /** Milliseconds. */
  durationMs: number
  /** USD for what was paid this run; `null` when a model's price is unknown. */
  estimatedCost: number | null
}

export interface GenerateResult {
  assets: AssetRecord[]
  summary: RunSummary
}

/** A script that failed to parse or validate: one issue per bad place. */
export interface ScriptIssue {
  /** Script path relative to root, posix. */
  script: string
  /** JSON pointer, or `line:column` for a syntax error. */
  where: string
  message: string
  /** A syntax error's line with a caret under the place. */
  frame?: string
}
