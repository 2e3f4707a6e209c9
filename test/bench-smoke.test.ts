// `npm run bench` at tiny sizes (--smoke): every scenario runs end to end against the fake service and reports
// numbers in the documented JSON shape. No time is ever compared with a threshold here: timings are for the bench.
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdir, readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

const REPO = fileURLToPath(new URL('..', import.meta.url))
const TMP = join(REPO, 'test', '.tmp', `bench-smoke-${randomBytes(4).toString('hex')}`)
const OUT = join(TMP, 'results.json')

/** A finite number ≥ 0 (times, bytes, counts). */
const amount = () => expect.toSatisfy((v: unknown) => typeof v === 'number' && Number.isFinite(v) && v >= 0, 'a finite number ≥ 0')
/** A finite number > 0. */
const positive = () => expect.toSatisfy((v: unknown) => typeof v === 'number' && Number.isFinite(v) && v > 0, 'a finite number > 0')

let stdout = ''
let results: any

beforeAll(async () => {
  if (!existsSync(join(REPO, 'dist', 'index.js'))) throw new Error('dist/ is missing: run `npx tsup` first (npm test does)')
  await mkdir(TMP, { recursive: true })
  const env = { ...process.env }
  for (const name of ['TOGETHER_API_KEY', 'TOGETHER_BEARER_TOKEN', 'TOGETHER_BASE_URL']) delete env[name]
  const run = await promisify(execFile)(process.execPath, ['bench/run.mjs', '--smoke', `--out=${OUT}`], { cwd: REPO, env, maxBuffer: 16 * 1024 * 1024, timeout: 170_000 })
  stdout = run.stdout
  results = JSON.parse(await readFile(OUT, 'utf8'))
}, 180_000)

afterAll(async () => {
  await rm(TMP, { recursive: true, force: true })
})

