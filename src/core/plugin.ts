import { mkdirSync, writeFileSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import type { UnpluginBuildContext, UnpluginFactory } from 'unplugin'
import { FLUX_QUERY, VIRTUAL_ID } from './codegen'
import type { BuildOutput, OutputImage } from './emit'
import { createLogger, progressReporter, type Sink } from './logger'
import { MANIFEST_FILE } from './manifest'
import { BuildSession, type Target } from './session'
import { fluxMiddleware } from './dev'
import { FluxError } from './errors'
import type { FluxAssetsOptions, Logger } from './types'

const NAME = 'unplugin-flux-assets'
const RESOLVED_VIRTUAL = '\0virtual:flux-assets.js'
/** webpack refuses unknown URI schemes such as `virtual:` before any resolver runs: it gets this name instead. */
const WEBPACK_VIRTUAL = 'unplugin-flux-assets/virtual'

/**
 * The resolved id of a `?flux` module outside webpack and Rspack: `\0flux:<script path>.flux.js`. Vite before 8 has
 * a JSON plugin that transforms every id matching `/\.json(?:$|\?)/` (vite 6.4 and 7.3 `vite:json`, skipping only
 * `?worker`, `?raw`, `?url`), so `<script>.json?flux` got our JavaScript parsed as JSON. This id neither ends in `.json`
 * nor has `.json?` in it, ends in `.js` (Vite's dev server then serves it as a JS request, with no `?import` added),
 * and starts with `\0`, the Rollup/Vite convention for a module no other plugin should touch (Vite dev serves it as
 * `/@id/__x00__flux:...`). webpack and Rspack keep `<script>.json?flux`: a real file with a resource query, which
 * unplugin's load rule types `javascript/auto` (a missing file would become an on-disk virtual module there).
 */
const FLUX_ID = /^\0flux:(.+)\.flux\.js(?:\?.*)?$/
const fluxId = (file: string) => `\0flux:${file}.flux.js`
/** The script file of a resolved `?flux` id, or `undefined`. */
function fluxFile(id: string): string | undefined {
  const match = FLUX_ID.exec(id)
  if (match) return match[1]
  return FLUX_QUERY.test(id) && !id.startsWith('\0') ? id.replace(FLUX_QUERY, '') : undefined
}

/**
 * Summary lines printed in this process: the set of cache keys of a build (and its root) -> the output folder whose
 * build printed it. Frameworks build the same scripts several times per command (SvelteKit and Astro: server then
 * client; Nuxt: client then server; Next: server, edge and client compilations), often through separate plugin
 * instances (a config file loaded once per build) and separate copies of this module (ESM and CJS): hence global.
 */
const PRINTED: Map<string, string> = ((globalThis as Record<symbol, unknown>)[Symbol.for('unplugin-flux-assets.printed')] ??= new Map()) as Map<string, string>

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
  const logger = createLogger(() => sink, () => true)
  // A progress line while images are generated, unless the user watches progress themselves.
  const ctx = new BuildSession(options.onProgress ? options : { ...options, onProgress: progressReporter(logger.info) }, logger)
  const webpackLike = framework === 'webpack' || framework === 'rspack'
  /** Rollup, Rolldown and Vite: the bundler names emitted images (`assetFileNames`); the manifest waits for it. */
  const rollupLike = framework === 'vite' || framework === 'rollup' || framework === 'rolldown'
  let dev = false
  let base = '/'
  let assetsDir = 'assets'
  let publicPath: string | undefined
  /** esbuild's `outdir`, resolved against its `absWorkingDir` (unplugin resolves it against the process cwd). */
  let esbuildOutDir: string | undefined
  /** Vite 8 bundles with Rolldown, whose `import.meta.ROLLUP_FILE_URL_` Vite resolves; Vite 6 and 7 do not. */
  let rolldown = false
  /** Where the manifest goes, relative to the output dir (Nuxt deploys only its assets folder: see configResolved). */
  let manifestFile = MANIFEST_FILE
  /** webpack/Rspack: false in a server compilation (Next's `server`, `edge-server`): URLs only, no files. */
  let emits = true
  /** webpack/Rspack's compiler, from their `apply`. */
  let compiler: WebpackLikeCompiler | undefined
  /** The output folder this instance builds into, for telling one environment's summary from another's. */
  let outputDir: string | undefined

  /** The JS expression of an emitted image's URL, resolved the way the bundler resolves its own assets. */
  function url(image: OutputImage): string {
    if (webpackLike) return `__webpack_public_path__ + ${JSON.stringify(image.fileName)}`
    if (framework === 'esbuild') return JSON.stringify(`${publicPath ? `${publicPath.replace(/\/+$/, '')}/` : './'}${image.fileName}`)
    // Vite: the placeholders Vite itself gives an imported image (asset.ts fileToBuiltUrl), so `base`, a relative
    // base and `experimental.renderBuiltUrl` (Nuxt's `/_nuxt/` runtime URLs) apply exactly as to the app's own
    // assets. Vite 6/7 replace `__VITE_ASSET__<ref>__` in renderChunk; Vite 8 resolves `import.meta.ROLLDOWN_FILE_URL_`
    // / `ROLLUP_FILE_URL_` through its resolveFileUrl hook (and its __VITE_ASSET__ pattern wants Rolldown's ids).
    if (framework === 'vite' && !rolldown) return JSON.stringify(`__VITE_ASSET__${image.ref}__`)
    return `import.meta.ROLLUP_FILE_URL_${image.ref}`
  }

  /** Emits through the calling hook's own context (webpack: its compilation). */
  function output(hook: UnpluginBuildContext): BuildOutput {
    return {
      assetsDir,
      deferManifest: rollupLike,
      // Rolldown (and Vite 8 on it) copies the bytes at emitFile; esbuild's writeFileSync is done with them on return.
      copiesSources: rolldown || framework === 'rolldown' || !!esbuildOutDir,
      emitFile: ({ fileName, name }, source) => {
        if (esbuildOutDir) {
          const path = resolve(esbuildOutDir, fileName)
          mkdirSync(dirname(path), { recursive: true })
          writeFileSync(path, source)
          return undefined
        }
        if (!emits) return undefined
        if (fileName === MANIFEST_FILE) fileName = manifestFile
        // By name where the bundler names assets: its `assetFileNames` then decides folder and hash (SvelteKit's
        // `_app/immutable/assets/`, Nuxt's `_nuxt/`), as for the app's own images.
        const ref: unknown = hook.emitFile(rollupLike && name ? { type: 'asset', name, source } : { type: 'asset', fileName, source })
        return typeof ref === 'string' ? ref : undefined
      },
      url,
    }
  }

  /** Rollup-likes: the manifest, once the bundler has named the images (generateBundle). */
  async function emitManifest(hook: { emitFile(file: { type: 'asset'; fileName: string; source: string }): string; getFileName(ref: string): string }) {
    if (dev || !ctx.summary) return
    const source = await ctx.manifest(ctx.allRecords(), image => (image.ref ? hook.getFileName(image.ref) : image.fileName))
    hook.emitFile({ type: 'asset', fileName: manifestFile, source })
  }

  /**
   * webpack/Rspack, once their defaults are in (they are applied after plugins, so not in `apply`): images go to the
   * folder of the asset filename template — `module.generator.asset.filename` (Next sets `static/media/[name].[hash:8]
   * [ext]` there, webpack-config.js), else `output.assetModuleFilename` (webpack's default `[hash][ext][query]`: the
   * output root) — and only a compilation for the browser emits them: Next's `server` and `edge-server`
   * compilations would write copies to `.next/server/`. Their code still gets the same URLs.
   */
  function webpackSetup(compiler: WebpackLikeCompiler): void {
    const { output, module, name } = compiler.options
    const generator = module?.generator as Record<string, { filename?: unknown } | undefined> | undefined
    const template = generator?.asset?.filename ?? generator?.['asset/resource']?.filename ?? output.assetModuleFilename
    assetsDir = typeof template === 'string' ? folderOf(template) : 'assets'
    outputDir = output.path
    emits = !(name === 'server' || name === 'edge-server' || (compiler.platform?.node && !compiler.platform.web))
  }

  /** Prints the summary line, unless it repeats the line another environment of the same build printed. */
  function printSummary(summary: string, hook: UnpluginBuildContext): void {
    const env = (hook as { environment?: { config: { build: { outDir: string } } } }).environment
    const out = env ? resolve(ctx.root, env.config.build.outDir) : (outputDir ?? '')
    const { generated, failed, paid } = ctx.summary!
    const keys = `${ctx.root}\n${[...new Set(ctx.allRecords().map(r => r.key))].sort().join(',')}`
    const previous = PRINTED.get(keys)
    // Nothing new (no image made, paid or lost) and already said for another output of this build: an echo. The same
    // output again is a new build (watch mode) and speaks.
    if (!generated && !failed && !paid && previous !== undefined && previous !== out) return
    PRINTED.set(keys, out)
    ctx.engine!.options.logger.info(summary)
  }
  const target = (hook: UnpluginBuildContext): Target => (dev ? { devBase: base } : output(hook))

  return {
    name: NAME,
    enforce: 'pre',

    async buildStart() {
      ctx.configure(process.cwd())
      if (dev) return
      if (compiler) webpackSetup(compiler)
      rolldown = !!(this as { meta?: { rolldownVersion?: string } }).meta?.rolldownVersion
      if (framework === 'rollup' || framework === 'rolldown') {
        const rollup = this as unknown as { info?(m: string): void; warn(m: string): void }
        sink = { logger: { info: rollup.info?.bind(rollup), warn: m => rollup.warn(m), error: m => rollup.warn(m) }, named: true }
      }
      const summary = await ctx.startBuild(output(this)).catch(e => fail(e, framework))
      for (const file of ctx.files) {
        try {
          this.addWatchFile(file)
        } catch {
          // esbuild can only watch from load/transform: `?flux` modules add their script there.
        }
      }
      // Rollup-likes and esbuild build one output per run: their line always prints. Vite environments (`vite build
      // --app`, SvelteKit, Astro, Nuxt) and webpack compilations (Next) repeat the same build: see printSummary.
      if (framework === 'vite' || webpackLike) printSummary(summary, this)
      else ctx.engine!.options.logger.info(summary)
    },

    resolveId(id, importer) {
      if (id === VIRTUAL_ID || id === WEBPACK_VIRTUAL) return RESOLVED_VIRTUAL
      // Vite's dev server resolves the id again when the browser asks for `/@id/__x00__flux:...`.
      if (FLUX_ID.test(id)) return id
      if (!FLUX_QUERY.test(id)) return null
      ctx.configure(process.cwd())
      const resolved = ctx.resolveId(id, importer)!
      return webpackLike ? resolved : fluxId(resolved.replace(FLUX_QUERY, ''))
    },

    loadInclude(id) {
      return id === RESOLVED_VIRTUAL || fluxFile(id) !== undefined
    },

    async load(id) {
      ctx.configure(process.cwd())
      // Scripts are watch files, added before any failure so that fixing a broken script rebuilds.
      if (id === RESOLVED_VIRTUAL) {
        const code = await ctx.virtualModule(target(this)).catch(e => fail(e, framework))
        for (const file of ctx.files) this.addWatchFile(file)
        return code
      }
      const file = fluxFile(id)
      if (file === undefined) return null
      this.addWatchFile(file)
      return ctx.fluxModule(file, target(this)).catch(e => fail(e, framework))
    },

    vite: {
      configResolved(config) {
        dev = config.command === 'serve'
        base = config.base
        assetsDir = config.build.assetsDir
        outputDir = resolve(config.root, config.build.outDir)
        // Nuxt deploys `<buildDir>/dist/client/<buildAssetsDir>` only (its Nitro publicAssets), not the client outDir:
        // a manifest at the outDir's root would never reach `.output/public`. There it goes into the assets folder.
        if (config.plugins.some(p => p.name.startsWith('nuxt:'))) manifestFile = `${assetsDir.replace(/^\/+|\/+$/g, '')}/${MANIFEST_FILE}`
        sink = { logger: config.logger }
        ctx.configure(config.root, resolve(config.root, config.build.outDir), dev)
      },
      handleHotUpdate({ file, server, modules }) {
        // A script edit must reach its `?flux` module (its id is not the file's) and the list of every script.
        const graph = server.moduleGraph
        const extra = [graph.getModuleById(fluxId(file)), ctx.files.includes(file) ? graph.getModuleById(RESOLVED_VIRTUAL) : undefined].filter((m): m is NonNullable<typeof m> => m !== undefined && !modules.includes(m))
        return extra.length ? [...modules, ...extra] : undefined
      },
      async generateBundle() {
        await emitManifest(this)
      },
      configureServer(server) {
        server.middlewares.use(fluxMiddleware(() => ctx.configure(server.config.root).store, () => base, () => (ctx.configure(server.config.root), ctx.variants), key => ctx.knownHit(key)))
        // server.close() waits for pending module loads before closeBundle: a generation in progress would hold it
        // for as long as its requests take. The HTTP server closes first (Vite destroys its sockets): abort then.
        server.httpServer?.once('close', () => ctx.cancel('the dev server was closed'))
      },
      closeBundle() {
        // Also called when the dev server closes.
        void ctx.close()
      },
    },
    webpack(webpackCompiler) {
      sink = { logger: webpackCompiler.getInfrastructureLogger(NAME) as Logger, named: true }
      compiler = webpackCompiler as unknown as WebpackLikeCompiler
      ctx.configure(webpackCompiler.context, webpackCompiler.options.output.path)
      webpackCompiler.hooks.normalModuleFactory.tap(NAME, factory => {
        factory.hooks.beforeResolve.tap(NAME, data => {
          if (data.request === VIRTUAL_ID) data.request = WEBPACK_VIRTUAL
        })
      })
    },
    rspack(rspackCompiler) {
      sink = { logger: rspackCompiler.getInfrastructureLogger(NAME) as Logger, named: true }
      compiler = rspackCompiler as unknown as WebpackLikeCompiler
      ctx.configure(rspackCompiler.context, rspackCompiler.options.output.path)
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
      async generateBundle() {
        await emitManifest(this)
      },
    },
    rolldown: {
      async generateBundle() {
        await emitManifest(this)
      },
    },
    writeBundle() {
      // Release idle connections so a finished build can exit; the next build (watch mode) opens new ones.
      void ctx.close()
    },
  }
}

