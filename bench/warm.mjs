// Scenarios 2 and 4 (and the apps of 7): a warm `vite build` of an app with 300 cached ~150 KB images, with the plugin, against the same
// app shipping the very same image files from public/ (the cheapest way to ship them). Alternating runs, each in a
// fresh process; build time (Vite + plugin import included, process start excluded) and peak RSS.
import { copyFile, mkdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { startFakeTogether } from '../test/fake-together.mjs'
import { API_KEY, listFiles, median, round, runChild, writeFiles } from './lib.mjs'

/**
 * Scenario 2 runs two such twins: the 300-image app (its memory is scenario 4) and a small one-page app of 64 images
 * (#16: the fixed costs of a build weigh most there). @param {{ dir: string, dist: string }} run @param {{ smoke: boolean }} flags
 */
export async function warm(run, { smoke }) {
  const runs = smoke ? 1 : 5
  const large = await twin(run, { name: 'warm', assets: smoke ? 20 : 300, perScript: 10, runs, bytesOnly: true })
  const small = await twin(run, { name: 'warm-small', assets: smoke ? 8 : 64, perScript: 8, runs })
  const { p, b, floor, ratio, own, totalImageBytes } = large
  const allowedRssBytes = b.medianRssBytes + 1.5 * totalImageBytes
  // The floor: the same files through Vite's asset pipeline by a plugin that does nothing else (child.mjs bareEmitter).
  // The promise floor (child.mjs bareEmitter `promised`): the bare emitter plus the least the plugin's promises add.
  // Where it is itself over the target, the target is below the floor and the plugin is read against the floor.
  const floorOf = (/** @type {typeof large} */ t) => ({
    bare: t.floor,
    bareVsPublic: round(t.floor.medianMs / t.b.medianMs, 3),
    pluginVsBare: t.floorRatio,
    promised: t.promised,
    promisedVsPublic: round(t.promised.medianMs / t.b.medianMs, 3),
    pluginVsPromised: round(t.p.medianMs / t.promised.medianMs, 3),
  })
  return {
    build: {
      params: { assets: large.assets, runs, imageBytes: IMAGE_BYTES, totalImageBytes },
      plugin: p,
      public: b,
      ratio,
      target: 'plugin median ≤ 1.20 × public/ median',
      met: ratio <= 1.2,
      belowFloor: large.promised.medianMs / b.medianMs > 1.2,
      own: ownTime(own),
      floor: floorOf(large),
      small: {
        params: { assets: small.assets, runs, imageBytes: IMAGE_BYTES, totalImageBytes: small.totalImageBytes },
        plugin: small.p,
        public: small.b,
        ratio: small.ratio,
        target: 'plugin median ≤ 1.25 × public/ median',
        met: small.ratio <= 1.25,
        belowFloor: small.promised.medianMs / small.b.medianMs > 1.25,
        own: ownTime(small.own),
        floor: floorOf(small),
      },
    },
    memory: {
      params: { assets: large.assets, totalImageBytes },
      pluginRssBytes: p.medianRssBytes,
      publicRssBytes: b.medianRssBytes,
      extraRssBytes: p.medianRssBytes - b.medianRssBytes,
      allowedRssBytes,
      extraPerImageByte: round((p.medianRssBytes - b.medianRssBytes) / totalImageBytes, 2),
      target: 'plugin peak RSS ≤ public/ peak RSS + 1.5 × image bytes',
      met: p.medianRssBytes <= allowedRssBytes,
      bareRssBytes: floor.medianRssBytes,
      bareExtraPerImageByte: round((floor.medianRssBytes - b.medianRssBytes) / totalImageBytes, 2),
      // The promise floor: the bare emitter that also hashes every image and serves the plugin's very module.
      promisedRssBytes: large.promised.medianRssBytes,
      promisedExtraPerImageByte: round((large.promised.medianRssBytes - b.medianRssBytes) / totalImageBytes, 2),
      belowFloor: large.promised.medianRssBytes > allowedRssBytes,
      // The plugin building a page that does not import virtual:flux-assets: every image emitted all the same, what
      // is left out is the bundler's work on that module (every record with its picture fields, one entry per image).
      bytesOnlyRssBytes: large.bytesOnly?.medianRssBytes ?? null,
      bytesOnlyExtraPerImageByte: large.bytesOnly ? round((large.bytesOnly.medianRssBytes - b.medianRssBytes) / totalImageBytes, 2) : null,
      pageJsBytes: large.pageJsBytes,
    },
  }
}

const IMAGE_BYTES = 150_000

/**
 * One app with `assets` cached images against its public/ twin: `runs` alternating pairs after one unmeasured build
 * of each. @param {{ dir: string, dist: string }} run @param {{ name: string, assets: number, perScript: number, runs: number, bytesOnly?: boolean }} o
 */
async function twin(run, { name, assets, perScript, runs, bytesOnly = false }) {
  const { pluginRoot, publicRoot, cacheDir, totalImageBytes } = await warmApps(run, name, assets, IMAGE_BYTES, perScript)
  // bytesOnly: a second page in the plugin app that does not import virtual:flux-assets (memory, scenario 4).
  if (bytesOnly) {
    await writeFiles([
      [join(pluginRoot, 'bytes.html'), '<!doctype html><html><body><div id="app"></div><script type="module" src="/src/bytes.js"></script></body></html>\n'],
      [join(pluginRoot, 'src', 'bytes.js'), "document.getElementById('app').textContent = 'no virtual module'\n"],
    ])
  }

  // The plugin's unmeasured first build keeps its virtual:flux-assets here; the promise floor serves that very module.
  const moduleFile = join(run.dir, name, 'module.json')
  /** @param {'plugin' | 'public' | 'bare' | 'promised' | 'bytes'} kind @param {object} [extra] */
  const build = async (kind, extra = {}) => {
    const plugin = kind === 'plugin' || kind === 'bytes'
    // The bare emitter (the floor) builds the plugin app's page from the public/ twin's files, in its own outDir.
    const root = kind === 'public' ? publicRoot : pluginRoot
    const outDir = join(root, kind === 'bare' || kind === 'promised' ? `dist-${kind}` : kind === 'bytes' ? 'dist-bytes' : 'dist')
    // formats: [] keeps this scenario what it always measured (the originals alone); scenario 6 measures variants.
    const bare = kind === 'bare' ? { bare: join(publicRoot, 'public', 'img') } : kind === 'promised' ? { promised: true, module: moduleFile } : {}
    const input = kind === 'bytes' ? { build: { rollupOptions: { input: join(pluginRoot, 'bytes.html') } } } : {}
    const r = await runChild('vite', { dist: run.dist, root, outDir, plugin, cacheDir, flux: { formats: [] }, ...bare, ...input, ...extra })
    const shipped = (await listFiles(outDir)).filter(f => /\.(jpe?g|png|webp)$/.test(f)).length
    if (shipped !== assets || r.placeholders) throw new Error(`warm: ${kind} build shipped ${shipped} of ${assets} images (${r.placeholders} placeholders)`)
    return r
  }
  // One unmeasured build of each warms the disk cache and Node's compile cache alike for all.
  await build('plugin', { captureModule: moduleFile })
  for (const kind of /** @type {const} */ (['public', 'bare', 'promised'])) await build(kind)
  if (bytesOnly) await build('bytes')
  const series = () => ({ buildMs: /** @type {number[]} */ ([]), maxRssBytes: /** @type {number[]} */ ([]) })
  const times = { plugin: series(), public: series(), bare: series(), promised: series(), bytes: series() }
  const own = /** @type {any[]} */ ([]) // the plugin's own time in each plugin build (child.mjs timeHooks)
  const bareHooks = /** @type {number[]} */ ([]) // the bare emitter's hooks in each of its builds: reads + emitFile
  const promisedOwn = /** @type {number[]} */ ([]) // the promise floor's import + hooks in each of its builds
  const orders = /** @type {const} */ ([['plugin', 'public', 'bare', 'promised'], ['promised', 'bare', 'public', 'plugin'], ['public', 'promised', 'plugin', 'bare']])
  for (let i = 0; i < runs; i++) {
    for (const kind of [...orders[i % orders.length], ...(bytesOnly ? /** @type {const} */ (['bytes']) : [])]) {
      const r = await build(kind)
      times[kind].buildMs.push(round(r.buildMs))
      times[kind].maxRssBytes.push(r.maxRssBytes)
      if (kind === 'plugin') own.push(r.own)
      if (kind === 'bare') bareHooks.push(r.bareHooksMs)
      if (kind === 'promised') promisedOwn.push(r.depsImportMs + r.bareHooksMs)
    }
  }
  const summarize = (/** @type {ReturnType<typeof series>} */ s) => ({ ...s, medianMs: round(median(s.buildMs)), medianRssBytes: median(s.maxRssBytes), peakRssBytes: Math.max(...s.maxRssBytes) })
  const p = summarize(times.plugin)
  const b = summarize(times.public)
  const floor = summarize(times.bare)
  // The page's JS in the plugin build and in the bare emitter's: virtual:flux-assets's data is most of the first.
  const jsBytes = async (/** @type {string} */ outDir) => {
    let total = 0
    for (const f of (await listFiles(join(outDir, 'assets'))).filter(f => f.endsWith('.js'))) total += (await stat(f)).size
    return total
  }
  return {
    assets,
    p,
    b,
    floor,
    promised: summarize(times.promised),
    bytesOnly: bytesOnly ? summarize(times.bytes) : undefined,
    pageJsBytes: { plugin: await jsBytes(join(pluginRoot, 'dist')), bare: await jsBytes(join(pluginRoot, 'dist-bare')) },
    ratio: round(p.medianMs / b.medianMs, 3),
    floorRatio: round(p.medianMs / floor.medianMs, 3),
    own: { runs: own, bareHooksMs: round(median(bareHooks)), promisedMs: round(median(promisedOwn)) },
    totalImageBytes,
  }
}

/**
 * #16: the plugin's own time (import + its hooks) ≤ 50 ms + sha256 of the image bytes alone. Its floor, measured in
 * the same run: importing the design card's packages, the bare emitter's hooks (reading the files and emitFile()ing
 * them) and the sha256; and, measured as one, the promise floor's (its import + hooks). @param {{ runs: any[], bareHooksMs: number, promisedMs: number }} own
 */
function ownTime({ runs: own, bareHooksMs, promisedMs }) {
  const pick = (/** @type {string} */ k) => round(median(own.map(o => o[k])))
  const o = { ms: pick('ms'), importMs: pick('importMs'), depsImportMs: pick('depsImportMs'), hooksMs: pick('hooksMs'), hashMs: pick('hashMs'), hashedBytes: own[0]?.hashedBytes, runsMs: own.map(x => round(x.ms)) }
  const floorMs = round(o.depsImportMs + bareHooksMs + o.hashMs)
  return { ...o, target: 'plugin own time (import + hooks) ≤ 50 ms + sha256 of the image bytes', met: o.ms <= 50 + o.hashMs, floor: { ms: floorMs, depsImportMs: o.depsImportMs, bareHooksMs, hashMs: o.hashMs }, vsFloor: round(o.ms / floorMs, 2), promised: { ms: promisedMs, vs: round(o.ms / promisedMs, 2) } }
}

/**
 * The two apps of scenarios 2, 4 and 7 under `<run>/<name>/`: `plugin-app` (scripts of `perScript` assets each, a page listing
 * every image through virtual:flux-assets) with its cache filled once through the engine and the fake service, and
 * `public-app`, the same image files in public/img/ listed by a plain module.
 * @param {{ dir: string, dist: string }} run @param {string} name @param {number} assets @param {number} imageBytes @param {number} [perScript]
 */
export async function warmApps(run, name, assets, imageBytes, perScript = 10) {
  const dir = join(run.dir, name)
  const cacheDir = join(dir, 'cache')
  const pluginRoot = join(dir, 'plugin-app')
  const publicRoot = join(dir, 'public-app')

  // The plugin app: scripts of `perScript` assets each, and a page listing every image through virtual:flux-assets.
  const files = /** @type {Array<[string, string]>} */ ([])
  for (let s = 0; s < assets / perScript; s++) {
    const track = Array.from({ length: perScript / 2 }, (_, scene) => ({
      caption: `scene ${scene}`,
      assets: Object.fromEntries([0, 1].map(k => [`s${s}-${scene}-${k}`, `Warm benchmark ${name} ${s}/${scene}/${k}: a red fox in fresh snow, morning light`])),
    }))
    files.push([join(pluginRoot, 'scripts', `s${String(s).padStart(3, '0')}.script.json`), JSON.stringify({ visual_track: track }, null, 2)])
  }
  const page = '<!doctype html><html><body><div id="app"></div><script type="module" src="/src/main.js"></script></body></html>\n'
  const render = "document.getElementById('app').innerHTML = images.map(i => `<img src=\"${i.url}\" alt=\"${i.id}\">`).join('')\n"
  files.push([join(pluginRoot, 'index.html'), page])
  files.push([join(pluginRoot, 'src', 'main.js'), `import scripts from 'virtual:flux-assets'\nconst images = Object.values(scripts).flat()\n${render}`])
  await writeFiles(files)

  // Fill the cache once, through the engine and the fake service.
  const { createEngine, resolveOptions } = await import(pathToFileURL(join(run.dist, 'index.js')).href)
  const fake = await startFakeTogether({ imageBytes })
  const silent = { info() {}, warn() {}, error() {} }
  const engine = createEngine(resolveOptions({ root: pluginRoot, cacheDir, apiKey: API_KEY, baseURL: fake.baseURL, concurrency: 8, maxNewImages: 1e9, logger: silent }, pluginRoot, { env: {} }))
  let result
  try {
    result = await engine.generate((await engine.scan()).requests)
  } finally {
    await engine.close()
    await fake.close()
  }
  if (result.summary.generated !== assets) throw new Error(`${name}: priming generated ${result.summary.generated} of ${assets}`)

  // The baseline app: the same image files in public/img/, and a page listing them from a plain module.
  await mkdir(join(publicRoot, 'public', 'img'), { recursive: true })
  const list = []
  for (const a of result.assets) {
    const file = `${a.id}.${a.file.split('.').pop()}`
    await copyFile(a.file, join(publicRoot, 'public', 'img', file))
    list.push({ id: a.id, url: `/img/${file}` })
  }
  await writeFiles([
    [join(publicRoot, 'index.html'), page],
    [join(publicRoot, 'src', 'images.js'), `export default ${JSON.stringify(list, null, 2)}\n`],
    [join(publicRoot, 'src', 'main.js'), `import images from './images.js'\n${render}`],
  ])
  const images = await listFiles(join(publicRoot, 'public', 'img'))
  let totalImageBytes = 0
  for (const f of images) totalImageBytes += (await stat(f)).size

  return { dir, pluginRoot, publicRoot, cacheDir, totalImageBytes, images: result.assets.length }
}
