// Scenario 6 (#14): web variants over photo-like 1024×768 JPEGs (test/photo.mjs: soft shapes, texture and grain,
// 200-300 KB at quality 92, like the model's own 150-450 KB), put in the cache under the app's keys so no API call is
// made. Measures the bytes a page of N images ships at the default settings (WebP q75) against the JPEGs, a cold
// build that makes the variants and its peak RSS, the warm build with variants against the same build with
// `formats: []`, and sharp alone per format and width and across cores.
import { readdir, readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { makePhoto } from '../test/photo.mjs'
import { median, round, runChild, writeFiles } from './lib.mjs'

/** @param {{ dir: string, dist: string }} run @param {{ smoke: boolean }} flags */
export async function variants(run, { smoke }) {
  const n = smoke ? 3 : 20
  const memoryN = smoke ? 4 : 100
  const runs = smoke ? 1 : 3
  /** Alternating pairs of warm builds, with and without variants: on a shared machine a pair's two builds see about the same load. */
  const pairs = smoke ? 1 : 7
  const size = smoke ? { width: 320, height: 256 } : { width: 1024, height: 768 }
  const dir = join(run.dir, 'variants')
  const { createEngine, resolveOptions } = await import(pathToFileURL(join(run.dist, 'index.js')).href)

  /** An app of `count` assets, a page rendering each as the README's <picture>, and its cache filled with photos. */
  const app = async (/** @type {string} */ name, /** @type {number} */ count) => {
    const root = join(dir, name)
    const cacheDir = join(root, '.flux-cache')
    const assets = Object.fromEntries(Array.from({ length: count }, (_, i) => [`photo${i}`, `Variants benchmark ${name} ${i}: a harbour at dusk`]))
    const page = '<!doctype html><html><body><div id="app"></div><script type="module" src="/src/main.js"></script></body></html>\n'
    const render = [
      "import scripts from 'virtual:flux-assets'",
      "document.getElementById('app').innerHTML = Object.values(scripts).flat().map(a =>",
      "  `<picture>${a.sources.map(s => `<source type=\"${s.type}\" srcset=\"${s.srcset}\">`).join('')}<img src=\"${a.src}\" width=\"${a.width}\" height=\"${a.height}\" style=\"background:${a.blur?.color}\"></picture>`).join('')",
    ].join('\n')
    await writeFiles([
      [join(root, 'page.script.json'), JSON.stringify({ visual_track: [{ assets }] }, null, 2)],
      [join(root, 'index.html'), page],
      [join(root, 'src', 'main.js'), `${render}\n`],
    ])
    const silent = { info() {}, warn() {}, error() {} }
    const engine = createEngine(resolveOptions({ root, cacheDir, ...size, offline: true, logger: silent }, root, { env: {} }))
    let originalBytes = 0
    const files = []
    for (const r of (await engine.scan()).requests) {
      const bytes = await makePhoto(r.prompt, size)
      const hit = await engine.store.put(r.key, bytes, { prompt: r.prompt, settings: r.settings })
      originalBytes += bytes.length
      files.push(hit.file)
    }
    await engine.close()
    return { root, cacheDir, originalBytes, files }
  }
  /** @param {{ root: string, cacheDir: string }} a @param {Record<string, unknown>} flux */
  const build = async (a, flux) => {
    const outDir = join(a.root, 'dist')
    const r = await runChild('vite', { dist: run.dist, root: a.root, outDir, plugin: true, cacheDir: a.cacheDir, flux: { ...size, ...flux } })
    if (r.placeholders) throw new Error(`variants: ${r.placeholders} placeholders`)
    const manifest = JSON.parse(await readFile(join(outDir, 'flux-assets.json'), 'utf8'))
    return { ...r, manifest }
  }

  const page = await app('page', n)
  // Cold: the variants are made (WebP q75 at the image's size, and the blur), then the same build warm.
  const cold = await build(page, {})
  const entries = /** @type {any[]} */ (cold.manifest.entries)
  const webpBytes = entries.reduce((s, e) => s + e.variants.find((/** @type {any} */ v) => v.format === 'webp').bytes, 0)
  const blurBytes = entries.reduce((s, e) => s + e.blur.dataURL.length, 0)
  const warm = { withVariants: /** @type {number[]} */ ([]), without: /** @type {number[]} */ ([]), rssWith: /** @type {number[]} */ ([]) }
  await build(page, { formats: [] })
  // What the warm builds wrote: every variant file's inode, mtime and size before and after (a file encoded again is
  // written again, atomically: a new inode). Counted across processes, where the stage's onEncode hook cannot be.
  const before = await variantFiles(page.cacheDir)
  for (let i = 0; i < pairs; i++) {
    for (const withVariants of i % 2 ? [false, true] : [true, false]) {
      const r = await build(page, withVariants ? {} : { formats: [] })
      if (withVariants) (warm.withVariants.push(round(r.buildMs)), warm.rssWith.push(r.maxRssBytes))
      else warm.without.push(round(r.buildMs))
    }
  }
  const after = await variantFiles(page.cacheDir)
  const written = [...after].filter(([f, sig]) => before.get(f) !== sig).length
  const pairRatios = warm.withVariants.map((w, i) => round(w / warm.without[i], 3))
  const ratio = round(median(pairRatios), 3)

  // sharp alone on one photo, and the throughput over the page's photos.
  const encode = await runChild('encode', { files: page.files, formats: ['webp', 'avif'], widths: smoke ? [128, 256] : [480, 960, 1024], quality: { webp: 75, avif: 50 }, runs }, { timeoutMs: 600_000 })

  // Peak RSS of a cold build making the variants of many images, against the same build warm.
  const many = await app('many', memoryN)
  const manyCold = await build(many, {})
  const manyWarm = await build(many, {})

  const saved = round(1 - webpBytes / page.originalBytes, 3)
  return {
    params: { images: n, size, quality: { webp: 75 }, memoryImages: memoryN, runs, pairs, sharp: encode.versions.sharp, libvips: encode.versions.vips },
    bytes: { originalBytes: page.originalBytes, webpBytes, blurBytes, saved, target: '≥ 50% fewer bytes shipped than the JPEGs at the default quality', met: saved >= 0.5 },
    coldBuild: { ms: round(cold.buildMs), maxRssBytes: cold.maxRssBytes },
    warmBuild: {
      pairs,
      withVariantsMs: warm.withVariants,
      withoutMs: warm.without,
      medianWithMs: median(warm.withVariants),
      medianWithoutMs: median(warm.without),
      // Each pair's with / without, in order; their median is the figure, their range its spread.
      pairRatios,
      ratio,
      spread: { min: Math.min(...pairRatios), max: Math.max(...pairRatios) },
      mediansRatio: round(median(warm.withVariants) / median(warm.without), 3),
      variantFiles: before.size,
      variantFilesWritten: written,
      target: 'median pair ratio, with variants ≤ 1.10 × without; the warm builds write no variant file',
      met: ratio <= 1.1 && written === 0,
    },
    encode: { decodeMs: round(encode.decodeMs), rows: encode.rows.map((/** @type {any} */ r) => ({ ...r, ms: round(r.ms) })), throughput: encode.throughput.map((/** @type {any} */ t) => ({ ...t, ms: round(t.ms), imagesPerSecond: round(t.imagesPerSecond, 2) })) },
    memory: { images: memoryN, coldMs: round(manyCold.buildMs), coldRssBytes: manyCold.maxRssBytes, warmRssBytes: manyWarm.maxRssBytes, extraRssBytes: manyCold.maxRssBytes - manyWarm.maxRssBytes },
  }
}

/** Every variant file of a cache (`<key>~<variant key>…`) → its inode, mtime and size. @param {string} cacheDir */
async function variantFiles(cacheDir) {
  const root = join(cacheDir, 'v1')
  const files = (await readdir(root, { recursive: true })).filter(f => f.includes('~') && !f.startsWith('tmp'))
  return new Map(await Promise.all(files.map(async f => /** @type {const} */ ([f, await stat(join(root, f)).then(s => `${s.ino} ${s.mtimeMs} ${s.size}`)]))))
}
