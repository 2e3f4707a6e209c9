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
  /** The fallback for `<img src>`: the original image (the same as `url`), or the placeholder SVG. */
  src: string
  /** Every file of the picture: the web variants (in the order of `formats`, then `widths`), then the fallback. */
  variants: FluxVariant[]
  /** `url 480w, url 960w` per format, the fallback's format included (e.g. `{ webp, jpeg }`). */
  srcset: Partial<Record<FluxVariant['format'], string>>
  /** `<source>` elements for `<picture>`, best first (AVIF, then WebP); empty for a placeholder or `formats: []`. */
  sources: Array<{ type: 'image/avif' | 'image/webp'; srcset: string }>
  /**
   * What to show while the image loads: its dominant colour and a tiny blurred WebP as a data URL (a few hundred
   * bytes), e.g. as `background-image`. A placeholder's is a flat colour. `null` with `blur: false` or `formats: []`.
   */
  blur: { color: string; dataURL: string } | null
}

interface FluxVariant {
  format: 'webp' | 'avif' | 'jpeg' | 'png' | 'svg'
  width: number
  height: number
  url: string
  /** Size of the file in bytes. */
  bytes: number
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

/**
 * The build's counts, as its summary line gives them. Images are unique images (cache keys), not uses. The same shape
 * as the package's `RunSummary`, written out on purpose: importing it would pull the package's whole declarations
 * (unplugin's, naming every bundler) into an app's type-check.
 */
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
