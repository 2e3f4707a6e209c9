// Scenario 1: cold generation. N unique prompts against a service taking L ms per image and admitting C at once
// (429 beyond), so no client can beat N·L/C. The plugin's engine (concurrency C) side by side with the original
// backend's sequential loop and an unbounded Promise.all that honours retry-after, plus a bare pool of C fetch loops
// (no cache, no verification): what this fake on this machine allows any client.
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { startFakeTogether } from '../test/fake-together.mjs'
import { API_KEY, median, round, runChild } from './lib.mjs'

/** @param {{ dir: string, dist: string }} run @param {{ smoke: boolean, pluginOnly?: boolean, imageBytes?: number }} flags */
export async function cold(run, { smoke, pluginOnly = false, imageBytes = 150_000 }) {
  const n = smoke ? 8 : 64
  const latencyMs = smoke ? 50 : 250
  const concurrency = 8
  const repeats = smoke ? 1 : 5
  const limitMs = (n * latencyMs) / concurrency
  const root = join(run.dir, 'cold')
  const prompts = Array.from({ length: n }, (_, i) => `Cold benchmark prompt ${i}: a lighthouse on a cliff at dusk, wide shot`)
  await mkdir(root, { recursive: true })
  await writeFile(join(root, 'cold.script.json'), JSON.stringify({ visual_track: prompts.map((p, i) => ({ assets: { [`image-${i}`]: p } })) }))

  const fake = await startFakeTogether({ latencyMs, maxInFlight: concurrency, imageBytes })
  // The service's own time per image, as the fake spends it (L plus making and encoding the image on its one thread):
  // from a request's arrival (its log entry) to its 200 being sent (its byStatus count). Equal latencies answer in
  // arrival order, so the i-th 200 belongs to the i-th admitted request.
  /** @type {number[]} */
  let arrivals = []
  /** @type {number[]} */
  let answers = []
  const push = fake.log.push.bind(fake.log)
  fake.log.push = (...entries) => {
    if (entries.some(e => e.path.startsWith('/v1/images/generations'))) arrivals.push(performance.now())
    return push(...entries)
  }
  /** @param {string} name @param {() => Promise<any>} measure */
  const row = async (name, measure) => {
    fake.reset()
    arrivals = []
    answers = []
    /** @type {Record<string, number>} */
    const byStatus = {}
    fake.stats.byStatus = new Proxy(byStatus, {
      set(target, key, value) {
        if (key === '200') answers.push(performance.now())
        target[/** @type {string} */ (key)] = value
        return true
      },
    })
    const cpu = process.cpuUsage()
    const result = await measure()
    const { user, system } = process.cpuUsage(cpu)
    const admitted = arrivals.filter((_, i) => i < answers.length && fake.stats.generationRequests === answers.length)
    const serviceMs = admitted.length ? median(admitted.map((a, i) => answers[i] - a)) : undefined
    return {
      name,
      wallMs: round(result.wallMs),
      // The engine only: from before its scan (the pool has none), so a load moved into the scan is still counted.
      fromScanMs: result.fromScanMs === undefined ? null : round(result.fromScanMs),
      efficiency: round(limitMs / result.wallMs, 3),
      serviceMs: serviceMs === undefined ? null : round(serviceMs, 1),
      // Against what this fake actually took per image: how much of the gap the client itself leaves.
      efficiencyVsService: serviceMs === undefined ? null : round((n * serviceMs) / concurrency / result.wallMs, 3),
      // From the first request's arrival to the last image's answer: the wall time without the client's start-up
      // inside generate() (the engine loads undici on first use, ~130 ms).
      firstRequestToLastAnswerMs: arrivals.length && answers.length ? round(answers[answers.length - 1] - arrivals[0]) : null,
      images: result.images,
      requests: fake.stats.generationRequests,
      status429: fake.stats.byStatus[429] ?? 0,
      retries: result.retries,
      cpuMs: round(result.cpuMs),
      // The fake service runs in this process: its CPU time, to tell its cost from the client's.
      serviceCpuMs: round((user + system) / 1000),
      serverMaxInFlight: fake.stats.maxInFlight,
    }
  }
  try {
    const common = { dist: run.dist, baseURL: fake.baseURL, apiKey: API_KEY }
    /** @typedef {Awaited<ReturnType<typeof row>>} Row */
    const plugin = /** @type {Row[]} */ ([])
    const pool = /** @type {Row[]} */ ([])
    // The engine and the bare pool alternate, a fresh cache each time; each reported by its median run.
    for (let i = 0; i < repeats; i++) {
      const r = await row('plugin engine', () => runChild('engine', { ...common, root, cacheDir: join(root, `cache-${i}`), concurrency }))
      if (r.images !== n) throw new Error(`cold: the engine generated ${r.images} of ${n} images`)
      plugin.push(r)
      if (!pluginOnly) pool.push(await row('bare fetch pool', () => runChild('pool', { ...common, prompts, concurrency, outDir: join(root, `pool-${i}`) })))
    }
    /** @param {Row[]} runs */
    const typical = runs => ({ ...(runs.find(r => r.wallMs === median(runs.map(p => p.wallMs))) ?? runs[0]), runsMs: runs.map(p => p.wallMs) })
    const mid = typical(plugin)
    const rows = /** @type {Array<Row & { runsMs?: number[] }>} */ ([mid])
    if (!pluginOnly) {
      rows.push(typical(pool))
      rows.push(await row('sequential loop', () => runChild('sequential', { ...common, prompts, outDir: join(root, 'sequential') })))
      rows.push(await row('unbounded Promise.all', () => runChild('unbounded', { ...common, prompts, outDir: join(root, 'unbounded') })))
    }
    // #16: the engine against the bare pool, pair by pair (an engine run and the pool run right after it see about
    // the same load on a shared machine): the median of pool wall ÷ engine wall, and its spread.
    const pairsOf = (/** @type {(r: Row) => number} */ engineMs) => (pluginOnly ? [] : plugin.map((p, i) => round(pool[i].wallMs / engineMs(p), 3)))
    const pairs = pairsOf(p => p.wallMs)
    const vsPool = pairs.length ? median(pairs) : null
    // The same pairs with the engine's scan counted in (fromScanMs): what a cold build pays, the load included.
    const pairsFromScan = pairsOf(p => /** @type {number} */ (p.fromScanMs))
    return {
      params: { n, latencyMs, concurrency, imageBytes, serviceMaxInFlight: concurrency },
      limitMs,
      rows,
      vsPool,
      pairs,
      vsPoolFromScan: pairsFromScan.length ? median(pairsFromScan) : null,
      pairsFromScan,
      target: 'engine ≥ 0.97 of the bare fetch pool (median of the pairs\' pool wall ÷ engine wall)',
      met: vsPool === null ? null : vsPool >= 0.97,
    }
  } finally {
    await fake.close()
  }
}
