import { mkdirSync, writeFileSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import type { UnpluginBuildContext, UnpluginFactory } from 'unplugin'
import { FLUX_QUERY, VIRTUAL_ID } from './codegen'
import type { BuildOutput, OutputImage } from './emit'
import { createLogger, type Sink } from './logger'
import { BuildSession, type Target } from './session'
import { fluxMiddleware } from './dev'
import { FluxError } from './errors'
import type { FluxAssetsOptions, Logger } from './types'

const NAME = 'unplugin-flux-assets'
const RESOLVED_VIRTUAL = '\0virtual:flux-assets.js'
/** webpack refuses unknown URI schemes such as `virtual:` before any resolver runs: it gets this name instead. */
const WEBPACK_VIRTUAL = 'unplugin-flux-assets/virtual'

/**
 * One factory for every bundler. The hooks only translate: all behaviour lives in FluxContext and the engine.
 * Build: generate everything before bundling (buildStart), emit each image once with a content-hashed name, emit
 * `flux-assets.json`, and turn `?flux` imports into the script with URLs. Vite dev: serve straight from the cache.
 */
export const unpluginFactory: UnpluginFactory<FluxAssetsOptions | undefined> = (options = {}, meta) => {
  const framework = meta.framework
  /** The bundler's logger once known (a user's `logger` option wins over it). */
  let sink: Sink = {}
  // Until the bundler's logger is known, the console (the summary line shows there too).
  const ctx = new BuildSession(options, createLogger(() => sink, () => true))
  let dev = false
  let base = '/'
  let assetsDir = 'assets'
  let publicPath: string | undefined
  /** esbuild's `outdir`, resolved against its `absWorkingDir` (unplugin resolves it against the process cwd). */
  let esbuildOutDir: string | undefined

  /** The JS expression of an emitted image's URL, resolved the way the bundler resolves its own assets. */
  function url(image: OutputImage): string {
    if (framework === 'webpack' || framework === 'rspack') return `__webpack_public_path__ + ${JSON.stringify(image.fileName)}`
    if (framework === 'esbuild') return JSON.stringify(`${publicPath ? `${publicPath.replace(/\/+$/, '')}/` : './'}${image.fileName}`)
    if (framework === 'vite' && /^(\/|https?:)/.test(base)) return JSON.stringify(`${base}${image.fileName}`)
    return image.ref ? `import.meta.ROLLUP_FILE_URL_${image.ref}` : JSON.stringify(`./${image.fileName}`)
  }

  /** Emits through the calling hook's own context (webpack: its compilation). */
  function output(hook: UnpluginBuildContext): BuildOutput {
    return {
      assetsDir,
      emitFile: (fileName, source) => {
        if (esbuildOutDir) {
          const path = resolve(esbuildOutDir, fileName)
          mkdirSync(dirname(path), { recursive: true })
          writeFileSync(path, source)
          return undefined
        }
        const ref: unknown = hook.emitFile({ type: 'asset', fileName, source })
        return typeof ref === 'string' ? ref : undefined
      },
      url,
    }
  }
  const target = (hook: UnpluginBuildContext): Target => (dev ? { devBase: base } : output(hook))

  return {
    name: NAME,
    enforce: 'pre',

    async buildStart() {
      ctx.configure(process.cwd())
      if (dev) return
      if (framework === 'rollup' || framework === 'rolldown') {
        const rollup = this as unknown as { info?(m: string): void; warn(m: string): void }
        sink = { logger: { info: rollup.info?.bind(rollup), warn: m => rollup.warn(m), error: m => rollup.warn(m) }, named: true }
      }
      const summary = await ctx.startBuild(output(this)).catch(fail)
      for (const file of ctx.files) {
        try {
          this.addWatchFile(file)
        } catch {
          // esbuild can only watch from load/transform: `?flux` modules add their script there.
        }
      }
      // `vite build --app`: an environment that ships no assets (SSR) runs after the client one on the same cache;
      // its line would repeat the client's, so it speaks only when it paid, generated or failed something itself.
      const env = (this as { environment?: { config: { builder?: unknown; build: { emitAssets?: boolean } } } }).environment
      const { generated, failed, paid } = ctx.summary!
      const echo = env?.config.builder !== undefined && env.config.build.emitAssets === false && !generated && !failed && !paid
      if (!echo) ctx.engine!.options.logger.info(summary)
    },

    resolveId(id, importer) {
      if (id === VIRTUAL_ID || id === WEBPACK_VIRTUAL) return RESOLVED_VIRTUAL
      return FLUX_QUERY.test(id) ? (ctx.configure(process.cwd()), ctx.resolveId(id, importer)!) : null
    },

    loadInclude(id) {
      return id === RESOLVED_VIRTUAL || FLUX_QUERY.test(id)
    },

    async load(id) {
      ctx.configure(process.cwd())
      // Scripts are watch files, added before any failure so that fixing a broken script rebuilds.
      if (id === RESOLVED_VIRTUAL) {
        const code = await ctx.virtualModule(target(this)).catch(fail)
        for (const file of ctx.files) this.addWatchFile(file)
        return code
      }
      const file = id.replace(FLUX_QUERY, '')
      this.addWatchFile(file)
      return ctx.fluxModule(file, target(this)).catch(fail)
    },

    vite: {
      configResolved(config) {
        dev = config.command === 'serve'
        base = config.base
        assetsDir = config.build.assetsDir
        sink = { logger: config.logger }
        ctx.configure(config.root, resolve(config.root, config.build.outDir))
      },
      handleHotUpdate({ file, server, modules }) {
        // A script edit already reaches its `?flux` module (same file); the list of every script must follow.
        const virtual = ctx.files.includes(file) && server.moduleGraph.getModuleById(RESOLVED_VIRTUAL)
        return virtual ? [...modules, virtual] : undefined
      },
      configureServer(server) {
        server.middlewares.use(fluxMiddleware(() => ctx.configure(server.config.root).store, () => base))
        // server.close() waits for pending module loads before closeBundle: a generation in progress would hold it
        // for as long as its requests take. The HTTP server closes first (Vite destroys its sockets): abort then.
        server.httpServer?.once('close', () => ctx.cancel('the dev server was closed'))
      },
      closeBundle() {
        // Also called when the dev server closes.
        void ctx.close()
      },
    },
    webpack(compiler) {
      sink = { logger: compiler.getInfrastructureLogger(NAME) as Logger, named: true }
      ctx.configure(compiler.context, compiler.options.output.path)
      compiler.hooks.normalModuleFactory.tap(NAME, factory => {
        factory.hooks.beforeResolve.tap(NAME, data => {
          if (data.request === VIRTUAL_ID) data.request = WEBPACK_VIRTUAL
        })
      })
    },
    rspack(compiler) {
      sink = { logger: compiler.getInfrastructureLogger(NAME) as Logger, named: true }
      ctx.configure(compiler.context, compiler.options.output.path)
    },
    esbuild: {
      setup(build) {
        const { outdir, outfile, absWorkingDir } = build.initialOptions
        // unplugin writes emitted files under `outdir` only: with `outfile` the images would silently go missing.
        if (!outdir) {
          throw new FluxError(
            'FLUX_ESBUILD_OUTDIR',
            `flux-assets: esbuild needs the \`outdir\` option to emit images${outfile ? ` (got only \`outfile\`: use \`outdir\`, and \`entryNames\` to name the bundle)` : ''}`,
          )
        }
        publicPath = build.initialOptions.publicPath
        const root = absWorkingDir ?? process.cwd()
        esbuildOutDir = resolve(root, outdir)
        ctx.configure(root, esbuildOutDir)
        build.onDispose?.(() => void ctx.close())
      },
    },
    // Rollup calls closeWatcher as soon as a watch is closed, even mid-build: stop paying for a build nobody awaits.
    // (Rolldown and Vite 8 only call it once the build in progress has finished.)
    rollup: {
      closeWatcher() {
        ctx.cancel('the watcher was closed')
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
