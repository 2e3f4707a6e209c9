// webpack and Rspack share an API: one adapter for both, and their watch mode.
import { join } from 'node:path'
import type { FluxAssetsOptions } from '../../src/core/types'
import { type Adapter, type Built, type Project, NAMES } from './helpers'

/** The subset of the webpack/Rspack compiler API the tests use. */
interface Stats {
  hasErrors(): boolean
  toJson(options: { all: false; errors: true }): { errors?: Array<{ message: string }> }
}
interface Compiler {
  run(callback: (error: Error | null, stats?: Stats) => void): void
  watch(options: { aggregateTimeout?: number }, callback: (error: Error | null, stats?: Stats) => void): { close(callback: () => void): void }
  close(callback: (error?: Error | null) => void): void
}
type CreateCompiler = (config: any) => Compiler
type Flux = (options: FluxAssetsOptions) => unknown

export const PUBLIC_PATH = '/static/'

const config = (p: Project, flux: Flux, options: FluxAssetsOptions, outDir: string) => ({
  // development: the memory cache is on, as in a real `webpack --watch`; a stale cached module would show.
  mode: 'development',
  context: p.dir,
  entry: './src/main.js',
  devtool: false,
  output: { path: outDir, filename: 'main.js', publicPath: PUBLIC_PATH },
  plugins: [flux(options)],
  infrastructureLogging: { level: 'none' },
})

function built(outDir: string): Built {
  return { outDir, bundle: join(outDir, 'main.js'), kind: 'script', urlOf: file => `${PUBLIC_PATH}${file}`, names: NAMES.webpack }
}

/** The stats' errors as one Error, or `undefined` when the build succeeded. */
function failure(error: Error | null, stats: Stats | undefined): Error | undefined {
  if (error) return error
  if (stats?.hasErrors()) return new Error((stats.toJson({ all: false, errors: true }).errors ?? []).map(e => e.message).join('\n'))
  return undefined
}

export function webpackLikeAdapter(name: string, create: CreateCompiler, flux: Flux): Adapter {
  return {
    name,
    async build(p, options, outDir) {
      const compiler = create(config(p, flux, options, outDir))
      try {
        await new Promise<void>((resolve, reject) => compiler.run((error, stats) => ((error = failure(error, stats) ?? null) ? reject(error) : resolve())))
      } finally {
        await new Promise(resolve => compiler.close(resolve))
      }
      return built(outDir)
    },
  }
}

/** `webpack --watch`: `next()` resolves at the next finished build (rejects on errors); `close()` stops watching. */
export function startWatch(create: CreateCompiler, flux: Flux, p: Project, options: FluxAssetsOptions, outDir: string) {
  let waiting: { resolve(): void; reject(error: Error): void } | undefined
  const compiler = create(config(p, flux, options, outDir))
  const watching = compiler.watch({ aggregateTimeout: 50 }, (error, stats) => {
    const failed = failure(error, stats)
    if (failed) waiting?.reject(failed)
    else waiting?.resolve()
    waiting = undefined
  })
  return {
    built: async () => built(outDir),
    next: () => new Promise<void>((resolve, reject) => (waiting = { resolve, reject })),
    close: () => new Promise<void>(resolve => watching.close(() => compiler.close(() => resolve()))),
  }
}
