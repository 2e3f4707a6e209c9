// Scenario 7: the dev server. The apps of scenario 2 (300 cached ~150 KB images, the plugin offline; the same files
// in public/ for the twin without it), each started with `vite` (createServer + listen) in a fresh process and its
// page loaded once in Chromium: time from before Vite is imported to every <img> complete (child.mjs `dev`).
// Alternating pairs, the plugin first in even pairs; the median of the pair ratios and their spread.
import { existsSync } from 'node:fs'
import { median, round, runChild } from './lib.mjs'
import { warmApps } from './warm.mjs'

const CHROMIUM = '/usr/bin/chromium'

/** @param {{ dir: string, dist: string }} run @param {{ smoke: boolean }} flags */
export async function dev(run, { smoke }) {
  // As test/browser.test.ts: a machine without Debian's Chromium skips (CI installs it, and there it fails).
  const inCI = !!process.env.CI && process.env.CI !== 'false' && process.env.CI !== '0'
  if (!existsSync(CHROMIUM) && !inCI) return { skipped: `${CHROMIUM} not found (Debian: apt-get install chromium)` }
  const assets = smoke ? 20 : 300
  const pairs = smoke ? 1 : 7
  const imageBytes = 150_000
  const { pluginRoot, publicRoot, cacheDir, totalImageBytes } = await warmApps(run, 'dev', assets, imageBytes)

  /** @param {boolean} plugin */
  const load = async plugin => {
    // formats: [] as scenario 2: the originals alone, what the public/ twin serves.
    const r = await runChild('dev', { chromium: CHROMIUM, dist: run.dist, root: plugin ? pluginRoot : publicRoot, plugin, cacheDir, images: assets, flux: { formats: [] } })
    if (r.images !== assets) throw new Error(`dev: the ${plugin ? 'plugin' : 'public'} page showed ${r.images} of ${assets} images`)
    return r
  }
  // One unmeasured load of each warms the disk cache, Node's compile cache and Vite's own for both (not in a smoke run).
  if (!smoke) {
    await load(true)
    await load(false)
  }
  const plugin = /** @type {any[]} */ ([])
  const baseline = /** @type {any[]} */ ([])
  for (let i = 0; i < pairs; i++) {
    for (const withPlugin of i % 2 ? [false, true] : [true, false]) (withPlugin ? plugin : baseline).push(await load(withPlugin))
  }
  const pairRatios = plugin.map((p, i) => round(p.pageMs / baseline[i].pageMs, 3))
  const ratio = round(median(pairRatios), 3)
  const side = (/** @type {any[]} */ rs) => ({
    pageMs: rs.map(r => round(r.pageMs)),
    listenMs: rs.map(r => round(r.listenMs)),
    medianMs: round(median(rs.map(r => r.pageMs))),
    medianListenMs: round(median(rs.map(r => r.listenMs))),
    // CPU of the Node process (Vite, the plugin, playwright's client; not Chromium), start-up included: on a busy
    // machine it says what the server's work costs when wall times mostly say how long it waited.
    medianCpuMs: round(median(rs.map(r => r.cpuMs))),
    medianRssBytes: median(rs.map(r => r.maxRssBytes)),
    peakRssBytes: Math.max(...rs.map(r => r.maxRssBytes)),
    sha256: rs[0].sha256,
  })
  return {
    params: { assets, pairs, imageBytes, totalImageBytes },
    plugin: side(plugin),
    public: side(baseline),
    pairRatios,
    ratio,
    spread: { min: Math.min(...pairRatios), max: Math.max(...pairRatios) },
    target: 'plugin median pair ratio ≤ 1.10 × public/ (vite start → first page with every image)',
    met: ratio <= 1.1,
  }
}