/** Our own errors are messages for a person: no stack trace in the build output. */
function fail(error: unknown, framework?: string): never {
  if (error instanceof FluxError) {
    // No stack: Vite and Rollup print the message and then the stack, which would only repeat it; webpack and Rspack
    // print the stack alone, so theirs is the message line. The name reads as who speaks ("flux-assets: a.script.json:
    // …"); the code stays on `code`.
    const clean = Object.assign(new Error(error.message), { code: error.code })
    clean.name = 'flux-assets'
    clean.stack = framework === 'webpack' || framework === 'rspack' ? `flux-assets: ${error.message}` : ''
    throw clean
  }
  throw error
}

/** What webpackSetup reads of a webpack or Rspack compiler. */
interface WebpackLikeCompiler {
  options: { name?: string; output: { path?: string; assetModuleFilename?: unknown }; module?: { generator?: unknown } }
  /** webpack 5.87+: what the target is (Rspack has no such field). */
  platform?: { web?: boolean | null; node?: boolean | null }
}

/** The folder part of a webpack filename template: the segments before the first one with a `[placeholder]`. */
function folderOf(template: string): string {
  const parts = template.split('/')
  parts.pop()
  const end = parts.findIndex(p => p.includes('['))
  return (end === -1 ? parts : parts.slice(0, end)).filter(p => p && p !== '.').join('/')
}
