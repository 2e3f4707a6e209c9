// `npm run bench` (tsup, then this): the benchmarks of bench/README.md against the fake Together service.
// Prints a table and writes the figures to bench/results/latest.json.
//   --smoke          tiny sizes, a few seconds: proves every scenario runs (CI); the figures mean nothing
//   --only=a,b       run only some of: cold, warm (build + memory), scale, rate, variants, dev
//   --out=<file>     where the JSON goes (default bench/results/latest.json)
//   --keep           keep the scratch projects under bench/.tmp/
import { mkdir, writeFile } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { cold } from './cold.mjs'
import { dev } from './dev.mjs'
import { BENCH, createRun, machine, mb, round, seconds, table } from './lib.mjs'
import { rate } from './rate.mjs'
import { scale } from './scale.mjs'
import { variants } from './variants.mjs'
import { warm } from './warm.mjs'

const argv = process.argv.slice(2)
const flag = (/** @type {string} */ name) => argv.find(a => a === `--${name}` || a.startsWith(`--${name}=`))
const value = (/** @type {string} */ name) => flag(name)?.split('=').slice(1).join('=')
const smoke = !!flag('smoke')
const only = value('only')?.split(',') ?? ['cold', 'warm', 'scale', 'rate', 'variants', 'dev']
const outFile = resolve(value('out') ?? join(BENCH, 'results', 'latest.json'))

const started = performance.now()
const lap = () => seconds(performance.now() - started)
const run = await createRun()
const flags = { smoke }
/** @type {Record<string, any>} */
const scenarios = {}
const log = (/** @type {string} */ m) => process.stderr.write(`[bench] ${lap()} ${m}\n`)
try {
  if (only.includes('cold')) {
    log('1/7 cold generation')
    scenarios.cold = await cold(run, flags)
  }
  if (only.includes('warm')) {
    log('2/7 and 4/7 warm vite build and its memory')
    const { build, memory } = await warm(run, flags)
    scenarios.warmBuild = build
    scenarios.memory = memory
  }
  if (only.includes('scale')) {
    log('3/7 discovery at scale')
    scenarios.discovery = await scale(run, flags)
  }
  if (only.includes('rate')) {
    log('5/7 rate-limited service')
    scenarios.rateLimit = await rate(run, flags)
  }
  if (only.includes('variants')) {
    log('6/7 web variants')
    scenarios.variants = await variants(run, flags)
  }
  if (only.includes('dev')) {
    log('7/7 dev server, first page')
    scenarios.dev = await dev(run, flags)
  }
} finally {
  if (!flag('keep')) await run.remove()
}

const results = { version: 1, date: new Date().toISOString(), smoke, machine: machine(), durationMs: round(performance.now() - started), scenarios }
await mkdir(dirname(outFile), { recursive: true })
await writeFile(outFile, `${JSON.stringify(results, null, 2)}\n`)
console.log(report(results))
console.log(`\nJSON: ${outFile}`)

