// Ambient types for apps using unplugin-flux-assets: add "unplugin-flux-assets/client" to compilerOptions.types.

interface FluxAsset {
  /** The asset id from the script. */
  id: string
  /** The final prompt sent (with promptPrefix / promptSuffix). */
  prompt: string
  /** The image's URL in the bundle (or in the dev server). */
  url: string
  width: number
  height: number
  /** True when no image could be had (no API key, offline, or a failure): `url` is an SVG placeholder. */
  placeholder: boolean
}

interface FluxScene {
  assets?: Record<string, FluxAsset>
  [key: string]: unknown
}

interface FluxScript {
  visual_track: FluxScene[]
  [key: string]: unknown
}

interface FluxManifestEntry extends FluxAsset {
  pointer: string
  key: string
  /** The model asked for, e.g. `black-forest-labs/FLUX.2-dev`. */
  model: string
  /** USD the image was estimated to cost when it was made; `null` when the price was unknown, or for a placeholder. */
  cost: number | null
}

/** The build's counts, as its summary line gives them. Images are unique images (cache keys), not uses. */
interface FluxBuildSummary {
  /** Asset occurrences in every script. */
  assets: number
  /** Unique images among them. */
  unique: number
  /** Images made (and paid for) by this build. */
  generated: number
  /** Images billed by this build: more than `generated` when a lost download was paid again. */
  paid: number
  /** Images this build found in the cache. */
  cached: number
  /** Images without a picture (shipped as placeholders), failed ones included. */
  placeholders: number
  failed: number
  durationMs: number
  /** USD this build spent, estimated; `null` when a model's price is unknown. */
  estimatedCost: number | null
}

declare module '*.json?flux' {
  const script: FluxScript
  export default script
}

declare module 'virtual:flux-assets' {
  /** Every asset occurrence of the build, grouped by script path (posix, relative to the root). */
  const scripts: Record<string, FluxManifestEntry[]>
  export default scripts
  /** The counts of the build (in dev: of the last scan); `null` before any. */
  export const summary: FluxBuildSummary | null
}
