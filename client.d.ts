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
}

declare module '*.json?flux' {
  const script: FluxScript
  export default script
}

declare module 'virtual:flux-assets' {
  /** Every asset occurrence of the build, grouped by script path (posix, relative to the root). */
  const scripts: Record<string, FluxManifestEntry[]>
  export default scripts
}
