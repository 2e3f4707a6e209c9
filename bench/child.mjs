// One measured task in a fresh Node process: `node bench/child.mjs <task> <json args>`. Prints one JSON line.
// Times are taken inside the task (performance.now), so process start is never part of them; each result also
// carries the process's peak RSS.
import { createHash } from 'node:crypto'
import { closeSync, fstatSync, openSync, readdirSync, readFileSync, readSync } from 'node:fs'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { createRequire, syncBuiltinESMExports } from 'node:module'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'

const [task, raw] = process.argv.slice(2)
const args = JSON.parse(raw ?? '{}')

/** @param {string} file */
const load = file => import(pathToFileURL(join(args.dist, file)).href)

function quietLogger() {
  const logs = { retries: 0, warnings: /** @type {string[]} */ ([]), errors: /** @type {string[]} */ ([]) }
  return {
    logs,
    logger: {
      info: (/** @type {string} */ m) => void (/; retry \d+ in \d+ ms$/.test(m) && logs.retries++),
      warn: (/** @type {string} */ m) => void logs.warnings.push(m),
      error: (/** @type {string} */ m) => void logs.errors.push(m),
    },
  }
}

const tasks = {
  /**
   * The plugin's engine: scan (not timed), then generate everything (timed). Cold generation and rate limit. Also
   * `fromScanMs`, timed from before the scan: an empty cache loads the provider during the scan (#16), and that figure
   * keeps its cost in view.
   */
  async engine() {
    const { createEngine, resolveOptions } = await load('index.js')
    const { logs, logger } = quietLogger()
    const options = resolveOptions(
      { root: args.root, cacheDir: args.cacheDir, apiKey: args.apiKey, baseURL: args.baseURL, concurrency: args.concurrency, maxNewImages: 1e9, logger, ...args.options },
      args.root,
      { env: {} },
    )
    const engine = createEngine(options)
    const scanStarted = performance.now()
    const { requests } = await engine.scan()
    const started = performance.now()
    const { summary } = await engine.generate(requests)
    // What a build waits for before it ends: the roots file generate() leaves writing behind it (engine.flush()).
    await engine.flush()
    const wallMs = performance.now() - started
    const fromScanMs = performance.now() - scanStarted
    await engine.close()
    return { wallMs, fromScanMs, images: summary.generated, summary, retries: logs.retries, warnings: logs.warnings.length, errors: logs.errors }
  },

  /** The original backend's way: one prompt after the other, each answer written to disk. */
  async sequential() {
    await mkdir(args.outDir, { recursive: true })
    let retries = 0
    const started = performance.now()
    for (const [i, prompt] of args.prompts.entries()) {
      const bytes = await naive(prompt, () => retries++)
      await writeFile(join(args.outDir, `${i}.jpg`), bytes)
    }
    return { wallMs: performance.now() - started, images: args.prompts.length, retries }
  },

  /** Everything at once with Promise.all; a 429 waits its retry-after and tries again. */
  async unbounded() {
    await mkdir(args.outDir, { recursive: true })
    let retries = 0
    let firstTry = 0
    const started = performance.now()
    await Promise.all(
      args.prompts.map(async (/** @type {string} */ prompt, /** @type {number} */ i) => {
        let attempts = 0
        const bytes = await naive(prompt, () => (retries++, attempts++))
        if (attempts === 0) firstTry++
        await writeFile(join(args.outDir, `${i}.jpg`), bytes)
      }),
    )
    return { wallMs: performance.now() - started, images: args.prompts.length, retries, firstTry }
  },

  /** The least a client can do at the same concurrency: C fetch loops, each answer written to disk, nothing else. */
  async pool() {
    await mkdir(args.outDir, { recursive: true })
    let retries = 0
    let next = 0
    const started = performance.now()
    // The same one catalog request the plugin makes before its first generation (#9), so both pay for it.
    await (await fetch(`${args.baseURL}/models`, { headers: { authorization: `Bearer ${args.apiKey}` } })).text()
    const worker = async () => {
      while (next < args.prompts.length) {
        const i = next++
        await writeFile(join(args.outDir, `${i}.jpg`), await naive(args.prompts[i], () => retries++))
      }
    }
    await Promise.all(Array.from({ length: args.concurrency }, worker))
    return { wallMs: performance.now() - started, images: args.prompts.length, retries }
  },

  /**
   * `vite build` of a scratch app, with the plugin (offline: every image must come from the cache) or without it.
   * Timed from before Vite and the plugin are imported to the end of the build: loading them is part of a build.
   */
  async vite() {
    const started = performance.now()
    const { build } = await import('vite')
    const plugins = []
    const { logs, logger } = quietLogger()
    let own
    let depsImportMs = 0
    if (args.plugin) {
      // The design card's packages the plugin imports (#16's floor of its import), timed on their own first; the
      // plugin's import, timed next, is its own modules then. Their sum is what the plugin's import always cost.
      const deps = performance.now()
      await Promise.all(['unplugin', 'fast-glob', 'p-limit'].map(m => import(m)))
      depsImportMs = performance.now() - deps
      const loading = performance.now()
      const { default: flux } = await load('vite.js')
      const pluginImportMs = depsImportMs + performance.now() - loading
      // args.flux: more plugin options (the variants scenario: formats, widths).
      own = timeHooks(flux({ cacheDir: args.cacheDir, offline: true, logger, ...args.flux }), pluginImportMs)
      plugins.push(own.plugin)
    }
    // args.bare: the floor of shipping the files through the bundler (scenario 2): a minimal plugin, no cache.
    // Its hooks are timed as the plugin's are: reading the files and emitFile()ing them is the floor of the hooks.
    // args.promised: the promise floor (#16, bareEmitter): the same packages imported inside the timed build, timed as
    // the plugin's are; the module and entries the plugin's first build captured (args.captureModule, below).
    let promised
    if (args.promised) {
      const deps = performance.now()
      await Promise.all(['unplugin', 'p-limit'].map(m => import(m)))
      const glob = (await import('fast-glob')).default
      depsImportMs = performance.now() - deps
      promised = { glob, root: args.root, cacheDir: args.cacheDir, ...JSON.parse(await readFile(args.module, 'utf8')) }
    }
    const bare = args.bare || promised ? timeHooks(bareEmitter(args.bare, promised), 0) : undefined
    if (bare) plugins.push(bare.plugin)
    // args.captureModule: keep the plugin's virtual:flux-assets as the bundler got it, and the file each of its URLs
    // names, for the promise floor to serve the very same module (bareEmitter).
    let moduleCode = ''
    if (args.captureModule) {
      plugins.push({
        name: 'capture-module',
        /** @param {string} code @param {string} id */
        transform(code, id) {
          if (id.includes('virtual:flux-assets')) moduleCode = code
        },
        /** @this {any} @param {unknown} _ @param {Record<string, any>} bundle */
        async generateBundle(_, bundle) {
          const files = Object.fromEntries([...moduleCode.matchAll(/import\.meta\.ROLLUP_FILE_URL_([\w$]+)/g)].map(m => [m[1], this.getFileName(m[1])]))
          const manifest = JSON.parse(String(Object.values(bundle).find(f => f.fileName.endsWith('flux-assets.json')).source))
          const entries = manifest.entries.map((/** @type {any} */ e) => ({ id: e.id, key: e.key, prompt: e.prompt }))
          await writeFile(args.captureModule, JSON.stringify({ module: { code: moduleCode, files }, entries }))
        },
      })
    }
    const imported = performance.now()
    await build({ root: args.root, configFile: false, logLevel: 'silent', build: { outDir: args.outDir, emptyOutDir: true, ...args.build }, plugins })
    const buildMs = performance.now() - started
    // The build's peak, before hashFloor below reads every cached image into memory for its own timing.
    const maxRssBytes = process.resourceUsage().maxRSS * 1024
    let placeholders = 0
    if (args.plugin) placeholders = JSON.parse(await readFile(join(args.outDir, 'flux-assets.json'), 'utf8')).entries.filter((/** @type {any} */ e) => e.placeholder).length
    return { buildMs, maxRssBytes, importMs: imported - started, placeholders, warnings: logs.warnings.length, ...(own ? { own: { ...own.times(), depsImportMs, ...(await hashFloor(args.cacheDir)) } } : {}), ...(bare ? { bareHooksMs: bare.times().hooksMs, depsImportMs } : {}) }
  },

  /**
   * `vite` (the dev server) of a scratch app, with the plugin (offline) or without it, and the first page load in
   * Chromium. Chromium is launched first, untimed; timed from before Vite and the plugin are imported, through
   * createServer + listen, to the moment every <img> of the page is complete with a naturalWidth > 0, in a fresh
   * browser context with its cache disabled. Also counts the sha256s this process computed over inputs ≥ 1 KB (keys
   * hash a few hundred bytes; an image is ~150 KB).
   */
  async dev() {
    const hashes = countHashes()
    const { chromium } = await import('playwright-core')
    const browser = await chromium.launch({ executablePath: args.chromium, args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'] })
    const started = performance.now()
    const { createServer } = await import('vite')
    const plugins = []
    const { logs, logger } = quietLogger()
    if (args.plugin) {
      const { default: flux } = await load('vite.js')
      plugins.push(flux({ cacheDir: args.cacheDir, offline: true, logger, ...args.flux }))
    }
    const server = await createServer({ root: args.root, configFile: false, logLevel: 'silent', server: { host: '127.0.0.1', port: 0, strictPort: false }, plugins })
    await server.listen()
    const listening = performance.now()
    const context = await browser.newContext()
    const page = await context.newPage()
    const cdp = await context.newCDPSession(page)
    await cdp.send('Network.setCacheDisabled', { cacheDisabled: true })
    await page.goto(/** @type {string} */ (server.resolvedUrls?.local[0]), { waitUntil: 'commit' })
    await page.waitForFunction(
      (/** @type {number} */ n) => {
        const images = /** @type {any[]} */ ([.../** @type {any} */ (globalThis).document.images])
        return images.length === n && images.every(i => i.complete && i.naturalWidth > 0)
      },
      args.images,
      { timeout: 120_000 },
    )
    const pageMs = performance.now() - started
    const images = await page.evaluate(() => /** @type {any} */ (globalThis).document.images.length)
    await context.close()
    await server.close()
    await browser.close()
    return { pageMs, listenMs: listening - started, images, warnings: logs.warnings.length, sha256: hashes() }
  },

  /**
   * sharp alone, the way the variants stage uses it (decode once to raw pixels, clone per variant): the time of each
   * format × width for one photo (median of `runs`), then the throughput of `files` full-width WebPs at concurrency 1
   * and at the machine's cores.
   */
  async encode() {
    const { default: sharp } = await import('sharp')
    const { availableParallelism } = await import('node:os')
    const decode = async (/** @type {string} */ file) => {
      const { data, info } = await sharp(await readFile(file)).raw().toBuffer({ resolveWithObject: true })
      return sharp(data, { raw: { width: info.width, height: info.height, channels: info.channels } })
    }
    /** @param {import('sharp').Sharp} base @param {string} format @param {number} width @param {number} height */
    const encodeOne = (base, format, width, height) => {
      const p = base.clone().resize(width, height, { fit: 'fill' })
      return (format === 'avif' ? p.avif({ quality: args.quality.avif }) : p.webp({ quality: args.quality.webp })).toBuffer()
    }
    const t0 = performance.now()
    const base = await decode(args.files[0])
    const decodeMs = performance.now() - t0
    const { width: W = 0, height: H = 0 } = await sharp(await readFile(args.files[0])).metadata()
    const rows = []
    for (const format of args.formats) {
      for (const width of args.widths) {
        const runs = format === 'avif' ? 1 : args.runs
        const times = []
        let bytes = 0
        for (let i = 0; i < runs; i++) {
          const started = performance.now()
          bytes = (await encodeOne(base, format, width, Math.round((H * width) / W))).length
          times.push(performance.now() - started)
        }
        rows.push({ format, width, ms: times.sort((a, b) => a - b)[times.length >> 1], bytes })
      }
    }
    const throughput = []
    for (const concurrency of [1, availableParallelism()]) {
      const started = performance.now()
      let next = 0
      const worker = async () => {
        while (next < args.files.length) {
          const b = await decode(args.files[next++])
          await encodeOne(b, 'webp', W, H)
        }
      }
      await Promise.all(Array.from({ length: concurrency }, worker))
      const ms = performance.now() - started
      throughput.push({ concurrency, images: args.files.length, ms, imagesPerSecond: (args.files.length * 1000) / ms })
    }
    return { decodeMs, width: W, height: H, rows, throughput, versions: { sharp: sharp.versions.sharp, vips: sharp.versions.vips } }
  },

  /** Discovery + keying (scan) and cache verification (generate, offline) of an all-cached project. */
  async discover() {
    const { createEngine, resolveOptions } = await load('index.js')
    const { logs, logger } = quietLogger()
    const engine = createEngine(resolveOptions({ root: args.root, cacheDir: args.cacheDir, offline: true, logger }, args.root, { env: {} }))
    // The longest the event loop was held (a dev server runs the same scan): Node's event-loop delay histogram, sampled
    // every millisecond by a libuv timer; its max is the longest a timer waited past its time, i.e. the longest
    // stretch of synchronous work (+ up to 1 ms of sampling). One for the scan, one for the cache check.
    const { monitorEventLoopDelay } = await import('node:perf_hooks')
    // A block is recorded when the loop comes round again: after each stage, untimed, let it (a 2 ms timer) first.
    const delay = monitorEventLoopDelay({ resolution: 1 })
    const settle = () => new Promise(resolve => setTimeout(resolve, 2))
    delay.enable()
    const started = performance.now()
    const { files, requests } = await engine.scan()
    const scanMs = performance.now() - started
    await settle()
    const scanBlockMs = delay.max / 1e6
    delay.reset()
    const checking = performance.now()
    const { summary } = await engine.generate(requests)
    await engine.flush()
    const checkMs = performance.now() - checking
    await settle()
    delay.disable()
    const checkBlockMs = delay.max / 1e6
    await engine.close()
    return {
      totalMs: scanMs + checkMs,
      scanMs,
      checkMs,
      scanBlockMs,
      checkBlockMs,
      maxBlockMs: Math.max(scanBlockMs, checkBlockMs),
      files: files.length,
      occurrences: requests.length,
      unique: summary.unique,
      cached: summary.cached,
      placeholders: summary.placeholders,
      warnings: logs.warnings.length,
    }
  },

  /**
   * The physical floor of scenario 3: only reading + JSON.parse of every script, and reading + parsing every cache
   * record and stat'ing its image; no glob, no schema, no keys. Once one file at a time with sync calls (what the disk
   * and the parser allow one thread), once through fs's callback API 64 at a time (what the async reads cost).
   */
  async floor() {
    const fs = await import('node:fs')
    const walk = (/** @type {string} */ dir, /** @type {RegExp} */ re) =>
      fs.readdirSync(dir, { recursive: true, withFileTypes: true }).filter(e => e.isFile() && re.test(e.name)).map(e => join(e.parentPath ?? e.path, e.name))
    const scripts = walk(args.root, /\.script\.json$/)
    const v1 = join(args.cacheDir, 'v1')
    const records = fs.readdirSync(v1).filter(s => /^[0-9a-f]{2}$/.test(s)).flatMap(s => fs.readdirSync(join(v1, s)).filter(n => /^[0-9a-f]{64}\.json$/.test(n)).map(n => join(v1, s, n)))
    const image = (/** @type {string} */ rec, /** @type {any} */ r) => join(rec, '..', `${r.key}-${r.sha256.slice(0, 16)}.${r.ext}`)
    let t = performance.now()
    for (const f of scripts) JSON.parse(fs.readFileSync(f, 'utf8'))
    const syncScriptsMs = performance.now() - t
    t = performance.now()
    for (const f of records) fs.statSync(image(f, JSON.parse(fs.readFileSync(f, 'utf8'))))
    const syncRecordsMs = performance.now() - t
    const read = (/** @type {string} */ f) => new Promise((res, rej) => fs.readFile(f, 'utf8', (e, x) => (e ? rej(e) : res(x))))
    const stat = (/** @type {string} */ f) => new Promise((res, rej) => fs.stat(f, (e, x) => (e ? rej(e) : res(x))))
    const bounded = async (/** @type {string[]} */ items, /** @type {(f: string) => Promise<unknown>} */ fn) => {
      let next = 0
      await Promise.all(Array.from({ length: 64 }, async () => { while (next < items.length) await fn(items[next++]) }))
    }
    t = performance.now()
    await bounded(scripts, async f => JSON.parse(/** @type {string} */ (await read(f))))
    const asyncScriptsMs = performance.now() - t
    t = performance.now()
    await bounded(records, async f => stat(image(f, JSON.parse(/** @type {string} */ (await read(f))))))
    const asyncRecordsMs = performance.now() - t
    return { scripts: scripts.length, records: records.length, syncScriptsMs, syncRecordsMs, syncMs: syncScriptsMs + syncRecordsMs, asyncScriptsMs, asyncRecordsMs, asyncMs: asyncScriptsMs + asyncRecordsMs }
  },
}

/**
 * The least any plugin must do to ship image files as build assets (the floor of scenario 2): in buildStart, read each
 * file of `dir` and `emitFile` it by name; `virtual:flux-assets` lists their URLs (`import.meta.ROLLUP_FILE_URL_`,
 * which Vite 8 resolves, as it does the plugin's). No scan, no cache, no check, no manifest.
 *
 * `promised` (#16's "promise floor"): the least a plugin keeping this one's promises does in a warm build, and nothing
 * else: the design card's packages imported (by the caller, inside the timed build); the scripts found with fast-glob
 * as the plugin's defaults find them, read and parsed; each prompt keyed (one sha256), its cache record read for the
 * sha256 its image was stored with, the image read from the cache, hashed and compared (no damaged byte ships) and
 * handed over; and, as `virtual:flux-assets`, the very module the plugin gave the bundler in an earlier build (`module`
 * and `entries`, captured by `captureModule` with the manifest's ids and keys), each URL pointing at this build's file
 * of the same image: what the page asks for costs the bundler the same. No schema, plan, stats, locks, manifest, types,
 * roots or recovery, and the module is not made: those are the plugin's own work. It reads the cache, not `dir` (unset then). @param {string | undefined} dir @param {{ glob: any, root: string, cacheDir: string, module: { code: string, files: Record<string, string> }, entries: Array<{ id: string, key: string, prompt: string }> }} [promised]
 */
function bareEmitter(dir, promised) {
  /** @type {Array<{ id: string, ref: string }>} */
  let refs = []
  return {
    name: 'bare-emitter',
    /** @this {any} */
    buildStart() {
      // Every file read into one buffer: Rolldown copies a source at emitFile (the plugin reuses its read buffers the
      // same way), so this allocates and holds the least any plugin shipping these bytes through the bundler can. A
      // fresh buffer per file (readFileSync, until 2026-12-03) made the 300-image hooks take 199 ms instead of 32 ms,
      // and peak 0.2× the image bytes higher (bench/README).
      const read = reusedReader()
      if (!promised) {
        const folder = /** @type {string} */ (dir)
        refs = readdirSync(folder).map(name => ({ id: name, ref: this.emitFile({ type: 'asset', name, source: read(join(folder, name)) }) }))
        return
      }
      return (async () => {
        const scripts = await promised.glob(['**/*.script.json'], { cwd: promised.root, absolute: true, ignore: ['**/node_modules/**', '**/.*/**', 'dist*/**'], onlyFiles: true })
        const prompts = []
        for (const file of scripts) for (const scene of JSON.parse(readFileSync(file, 'utf8')).visual_track) prompts.push(...Object.values(scene.assets))
        const { entries } = promised
        if (prompts.length !== entries.length) throw new Error(`promise floor: ${prompts.length} prompts in ${scripts.length} scripts, ${entries.length} entries`)
        const v1 = join(promised.cacheDir, 'v1')
        refs = entries.map(e => {
          // Each prompt keyed (a sha256 of its text and settings), its record read for the sha256 it was stored with,
          // its image read, hashed and compared, then handed over: the least a keyed, verified cache does.
          createHash('sha256').update(JSON.stringify({ prompt: e.prompt, model: 'black-forest-labs/FLUX.2-dev', width: 1024, height: 768, steps: 28 })).digest('hex')
          const record = JSON.parse(readFileSync(join(v1, e.key.slice(0, 2), `${e.key}.json`), 'utf8'))
          const source = read(join(v1, e.key.slice(0, 2), `${e.key}-${record.sha256.slice(0, 16)}.${record.ext}`))
          if (createHash('sha256').update(source).digest('hex') !== record.sha256) throw new Error(`promise floor: ${e.id} does not match its record`)
          const name = `${e.id}.${record.ext}`
          return { id: name, ref: this.emitFile({ type: 'asset', name, source }) }
        })
      })()
    },
    /** @param {string} id */
    load(id) {
      if (id !== '\0bare-flux') return undefined
      if (!promised) return `export default { all: [${refs.map(r => `{ id: ${JSON.stringify(r.id)}, url: import.meta.ROLLUP_FILE_URL_${r.ref} }`).join(', ')}] }`
      // The plugin names an image `<id>-<hash>.<ext>`; this build emitted it as `<id>.<ext>`.
      const byName = new Map(refs.map(r => [r.id, r.ref]))
      const { code, files } = promised.module
      return code.replace(/import\.meta\.ROLLUP_FILE_URL_([\w$]+)/g, (_, ref) => {
        const name = files[ref]?.split('/').pop()?.replace(/-[\w-]{8}(\.\w+)$/, '$1')
        const mine = name && byName.get(name)
        if (!mine) throw new Error(`promise floor: no image for ${files[ref] ?? ref}`)
        return `import.meta.ROLLUP_FILE_URL_${mine}`
      })
    },
    /** @param {string} id */
    resolveId(id) {
      return id === 'virtual:flux-assets' ? '\0bare-flux' : undefined
    },
  }
}

/**
 * The plugin's own time in a build (#16): importing it, plus the wall time during which any of its hooks is running
 * (overlapping async hooks counted once), which covers the scan, plan, cache check, reading + verifying the bytes and
 * handing them to `emitFile`. @param {any} plugin @param {number} importMs
 */
function timeHooks(plugin, importMs) {
  let inFlight = 0
  let since = 0
  let hooksMs = 0
  const enter = () => void (inFlight++ === 0 && (since = performance.now()))
  const leave = () => void (--inFlight === 0 && (hooksMs += performance.now() - since))
  /** @param {Function} fn */
  const wrap = fn =>
    /** @this {unknown} @param {unknown[]} a */
    function (...a) {
      enter()
      let out
      try {
        out = fn.apply(this, a)
      } catch (error) {
        leave()
        throw error
      }
      if (out && typeof out.then === 'function') return out.then((/** @type {unknown} */ v) => (leave(), v), (/** @type {unknown} */ e) => (leave(), Promise.reject(e)))
      leave()
      return out
    }
  const one = (/** @type {any} */ p) => {
    const copy = { ...p }
    for (const [name, hook] of Object.entries(p)) {
      if (name === 'name' || name === 'enforce' || name === 'api') continue
      if (typeof hook === 'function') copy[name] = wrap(hook)
      else if (hook && typeof hook === 'object' && typeof hook.handler === 'function') copy[name] = { ...hook, handler: wrap(hook.handler) }
    }
    return copy
  }
  return { plugin: Array.isArray(plugin) ? plugin.map(one) : one(plugin), times: () => ({ importMs, hooksMs, ms: importMs + hooksMs }) }
}

/**
 * Counts the sha256 digests of this process over inputs of at least `min` bytes, from here on: `createHash` of
 * node:crypto (and its one-shot `hash`) wrapped, and pushed to every `import { createHash } from 'node:crypto'` (syncBuiltinESMExports), so
 * Vite and the plugin are measured as they are. @returns {() => { count: number, bytes: number, plugin: number }}
 */
function countHashes(min = 1024) {
  const crypto = /** @type {any} */ (createRequire(import.meta.url)('node:crypto'))
  const original = crypto.createHash
  let count = 0
  let bytes = 0
  // Those asked for by the plugin (its dist/ on the stack), apart from Vite's own (lockfile and the like).
  let pluginCount = 0
  const own = () => (new Error().stack ?? '').includes(args.dist)
  crypto.createHash = (/** @type {string} */ algorithm, /** @type {any} */ options) => {
    const hash = original(algorithm, options)
    if (String(algorithm).toLowerCase() !== 'sha256') return hash
    let size = 0
    const update = hash.update.bind(hash)
    const digest = hash.digest.bind(hash)
    hash.update = (/** @type {any} */ data, /** @type {any} */ encoding) => ((size += typeof data === 'string' ? Buffer.byteLength(data, encoding) : data.byteLength), update(data, encoding), hash)
    hash.digest = (/** @type {any} */ encoding) => (size >= min && (count++, (bytes += size), own() && pluginCount++), digest(encoding))
    return hash
  }
  const oneShot = crypto.hash
  if (oneShot) {
    crypto.hash = (/** @type {string} */ algorithm, /** @type {any} */ data, /** @type {any} */ encoding) => {
      const size = typeof data === 'string' ? Buffer.byteLength(data) : data.byteLength
      if (String(algorithm).toLowerCase() === 'sha256' && size >= min) (count++, (bytes += size), own() && pluginCount++)
      return oneShot(algorithm, data, encoding)
    }
  }
  syncBuiltinESMExports()
  return () => ({ count, bytes, plugin: pluginCount })
}

/**
 * Reads each file it is given into one buffer, grown to the largest file so far, as the plugin's emitter does where
 * the bundler copies what it is given (Rolldown): the bytes it returns are good until the next call.
 * @returns {(file: string) => Buffer}
 */
function reusedReader() {
  let buffer = Buffer.alloc(0)
  return file => {
    const fd = openSync(file, 'r')
    try {
      const size = fstatSync(fd).size
      if (buffer.length < size) buffer = Buffer.allocUnsafeSlow(size)
      return buffer.subarray(0, readSync(fd, buffer, 0, size, 0))
    } finally {
      closeSync(fd)
    }
  }
}

/**
 * The floor the plugin's own time is held to: sha256 of the same image bytes (every original in the cache), one after
 * the other, each read (untimed) into one reused buffer right before it is hashed, as the plugin's emitter reads and
 * hashes them. Until 2026-12-07 every file was read first into a buffer of its own and then all were hashed: the first
 * pass over 43 MB of freshly read memory took 78-100 ms where bytes just read into a reused buffer take 27-29 ms
 * (bench/README), so the floor was about three times the work it stands for. @param {string} cacheDir
 */
async function hashFloor(cacheDir) {
  const { createHash } = await import('node:crypto')
  const { readdir } = await import('node:fs/promises')
  const v1 = join(cacheDir, 'v1')
  const files = (await readdir(v1, { recursive: true })).filter(f => /^[0-9a-f]{2}[\\/][0-9a-f]{64}-[0-9a-f]{16}\.(jpg|png|webp)$/.test(f))
  const read = reusedReader()
  let hashMs = 0
  let hashedBytes = 0
  for (const f of files) {
    const bytes = read(join(v1, f))
    const t = performance.now()
    createHash('sha256').update(bytes).digest('hex')
    hashMs += performance.now() - t
    hashedBytes += bytes.length
  }
  return { hashMs, hashedBytes, hashedFiles: files.length }
}

/**
 * One image the naive way: POST, on 429 sleep retry-after seconds and try again (at most 50 times).
 * @param {string} prompt @param {() => void} onRetry @returns {Promise<Buffer>}
 */
async function naive(prompt, onRetry) {
  for (let attempt = 0; attempt < 50; attempt++) {
    const res = await fetch(`${args.baseURL}/images/generations`, {
      method: 'POST',
      headers: { authorization: `Bearer ${args.apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'black-forest-labs/FLUX.2-dev', prompt, width: 1024, height: 768, n: 1, response_format: 'base64', output_format: 'jpeg' }),
    })
    const json = /** @type {any} */ (await res.json())
    if (res.status === 200) return Buffer.from(json.data[0].b64_json, 'base64')
    if (res.status !== 429) throw new Error(`naive client: ${res.status} ${JSON.stringify(json)}`)
    onRetry()
    await new Promise(resolve => setTimeout(resolve, Number(res.headers.get('retry-after') ?? 1) * 1000))
  }
  throw new Error('naive client: still rate limited after 50 attempts')
}

const run = tasks[/** @type {keyof typeof tasks} */ (task)]
if (!run) throw new Error(`unknown bench task ${task}`)
const result = await run()
const usage = process.resourceUsage()
// CPU time of the whole process (user + system), start-up included: on a busy machine it says what the work costs
// when wall times only say how long it waited.
const cpuMs = (usage.userCPUTime + usage.systemCPUTime) / 1000
// A task may report its own peak (taken before work it does only for the bench's sake, like hashFloor's reads).
process.stdout.write(`${JSON.stringify({ ...result, cpuMs, maxRssBytes: /** @type {any} */ (result).maxRssBytes ?? usage.maxRSS * 1024 })}\n`, () => process.exit(0))