describe('bench --smoke', () => {
  it('writes the run with the machine it ran on', () => {
    expect(results).toMatchObject({ version: 1, smoke: true, durationMs: positive() })
    expect(Date.parse(results.date)).not.toBeNaN()
    expect(results.machine).toMatchObject({ nproc: positive(), cpu: expect.any(String), node: process.version, memoryGb: positive() })
    expect(Object.keys(results.scenarios).sort()).toEqual(['cold', 'dev', 'discovery', 'memory', 'rateLimit', 'variants', 'warmBuild'])
  })

  it('1. cold generation: the engine, a sequential loop and an unbounded Promise.all each made every image', () => {
    const { cold } = results.scenarios
    expect(cold.params).toMatchObject({ n: positive(), latencyMs: positive(), concurrency: positive() })
    expect(cold.limitMs).toBe((cold.params.n * cold.params.latencyMs) / cold.params.concurrency)
    expect(cold.rows.map((r: any) => r.name)).toEqual(['plugin engine', 'bare fetch pool', 'sequential loop', 'unbounded Promise.all'])
    for (const row of cold.rows) {
      expect(row).toMatchObject({ wallMs: positive(), efficiency: positive(), images: cold.params.n, requests: positive(), status429: amount(), retries: amount(), cpuMs: positive() })
      expect(row.requests).toBe(row.images + row.status429)
    }
    // The engine and the loop stay within the service's admission limit; every 429 of the Promise.all was retried.
    expect(cold.rows[0].status429).toBe(0)
    expect(cold.rows[0].serverMaxInFlight).toBeLessThanOrEqual(cold.params.concurrency)
    expect(cold.rows[3].retries).toBe(cold.rows[3].status429)
    expect(typeof cold.met).toBe('boolean')
    expect(cold.pairs).toHaveLength(cold.rows[0].runsMs.length)
    expect(cold.vsPool).toBeGreaterThan(0)
    // The engine's figure from before its scan holds its generate() window.
    expect(cold.rows[0].fromScanMs).toBeGreaterThanOrEqual(cold.rows[0].wallMs)
    expect(cold.pairsFromScan).toHaveLength(cold.pairs.length)
  })

  it('2 and 4. warm vite build and its memory: both builds measured in every run', () => {
    const { warmBuild, memory } = results.scenarios
    const runs = warmBuild.params.runs
    expect(warmBuild.params).toMatchObject({ assets: positive(), runs: positive(), totalImageBytes: positive() })
    for (const side of [warmBuild.plugin, warmBuild.public]) {
      expect(side.buildMs).toHaveLength(runs)
      expect(side.maxRssBytes).toHaveLength(runs)
      for (const v of [...side.buildMs, ...side.maxRssBytes]) expect(v).toEqual(positive())
      expect(side).toMatchObject({ medianMs: positive(), medianRssBytes: positive(), peakRssBytes: positive() })
    }
    expect(warmBuild.ratio).toEqual(positive())
    // The floor: a bare emitter shipping the same files through the bundler, in every run, beside both apps.
    for (const app of [warmBuild, warmBuild.small]) {
      expect(app.floor.bare.buildMs).toHaveLength(runs)
      expect(app.floor).toMatchObject({ bareVsPublic: positive(), pluginVsBare: positive() })
    }
    expect(stdout).toMatch(/floor: a bare emitter [^\n]* takes [\d.]+× public\/; the plugin takes [\d.]+× the bare emitter/)
    // The promise floor: one build doing the least these promises need (keyed, verified, the plugin's own module).
    for (const [app, target] of [[warmBuild, 1.2], [warmBuild.small, 1.25]] as const) {
      expect(app.floor.promised.buildMs).toHaveLength(runs)
      expect(app.floor).toMatchObject({ promisedVsPublic: positive(), pluginVsPromised: positive() })
      expect(app.floor.pluginVsPromised).toBeCloseTo(app.plugin.medianMs / app.floor.promised.medianMs, 2)
      expect(app.belowFloor).toBe(app.floor.promised.medianMs / app.public.medianMs > target)
      expect(app.own.promised).toMatchObject({ ms: positive(), vs: positive() })
    }
    expect(stdout).toMatch(/promise floor \(import unplugin, fast-glob, p-limit; [^\n]*\): [\d.]+× public\/(, so the target is below it)?; the plugin [\d.]+× the promise floor/)
    expect(memory).toMatchObject({ promisedRssBytes: positive(), promisedExtraPerImageByte: expect.any(Number), belowFloor: memory.promisedRssBytes > memory.allowedRssBytes })
    expect(memory.bareRssBytes).toEqual(positive())
    // The same plugin with a page that does not import virtual:flux-assets, and the page JS of both builds.
    expect(memory).toMatchObject({ bytesOnlyRssBytes: positive(), bytesOnlyExtraPerImageByte: expect.any(Number), pageJsBytes: { plugin: positive(), bare: positive() } })
    expect(stdout).toMatch(/the plugin building a page that does not import virtual:flux-assets \(the same images emitted\): [\d.]+ MB, public\/ \+ -?[\d.]+× the image bytes/)
    // The small one-page app (#16), the same method: both builds in every run, a ratio and a verdict.
    const { small } = warmBuild
    expect(small.params).toMatchObject({ assets: positive(), runs, totalImageBytes: positive() })
    for (const side of [small.plugin, small.public]) {
      expect(side.buildMs).toHaveLength(runs)
      for (const v of side.buildMs) expect(v).toEqual(positive())
    }
    expect(small.ratio).toEqual(positive())
    expect(typeof small.met).toBe('boolean')
    expect(small.own).toMatchObject({ ms: positive(), hashMs: positive() })
    // The own-time floor of both apps: the design card's packages' import, the bare emitter's hooks, the sha256.
    for (const own of [warmBuild.own, small.own]) {
      expect(own.floor).toMatchObject({ depsImportMs: positive(), bareHooksMs: positive(), hashMs: own.hashMs })
      expect(own.floor.ms).toBeCloseTo(own.floor.depsImportMs + own.floor.bareHooksMs + own.hashMs, -1)
      expect(own.depsImportMs).toBeLessThanOrEqual(own.importMs)
    }
    expect(stdout).toMatch(/own-time floor \d+ ms \(import of unplugin \+ fast-glob \+ p-limit \d+ ms, the bare emitter's hooks \d+ ms, sha256 \d+ ms\): the plugin [\d.]+× it/)
    expect(stdout).toMatch(/small one-page app, \d+ cached images[^\n]*\n\s+ratio [\d.]+×; target [^:]+: (met|MISSED)/)
    expect(memory).toMatchObject({ pluginRssBytes: warmBuild.plugin.medianRssBytes, publicRssBytes: warmBuild.public.medianRssBytes, allowedRssBytes: positive() })
    expect(memory.allowedRssBytes).toBe(memory.publicRssBytes + 1.5 * warmBuild.params.totalImageBytes)
  })

  it('3. discovery at scale: every tier found every file and occurrence, all cached; the re-hash path was timed', () => {
    const { discovery } = results.scenarios
    expect(discovery.tiers.length).toBeGreaterThanOrEqual(2)
    for (const tier of discovery.tiers) {
      expect(tier).toMatchObject({ files: positive(), totalMs: positive(), scanMs: positive(), checkMs: positive(), maxRssBytes: positive() })
      expect(tier.occurrences).toBe(tier.files * discovery.params.perFile)
      expect(tier.unique).toBe(Math.round(tier.occurrences * discovery.params.uniqueShare))
    }
    expect(discovery.rehash).toMatchObject({ images: discovery.tiers[1].unique, trustedCheckMs: positive(), rehashCheckMs: positive(), afterRestoreCheckMs: positive() })
  })

  it('5. rate-limited service: every image generated at each concurrency, 429s counted', () => {
    const { rateLimit } = results.scenarios
    expect(rateLimit.params).toMatchObject({ n: positive(), perSecond: 6 })
    expect(rateLimit.rows.map((r: any) => r.concurrency)).toEqual([4, 8])
    for (const row of rateLimit.rows) {
      expect(row).toMatchObject({ images: rateLimit.params.n, failed: 0, wallMs: positive(), imagesPerSecond: positive(), ofAllowance: positive(), status429: amount() })
      expect(row.requests).toBe(row.images + row.status429)
    }
  })

  it('6. web variants: bytes against the JPEGs, cold and warm builds, sharp per format and width, memory', () => {
    const { variants } = results.scenarios
    expect(variants.params).toMatchObject({ images: positive(), memoryImages: positive(), sharp: expect.any(String), libvips: expect.any(String) })
    expect(variants.bytes).toMatchObject({ originalBytes: positive(), webpBytes: positive(), blurBytes: positive() })
    expect(variants.bytes.webpBytes).toBeLessThan(variants.bytes.originalBytes)
    expect(typeof variants.bytes.met).toBe('boolean')
    expect(variants.warmBuild.withVariantsMs).toHaveLength(variants.params.pairs)
    expect(variants.warmBuild.withoutMs).toHaveLength(variants.params.pairs)
    expect(variants.warmBuild.pairRatios).toHaveLength(variants.params.pairs)
    expect(variants.warmBuild.ratio).toEqual(positive())
    expect(variants.warmBuild.spread).toMatchObject({ min: positive(), max: positive() })
    // Not a time: the warm builds found every variant the cold build made and wrote none again.
    expect(variants.warmBuild.variantFiles).toEqual(positive())
    expect(variants.warmBuild.variantFilesWritten).toBe(0)
    expect(variants.encode.rows.map((r: any) => r.format)).toEqual(['webp', 'webp', 'avif', 'avif'])
    for (const row of variants.encode.rows) expect(row).toMatchObject({ width: positive(), ms: positive(), bytes: positive() })
    expect(variants.encode.throughput.map((t: any) => t.images)).toEqual([variants.params.images, variants.params.images])
    expect(variants.memory).toMatchObject({ images: variants.params.memoryImages, coldRssBytes: positive(), warmRssBytes: positive() })
  })

  it('7. dev server: both first page loads measured in every pair, each image hashed once by the plugin', () => {
    const { dev } = results.scenarios
    // Skipped only where browser.test.ts is: no Debian Chromium, outside CI.
    if (dev.skipped && !existsSync('/usr/bin/chromium') && !process.env.CI) return
    expect(dev.params).toMatchObject({ assets: positive(), pairs: positive(), totalImageBytes: positive() })
    for (const side of [dev.plugin, dev.public]) {
      expect(side.pageMs).toHaveLength(dev.params.pairs)
      expect(side.listenMs).toHaveLength(dev.params.pairs)
      for (const v of [...side.pageMs, ...side.listenMs]) expect(v).toEqual(positive())
      expect(side).toMatchObject({ medianMs: positive(), medianRssBytes: positive(), peakRssBytes: positive(), medianCpuMs: positive(), sha256: { count: amount(), bytes: amount() } })
    }
    expect(dev.pairRatios).toHaveLength(dev.params.pairs)
    expect(dev.ratio).toEqual(positive())
    expect(dev.spread).toMatchObject({ min: positive(), max: positive() })
    expect(typeof dev.met).toBe('boolean')
    // Not a time: the plugin hashed each of the page's images once (Vite's own hashes, which vary, apart).
    expect(dev.plugin.sha256.plugin).toBe(dev.params.assets)
    expect(dev.public.sha256.plugin).toBe(0)
  })

  it('prints one table per scenario', () => {
    for (const heading of ['1. Cold generation', '2. Warm vite build', '3. Discovery', '4. Memory', '5. Rate-limited service', '6. Web variants', '7. Dev server']) expect(stdout).toContain(heading)
    expect(stdout).toContain(OUT)
  })
})
