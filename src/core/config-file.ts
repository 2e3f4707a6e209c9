import { existsSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { FluxError } from './errors'
import { describeSyntaxError } from './json-errors'
import type { FluxAssetsOptions } from './types'

/**
 * `flux-assets.config.{ts,mjs,js,json}` in the project root: the settings the plugin and the CLI share, so the CLI
 * computes the same cache keys as a build (and `prune` spares what the build uses). The first name that exists wins.
 *
 * Loaded synchronously, because the plugin learns its root in synchronous bundler hooks (webpack's `apply`, Vite's
 * `configResolved`): `.json` is read and parsed; `.mjs` / `.js` go through Node's own `require`, which loads ES modules
 * on the Node versions package.json asks for (^20.19, >=22.12); only a `.ts` file brings in jiti (unjs/jiti, the loader
 * Nuxt, ESLint and Tailwind use), imported at that moment, so no build without one pays for it.
 */
export const CONFIG_NAMES = ['flux-assets.config.ts', 'flux-assets.config.mjs', 'flux-assets.config.js', 'flux-assets.config.json']

export interface ConfigFile {
  file: string
  options: FluxAssetsOptions
}

/** The root's config file and its options, or `undefined` when it has none. Errors name the file. */
export function loadConfigFile(root: string): ConfigFile | undefined {
  const name = CONFIG_NAMES.find(n => existsSync(join(root, n)))
  if (!name) return undefined
  const file = join(root, name)
  let options: unknown
  if (name.endsWith('.json')) {
    const text = readFileSync(file, 'utf8')
    try {
      options = JSON.parse(text)
    } catch (error) {
      const { where, message } = describeSyntaxError(text, (error as Error).message)
      throw new FluxError('FLUX_BAD_OPTION', `${name}: ${where}: ${message}`)
    }
  } else {
    try {
      const load = name.endsWith('.ts') ? tsLoader() : createRequire(file)
      const mod = load(file) as { default?: unknown }
      options = mod && typeof mod === 'object' && 'default' in mod ? mod.default : mod
    } catch (error) {
      if (error instanceof FluxError) throw error
      throw new FluxError('FLUX_BAD_OPTION', `${name} could not be loaded: ${(error as Error).message?.split('\n')[0]}`)
    }
  }
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new FluxError('FLUX_BAD_OPTION', `${name} must export an object of flux-assets options (export default { ... })`)
  }
  if ('root' in options) throw new FluxError('FLUX_BAD_OPTION', `${name}: "root" cannot be set in the config file: the root is where the file is`)
  return { file, options: options as FluxAssetsOptions }
}

/** jiti's require, for a `.ts` config only: no cache on disk, so a build leaves nothing in node_modules/.cache. */
function tsLoader(): (file: string) => unknown {
  const { createJiti } = createRequire(import.meta.url)('jiti') as typeof import('jiti')
  return createJiti(import.meta.url, { fsCache: false, moduleCache: false })
}

/** For a typed config file: `export default defineConfig({ promptSuffix: ', watercolor' })`. */
export function defineConfig(options: Omit<FluxAssetsOptions, 'root'>): Omit<FluxAssetsOptions, 'root'> {
  return options
}
