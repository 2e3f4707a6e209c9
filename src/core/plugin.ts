import { dirname, isAbsolute, resolve } from 'node:path'
import type { UnpluginFactory } from 'unplugin'
import { FLUX_QUERY, FluxContext, fluxModuleCode, MANIFEST_FILE, type OutputImage, VIRTUAL_ID, virtualModuleCode } from './context'
import { devImageUrl, fluxMiddleware } from './dev'
import { FluxError } from './errors'
import type { AssetRecord, FluxAssetsOptions, Logger } from './types'

const RESOLVED_VIRTUAL = '\0virtual:flux-assets.js'
/** webpack refuses unknown URI schemes such as `virtual:` before any resolver runs: it gets this name instead. */
const WEBPACK_VIRTUAL = 'unplugin-flux-assets/virtual'

/**
 * One factory for every bundler. The hooks only translate: all behaviour lives in FluxContext and the engine.
 * Build: generate everything before bundling (buildStart), emit each image once with a content-hashed name, emit
 * `flux-assets.json`, and turn `?flux` imports into the script with URLs. Vite dev: serve straight from the cache.
 */
export const unpluginFactory: UnpluginFactory<FluxAssetsOptions | undefined> = (options = {}, meta) => {
  let logger: Logger | undefined
  const framework = meta.framework
  const ctx = new FluxContext(options, {
    info: m => (logger ? logger.info(m) : console.info(`[flux-assets] ${m}`)),
    warn: m => (logger ? logger.warn(m) : console.warn(`[flux-assets] ${m}`)),
    error: m => (logger ? logger.error(m) : console.error(`[flux-assets] ${m}`)),
  })
  let assetsDir = 'assets'
  let dev = false
  let base = '/'
  let publicPath: string | undefined
  /** Rollup-like bundlers: emitted file references, for `import.meta.ROLLUP_FILE_URL_<ref>`. */
  const refs = new Map<string, string>()

  /** The JS expression of an image's URL, resolved the way the bundler resolves its own assets. */
  function urlExpression(image: OutputImage): string {
    if (framework === 'webpack' || framework === 'rspack') return `__webpack_public_path__ + ${JSON.stringify(image.fileName)}`
    if (framework === 'esbuild') return JSON.stringify(`${publicPath ? `${publicPath.replace(/\/+$/, '')}/` : './'}${image.fileName}`)
    if (framework === 'vite' && /^(\/|https?:)/.test(base)) return JSON.stringify(`${base}${image.fileName}`)
    const ref = refs.get(image.key)
    return ref ? `import.meta.ROLLUP_FILE_URL_${ref}` : JSON.stringify(`./${image.fileName}`)
  }

  async function urlsFor(emitFile: (file: { type: 'asset'; fileName: string; source: string | Uint8Array }) => unknown, records: AssetRecord[]) {
    if (dev) return Promise.all(records.map(r => devImageUrl(ctx.engine!.cache, r, base)))
    const emit = (image: OutputImage) => {
      const ref = emitFile({ type: 'asset', fileName: image.fileName, source: image.source })
      if (typeof ref === 'string') refs.set(image.key, ref)
    }
    return Promise.all(records.map(async r => urlExpression(await ctx.image(r, assetsDir, emit))))
  }

  return {
    name: 'unplugin-flux-assets',
    enforce: 'pre',

    async buildStart() {
      ctx.configure(process.cwd())
      if (dev) return
      ctx.reset()
      refs.clear()
      const summary = await ctx.generateAll().catch(fail)
      for (const file of ctx.files) {
        try {
          this.addWatchFile(file)
        } catch {
          // esbuild can only watch from load/transform: `?flux` modules add their script there.
        }
      }
      const records = ctx.allRecords()
      await urlsFor(file => this.emitFile(file), records)
      this.emitFile({ type: 'asset', fileName: MANIFEST_FILE, source: ctx.manifest(records) })
      ctx.engine!.options.logger.info(summary)
    },

    resolveId(id, importer) {
      if (id === VIRTUAL_ID || id === WEBPACK_VIRTUAL) return RESOLVED_VIRTUAL
      if (!FLUX_QUERY.test(id)) return null
      const path = id.replace(FLUX_QUERY, '')
      return `${isAbsolute(path) ? path : resolve(importer ? dirname(importer) : ctx.configure(process.cwd()).options.root, path)}?flux`
    },

    loadInclude(id) {
      return id === RESOLVED_VIRTUAL || FLUX_QUERY.test(id)
    },

    async load(id) {
      ctx.configure(process.cwd())
      const emitFile = (file: { type: 'asset'; fileName: string; source: string | Uint8Array }) => this.emitFile(file)
      if (id === RESOLVED_VIRTUAL) {
        const records = ctx.allRecords()
        return virtualModuleCode(records, await urlsFor(emitFile, records))
      }
      const file = id.replace(FLUX_QUERY, '')
      this.addWatchFile(file)
      const { data, records } = await ctx.recordsFor(file).catch(fail)
      return fluxModuleCode(data, records, await urlsFor(emitFile, records))
    },

    vite: {
      configResolved(config) {
        dev = config.command === 'serve'
        base = config.base
        assetsDir = config.build.assetsDir
        logger = { info: m => config.logger.info(`[flux-assets] ${m}`), warn: m => config.logger.warn(`[flux-assets] ${m}`), error: m => config.logger.error(`[flux-assets] ${m}`) }
        ctx.configure(config.root, resolve(config.root, config.build.outDir))
      },
      configureServer(server) {
        server.middlewares.use(fluxMiddleware(() => ctx.engine!.cache, () => base))
      },
    },
    webpack(compiler) {
      ctx.configure(compiler.context, compiler.options.output.path)
      compiler.hooks.normalModuleFactory.tap('unplugin-flux-assets', factory => {
        factory.hooks.beforeResolve.tap('unplugin-flux-assets', data => {
          if (data.request === VIRTUAL_ID) data.request = WEBPACK_VIRTUAL
        })
      })
    },
    rspack(compiler) {
      ctx.configure(compiler.context, compiler.options.output.path)
    },
    esbuild: {
      setup(build) {
        publicPath = build.initialOptions.publicPath
        const root = build.initialOptions.absWorkingDir ?? process.cwd()
        ctx.configure(root, build.initialOptions.outdir && resolve(root, build.initialOptions.outdir))
        build.onDispose?.(() => void ctx.close())
      },
    },
    writeBundle() {
      // Release idle connections so a finished build can exit; the next build (watch mode) opens new ones.
      void ctx.close()
    },
  }
}

/** Our own errors are messages for a person: no stack trace in the build output. */
function fail(error: unknown): never {
  if (error instanceof FluxError) {
    const clean = new Error(error.message)
    clean.name = error.code
    clean.stack = `${error.code}: ${error.message}`
    throw clean
  }
  throw error
}