/** @param {typeof results} r */
function report(r) {
  const s = r.scenarios
  const m = r.machine
  const verdict = (/** @type {boolean | null} */ met) => (met === null || met === undefined ? 'n/a' : met ? 'met' : 'MISSED')
  const out = [`unplugin-flux-assets benchmarks${r.smoke ? ' (SMOKE: tiny sizes, figures meaningless)' : ''} — ${r.date.slice(0, 10)}`]
  out.push(`${m.cpu}, ${m.nproc} cores, ${m.memoryGb} GB, Node ${m.node}, ${m.platform}, load ${m.loadAverage.join(' ')}; ${seconds(r.durationMs)} in all`)
  if (s.cold) {
    const c = s.cold
    out.push('', `1. Cold generation: N=${c.params.n}, L=${c.params.latencyMs} ms, C=${c.params.concurrency}, service admits ${c.params.serviceMaxInFlight} at once; limit N·L/C = ${seconds(c.limitMs)}`)
    out.push(table(['client', 'wall', 'efficiency', 'service/image', 'vs service', '1st request→last image', 'client CPU', 'requests', '429s', 'retries'], c.rows.map((/** @type {any} */ x) => [
      x.name, seconds(x.wallMs), x.efficiency.toFixed(2), x.serviceMs === null ? '-' : `${x.serviceMs} ms`, x.efficiencyVsService === null ? '-' : x.efficiencyVsService.toFixed(2),
      x.firstRequestToLastAnswerMs === null ? '-' : `${seconds(x.firstRequestToLastAnswerMs)} (${(c.limitMs / x.firstRequestToLastAnswerMs).toFixed(2)})`, seconds(x.cpuMs), x.requests, x.status429, x.retries,
    ])))
    const runs = c.rows.filter((/** @type {any} */ x) => x.runsMs?.length > 1).map((/** @type {any} */ x) => `${x.name} ${x.runsMs.map(seconds).join(', ')}`)
    out.push(`   efficiency = N·L/C ÷ wall; vs service = N·(the fake's measured time per image)/C ÷ wall; 1st request→last image: the\n   service's view, without the client's start-up inside the timed call (efficiency in brackets); client CPU includes process start${runs.length ? `\n   runs: ${runs.join('; ')}` : ''}`)
    if (c.vsPool != null) out.push(`   engine vs bare pool: ${c.vsPool.toFixed(3)} (pairs ${c.pairs.map((/** @type {number} */ x) => x.toFixed(3)).join(', ')})`)
    if (c.vsPoolFromScan != null) out.push(`   the same with the engine's scan counted in (an empty cache loads the provider during the scan): ${c.vsPoolFromScan.toFixed(3)} (pairs ${c.pairsFromScan.map((/** @type {number} */ x) => x.toFixed(3)).join(', ')})`)
    out.push(`   target ${c.target}: ${verdict(c.met)}`)
  }
  if (s.warmBuild) {
    const w = s.warmBuild
    out.push('', `2. Warm vite build: ${w.params.assets} cached images (${mb(w.params.totalImageBytes)}), median of ${w.params.runs} alternating runs, fresh process each`)
    out.push(table(['build', 'median', 'runs', 'peak RSS (median)'], [
      ['plugin', seconds(w.plugin.medianMs), w.plugin.buildMs.map(seconds).join(', '), mb(w.plugin.medianRssBytes)],
      ['public/', seconds(w.public.medianMs), w.public.buildMs.map(seconds).join(', '), mb(w.public.medianRssBytes)],
      ...(w.floor ? [['bare emitter', seconds(w.floor.bare.medianMs), w.floor.bare.buildMs.map(seconds).join(', '), mb(w.floor.bare.medianRssBytes)]] : []),
      ...(w.floor?.promised ? [['promise floor', seconds(w.floor.promised.medianMs), w.floor.promised.buildMs.map(seconds).join(', '), mb(w.floor.promised.medianRssBytes)]] : []),
    ]))
    out.push(`   ratio ${w.ratio.toFixed(2)}×; target ${w.target}: ${verdict(w.met)}`)
    if (w.floor?.promised) out.push(`   promise floor (import unplugin, fast-glob, p-limit; glob and parse the scripts; key each prompt, read its record, read its image, check its sha256, emitFile it; serve the plugin's own virtual:flux-assets): ${w.floor.promisedVsPublic.toFixed(2)}× public/${w.belowFloor ? ', so the target is below it' : ''}; the plugin ${w.floor.pluginVsPromised.toFixed(2)}× the promise floor`)
    if (w.floor) out.push(`   floor: a bare emitter (reads the same files and emitFile()s them, nothing else) takes ${w.floor.bareVsPublic.toFixed(2)}× public/; the plugin takes ${w.floor.pluginVsBare.toFixed(2)}× the bare emitter`)
    if (w.own) {
      const o = w.own
      out.push(`   plugin's own time: ${o.ms} ms (import ${o.importMs} ms + hooks ${o.hooksMs} ms: scan, plan, cache check, read + verify + emitFile; runs ${o.runsMs.join(', ')} ms); floor: sha256 of the ${mb(o.hashedBytes)} alone ${o.hashMs} ms`)
      out.push(`   target ${o.target}: ${verdict(o.met)} (${o.ms} vs ${round(50 + o.hashMs)} ms)`)
      if (o.floor) out.push(`   own-time floor ${o.floor.ms} ms (import of unplugin + fast-glob + p-limit ${o.floor.depsImportMs} ms, the bare emitter's hooks ${o.floor.bareHooksMs} ms, sha256 ${o.floor.hashMs} ms): the plugin ${o.vsFloor.toFixed(2)}× it; the promise floor's own time (its import + hooks) ${o.promised.ms} ms: the plugin ${o.promised.vs.toFixed(2)}× it`)
    }
    if (w.small) {
      const x = w.small
      out.push(`   small one-page app, ${x.params.assets} cached images (${mb(x.params.totalImageBytes)}), same method: plugin ${seconds(x.plugin.medianMs)} (runs ${x.plugin.buildMs.map(seconds).join(', ')}) vs public/ ${seconds(x.public.medianMs)} (runs ${x.public.buildMs.map(seconds).join(', ')}); plugin's own time ${x.own.ms} ms${x.own.floor ? ` (import ${x.own.importMs} ms of which unplugin + fast-glob + p-limit ${x.own.depsImportMs} ms; floor ${x.own.floor.ms} ms: ${x.own.vsFloor.toFixed(2)}×; the promise floor's ${x.own.promised.ms} ms: ${x.own.promised.vs.toFixed(2)}×)` : ''}`)
      out.push(`   ratio ${x.ratio.toFixed(2)}×; target ${x.target}: ${verdict(x.met)}`)
      if (x.floor?.promised) out.push(`   promise floor ${seconds(x.floor.promised.medianMs)} (runs ${x.floor.promised.buildMs.map(seconds).join(', ')}) = ${x.floor.promisedVsPublic.toFixed(2)}× public/${x.belowFloor ? ', so the target is below it' : ''}; the plugin ${x.floor.pluginVsPromised.toFixed(2)}× the promise floor`)
      if (x.floor) out.push(`   floor: the bare emitter ${seconds(x.floor.bare.medianMs)} = ${x.floor.bareVsPublic.toFixed(2)}× public/; the plugin ${x.floor.pluginVsBare.toFixed(2)}× the bare emitter`)
    }
  }
  if (s.memory) {
    const x = s.memory
    out.push('', `4. Memory: plugin ${mb(x.pluginRssBytes)} vs public/ ${mb(x.publicRssBytes)}: +${mb(x.extraRssBytes)} = ${x.extraPerImageByte}× the ${mb(x.params.totalImageBytes)} of images; allowed up to ${mb(x.allowedRssBytes)}`)
    out.push(`   target ${x.target}: ${verdict(x.met)}`)
    if (x.bareRssBytes) out.push(`   floor: the bare emitter peaks at ${mb(x.bareRssBytes)}, public/ + ${x.bareExtraPerImageByte}× the image bytes`)
    if (x.promisedRssBytes) out.push(`   promise floor (every image checked against its record and emitted, the plugin's own virtual:flux-assets): ${mb(x.promisedRssBytes)}, public/ + ${x.promisedExtraPerImageByte}× the image bytes${x.belowFloor ? ', so the target is below it' : ''}; the plugin +${mb(x.pluginRssBytes - x.promisedRssBytes)} over it`)
    if (x.bytesOnlyRssBytes) out.push(`   the plugin building a page that does not import virtual:flux-assets (the same images emitted): ${mb(x.bytesOnlyRssBytes)}, public/ + ${x.bytesOnlyExtraPerImageByte}× the image bytes; the rest is the bundler's work on that module (the page's JS: ${Math.round(x.pageJsBytes.plugin / 1024)} KB minified, against ${Math.round(x.pageJsBytes.bare / 1024)} KB for the bare emitter's page)`)
  }
  if (s.discovery) {
    const d = s.discovery
    out.push('', `3. Discovery + keying + cache check, all cached (median of ${d.params.runs}, fresh process each)`)
    out.push(table(['files', 'occurrences', 'unique', 'scan', 'cache check', 'total', 'CPU', 'longest block (scan / check)', 'peak RSS', 'floor: sync (scripts + records)', 'floor: async ×64', 'total / sync floor'], d.tiers.map((/** @type {any} */ t) => [
      t.files, t.occurrences, t.unique, `${t.scanMs} ms`, `${t.checkMs} ms`, `${t.totalMs} ms`, `${t.cpuMs} ms`, `${t.scanBlockMs} / ${t.checkBlockMs} ms`, mb(t.maxRssBytes),
      t.floor ? `${t.floor.syncMs} ms (${t.floor.syncScriptsMs} + ${t.floor.syncRecordsMs})` : '-', t.floor ? `${t.floor.asyncMs} ms` : '-', t.floor ? `${(t.totalMs / t.floor.syncMs).toFixed(2)}×` : '-',
    ])))
    out.push('   floor: only read + JSON.parse every script and every cache record, stat every image (no glob, schema, keys); one at a time with sync calls, or 64 at a time through fs\'s callback API')
    out.push('   longest block: the longest the event loop was held (monitorEventLoopDelay max, 1 ms sampling; worst run) during the scan and during the check\n   (engine.generate: cache check, then one pass over every occurrence); the small-file reads yield every BATCH_MS (5 ms). CPU: the process\'s, start-up included')
    if (d.rehash) {
      const h = d.rehash
      out.push(`   cache check at ${h.files} files (${h.images} images of ${round(h.imageBytes / 1000)} KB): size+mtime trusted ${h.trustedCheckMs} ms; every mtime changed (re-hash all) ${h.rehashCheckMs} ms; next run, mtimes restored ${h.afterRestoreCheckMs} ms`)
    }
    out.push(`   target ${d.target}: ${verdict(d.met)}`)
    if (d.largeTarget) out.push(`   target ${d.largeTarget}: ${verdict(d.largeMet)}${d.largeVsFloor === null ? '' : ` (${d.largeVsFloor}× the sync floor)`}`)
  }
  if (s.rateLimit) {
    const x = s.rateLimit
    out.push('', `5. Rate-limited service: ${x.params.perSecond} requests/s (bucket of ${x.params.perSecond}), 429 + retry-after beyond; N=${x.params.n}, L=${x.params.latencyMs} ms`)
    out.push(table(['concurrency', 'wall', 'images/s', 'of allowance', 'of best possible', 'requests', '429s', 'failed'], x.rows.map((/** @type {any} */ y) => [y.concurrency, seconds(y.wallMs), y.imagesPerSecond.toFixed(2), y.ofAllowance.toFixed(2), y.ofBestPossible.toFixed(2), y.requests, y.status429, y.failed])))
    out.push(`   target ${x.target}: ${verdict(x.met)}`)
  }
  if (s.variants) {
    const v = s.variants
    const kb = (/** @type {number} */ b) => `${round(b / 1000)} KB`
    out.push('', `6. Web variants: ${v.params.images} photo-like ${v.params.size.width}×${v.params.size.height} JPEGs, sharp ${v.params.sharp} (libvips ${v.params.libvips})`)
    out.push(`   bytes a page ships: WebP q${v.params.quality.webp} ${kb(v.bytes.webpBytes)} vs JPEG ${kb(v.bytes.originalBytes)}: ${round(v.bytes.saved * 100, 1)}% fewer (+ ${v.bytes.blurBytes} B of blur data URLs in the JS, ${round(v.bytes.blurBytes / v.params.images)} B each); target ${v.bytes.target}: ${verdict(v.bytes.met)}`)
    out.push(`   cold build (makes every variant): ${seconds(v.coldBuild.ms)}, peak RSS ${mb(v.coldBuild.maxRssBytes)}`)
    const w = v.warmBuild
    out.push(`   warm build with variants vs formats: [], ${w.pairs} alternating pairs: median pair ratio ${w.ratio.toFixed(2)}× (spread ${w.spread.min.toFixed(2)}–${w.spread.max.toFixed(2)}×; pairs ${w.pairRatios.map((/** @type {number} */ r) => r.toFixed(2)).join(', ')})`)
    out.push(`   medians ${seconds(w.medianWithMs)} vs ${seconds(w.medianWithoutMs)} (${w.mediansRatio.toFixed(2)}×; runs ${w.withVariantsMs.map(seconds).join(', ')} / ${w.withoutMs.map(seconds).join(', ')}); variant files written by the warm builds: ${w.variantFilesWritten} of ${w.variantFiles}; target ${w.target}: ${verdict(w.met)}`)
    out.push(`   sharp, one image (decode ${v.encode.decodeMs} ms):`)
    out.push(table(['format', 'width', 'encode', 'bytes'], v.encode.rows.map((/** @type {any} */ r) => [r.format, r.width, `${r.ms} ms`, kb(r.bytes)])))
    out.push(`   throughput (full-width WebP, decode included): ${v.encode.throughput.map((/** @type {any} */ t) => `${t.imagesPerSecond} images/s at ${t.concurrency}`).join(', ')}`)
    out.push(`   ${v.memory.images} images, cold build ${seconds(v.memory.coldMs)}: peak RSS ${mb(v.memory.coldRssBytes)} vs ${mb(v.memory.warmRssBytes)} warm (+${mb(v.memory.extraRssBytes)})`)
  }
  if (s.dev?.skipped) out.push('', `7. Dev server: skipped, ${s.dev.skipped}`)
  else if (s.dev) {
    const d = s.dev
    const sha = (/** @type {any} */ h) => `${h.count} (${mb(h.bytes)}), plugin's ${h.plugin}`
    out.push('', `7. Dev server: \`vite\` start → first page with ${d.params.assets} cached images (${mb(d.params.totalImageBytes)}) complete in Chromium, ${d.params.pairs} alternating pairs, fresh process each`)
    const row = (/** @type {string} */ name, /** @type {any} */ x) => [name, seconds(x.medianMs), x.pageMs.map(seconds).join(', '), seconds(x.medianListenMs), seconds(x.medianCpuMs), sha(x.sha256), mb(x.medianRssBytes)]
    out.push(table(['server', 'median', 'runs', 'of which createServer + listen', 'Node CPU (median)', 'sha256 ≥ 1 KB', 'peak RSS (median)'], [row('plugin', d.plugin), row('public/', d.public)]))
    out.push(`   median pair ratio ${d.ratio.toFixed(2)}× (spread ${d.spread.min.toFixed(2)}–${d.spread.max.toFixed(2)}×; pairs ${d.pairRatios.map((/** @type {number} */ r) => r.toFixed(2)).join(', ')}); target ${d.target}: ${verdict(d.met)}`)
  }
  return out.join('\n')
}
