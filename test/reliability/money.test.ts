// Issue 4, point 8: money. `maxNewImages` stops before the first call (CLI and build alike); a 402 (out of credits)
// stops every further call at once; the summary counts exactly what was paid, and everything paid is cached.
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { startFakeTogether, type FakeTogether } from '../fake-together.mjs'
import {
  assertCacheConsistent,
  expectedKeys,
  fakeEnv,
  fileSha,
  makeTemp,
  readManifest,
  recordFiles,
  removeTemp,
  runCli,
  SENTINEL,
  SIZE,
  scriptWith,
  validImages,
  viteBuild,
  writeApp,
  writeScripts,
} from './helpers'

const fakes: FakeTogether[] = []
let root: string | undefined
afterEach(async () => {
  await Promise.all(fakes.splice(0).map(f => f.close()))
  await removeTemp(root)
  root = undefined
})
const start = async (options: Parameters<typeof startFakeTogether>[0] = {}) => {
  const fake = await startFakeTogether(options)
  fakes.push(fake)
  return fake
}

/** USD for n FLUX.2 [dev] images ($0.0154 per image, the fake's catalog as Together's), as the summary prints it. */
const PER_IMAGE = 0.0154
const cost = (n: number) => `est. $${(n * PER_IMAGE).toFixed(3)}`
const ANSI = /\x1b\[[0-9;]*m/g

interface Summary {
  assets: number
  unique: number
  generated: number
  cached: number
  placeholders: number
  failed: number
  estimatedCost: number | null
}
interface JsonRun {
  summary: Summary
  assets: Array<{ key: string; placeholder: boolean; error?: string }>
}

describe('maxNewImages', () => {
  it('the CLI stops before the first call, naming the count and the estimated cost; at the limit it goes ahead', async () => {
    root = await makeTemp('money-budget')
    await writeScripts(root, { 'a.script.json': scriptWith(8, 'budget') })
    const cacheDir = join(root, '.flux-cache')
    const fake = await start()

    // Default size (1024×768) so the estimate is a real number of cents; no image is made, so size costs nothing.
    const over = await runCli(['generate', '--max-new-images', '5'], { cwd: root, env: fakeEnv(fake.baseURL) })
    expect(over.code, over.stderr).toBe(1)
    expect(over.stderr).toContain(`8 new images would be generated (${cost(8)}), more than maxNewImages (5): nothing was generated`)
    expect(fake.stats.generationRequests).toBe(0)
    expect(recordFiles(cacheDir)).toEqual([])

    // The budget counts only what is missing: 8 cached, 6 new, a limit of 6 goes ahead and pays 6.
    const first = await runCli(['generate', ...SIZE, '--max-new-images', '8'], { cwd: root, env: fakeEnv(fake.baseURL) })
    expect(first.code, first.stderr).toBe(0)
    await writeScripts(root, { 'b.script.json': scriptWith(6, 'budget-more') })
    fake.reset()
    const stillOver = await runCli(['generate', ...SIZE, '--max-new-images', '5'], { cwd: root, env: fakeEnv(fake.baseURL) })
    expect(stillOver.code).toBe(1)
    expect(stillOver.stderr).toContain('6 new images would be generated')
    expect(fake.stats.generationRequests).toBe(0)
    const atLimit = await runCli(['generate', ...SIZE, '--max-new-images', '6', '--json'], { cwd: root, env: fakeEnv(fake.baseURL) })
    expect(atLimit.code, atLimit.stderr).toBe(0)
    expect((JSON.parse(atLimit.stdout) as JsonRun).summary).toMatchObject({ generated: 6, cached: 8, placeholders: 0 })
    expect(fake.stats.generations).toBe(6)
    expect(fake.stats.generationRequests).toBe(6)
  })

  it('a vite build fails with the same message and makes no call', async () => {
    root = await makeTemp('money-budget-vite')
    await writeScripts(root, { 'a.script.json': scriptWith(8, 'budget-vite') })
    await writeApp(root, ['a.script.json'])
    const fake = await start()

    const cli = await runCli(['generate', '--max-new-images', '5'], { cwd: root, env: fakeEnv(fake.baseURL) })
    const message = /^flux-assets: (.*maxNewImages.*)$/m.exec(cli.stderr)?.[1]
    expect(message, cli.stderr).toContain(cost(8))

    const error = await viteBuild(root, { apiKey: SENTINEL, baseURL: fake.baseURL, maxNewImages: 5, width: undefined, height: undefined }).then(
      () => undefined,
      (e: Error) => e,
    )
    expect(error, 'the build went ahead').toBeInstanceOf(Error)
    expect(error!.message.replace(ANSI, '')).toContain(message!)
    expect(fake.stats.generationRequests).toBe(0)
    expect(recordFiles(join(root, '.flux-cache'))).toEqual([])
  })
})

// #11, item 2: `generate --dry-run` was accepted, ignored, and the images bought.
describe('generate --dry-run', () => {
  it('makes no generation request: lists what would be generated with the estimated cost, exits 0, writes nothing', async () => {
    root = await makeTemp('money-dry-run')
    await writeScripts(root, { 'a.script.json': scriptWith(3, 'dry') })
    const cacheDir = join(root, '.flux-cache')
    const fake = await start()
    // Default size (1024×768) so the estimate is a real number of cents.
    const dry = await runCli(['generate', '--dry-run'], { cwd: root, env: fakeEnv(fake.baseURL) })
    expect(dry.code, dry.stderr).toBe(0)
    expect(fake.stats.generationRequests).toBe(0)
    const lines = dry.stdout.trim().split('\n')
    expect(lines).toHaveLength(4)
    for (const line of lines.slice(0, 3)) expect(line).toMatch(/^would generate {2}a\.script\.json \/visual_track\/0\/assets\/a\d {2}1024×768 {2}est\. \$0\.015 {2}"dry prompt number \d: a lighthouse at dusk"$/)
    expect(lines[3]).toBe(`dry run: 3 images would be generated (${cost(3)}), 0 cached; nothing was called`)
    expect(recordFiles(cacheDir)).toEqual([])

    // Half of it cached: only the rest is listed; --json says the same.
    expect((await runCli(['generate', ...SIZE, '--include', 'a.script.json'], { cwd: root, env: fakeEnv(fake.baseURL) })).code).toBe(0)
    await writeScripts(root, { 'b.script.json': scriptWith(2, 'dry-more') })
    fake.reset()
    const json = await runCli(['generate', ...SIZE, '--dry-run', '--json'], { cwd: root, env: fakeEnv(fake.baseURL) })
    expect(json.code, json.stderr).toBe(0)
    const parsed = JSON.parse(json.stdout)
    expect(parsed).toMatchObject({ dryRun: true, cached: 3, estimatedCost: expect.closeTo(2 * PER_IMAGE, 10) })
    expect(parsed.wouldGenerate.map((i: { script: string }) => i.script)).toEqual(['b.script.json', 'b.script.json'])
    expect(fake.stats.requests).toBe(0)
  })
})

describe('what the summary says was paid', () => {
  it('url mode with expiring URLs: an image paid for and lost is counted, and its cost estimated, every time', async () => {
    root = await makeTemp('money-paid')
    await writeScripts(root, { 'a.script.json': scriptWith(6, 'paid') })
    const cacheDir = join(root, '.flux-cache')
    // Half the image URLs are dead by the time they are fetched: each such image was billed, then generated again.
    const fake = await start({ faults: { expire: 0.5 }, seed: 3 })
    const run = await runCli(['generate', ...SIZE, '--response-format', 'url', '--concurrency', '6', '--retries', '8', '--json'], { cwd: root, env: fakeEnv(fake.baseURL) })
    expect(run.code, run.stderr).toBe(0)
    const { summary } = JSON.parse(run.stdout) as JsonRun & { summary: { paid: number } }
    expect(fake.stats.generations, 'the seed no longer expires any URL').toBeGreaterThan(6)
    expect(summary.paid).toBe(fake.stats.generations)
    expect(summary.estimatedCost).toBeCloseTo(fake.stats.generations * PER_IMAGE, 12)
    // Generated counts images obtained: exactly the cache's entries.
    expect(summary.generated).toBe((await assertCacheConsistent(cacheDir)).length)

    // The plain summary line says it too.
    await removeTemp(root)
    root = await makeTemp('money-paid-line')
    await writeScripts(root, { 'a.script.json': scriptWith(6, 'paid') })
    fake.reset()
    const line = await runCli(['generate', ...SIZE, '--response-format', 'url', '--concurrency', '6', '--retries', '8'], { cwd: root, env: fakeEnv(fake.baseURL) })
    expect(line.code, line.stderr).toBe(0)
    expect(line.stdout).toContain(`generated (${fake.stats.generations} paid)`)
  })
})

describe('out of credits (402)', () => {
  it('stops all further calls at once; the summary counts exactly what was paid, and all of it is cached', async () => {
    root = await makeTemp('money-402')
    await writeScripts(root, { 'a.script.json': scriptWith(20, 'credits') })
    const cacheDir = join(root, '.flux-cache')
    // Some latency, so four requests really are in flight together when the credits run out.
    const fake = await start({ credits: 5, latencyMs: 40 })

    // --api-failure placeholder: the run ships what was paid and placeholders for the rest (default: it fails, below).
    const run = await runCli(['generate', ...SIZE, '--concurrency', '4', '--json', '--api-failure', 'placeholder'], { cwd: root, env: fakeEnv(fake.baseURL) })
    expect(run.code, run.stderr).toBe(0)
    // The first 402 stops the queue: only requests already in flight may still get one.
    expect(fake.stats.generations).toBe(5)
    expect(fake.stats.byStatus[402]).toBeGreaterThanOrEqual(1)
    expect(fake.stats.generationRequests).toBeLessThanOrEqual(5 + 4)
    // Said once, not once per image.
    expect(run.stderr.match(/out of credits \(402\)/g)).toHaveLength(1)

    const { summary, assets } = JSON.parse(run.stdout) as JsonRun
    expect(summary).toMatchObject({ assets: 20, unique: 20, generated: 5, paid: 5, cached: 0, placeholders: 15, failed: 15 })
    expect(summary.estimatedCost).toBeCloseTo(5 * PER_IMAGE, 12)
    for (const a of assets.filter(a => a.placeholder)) expect(a.error).toMatch(/out of credits \(402\)/)

    // What was paid is exactly what is cached, and it is what the run reported as real images.
    const paid = assets.filter(a => !a.placeholder).map(a => a.key).sort()
    expect(await assertCacheConsistent(cacheDir)).toEqual(paid)

    // By default (and with --strict) the same situation fails the run, with one message; a refill then pays only the
    // 15 that are missing.
    for (const flags of [[], ['--strict']]) {
      fake.reset()
      const failed = await runCli(['generate', ...SIZE, ...flags], { cwd: root, env: fakeEnv(fake.baseURL) })
      expect(failed.code).toBe(1)
      expect(failed.stderr).toContain('out of credits (402)')
      expect(fake.stats.generations).toBe(0)
    }
    fake.set({ credits: 100 })
    fake.reset()
    const refill = await runCli(['generate', ...SIZE, '--strict', '--json'], { cwd: root, env: fakeEnv(fake.baseURL) })
    expect(refill.code, refill.stderr).toBe(0)
    expect((JSON.parse(refill.stdout) as JsonRun).summary).toMatchObject({ generated: 15, cached: 5 })
    expect(fake.stats.generations).toBe(15)
    expect(await validImages(cacheDir, await expectedKeys(root))).toBe(20)
  })

  it('a request waiting to retry is not sent once another one got 402', async () => {
    root = await makeTemp('money-402-retry')
    await writeScripts(root, { 'a.script.json': scriptWith(6, 'credits-retry') })
    // Two workers: one request is told to come back in 30 s (429), the other finds no credits left (402). The
    // waiting one must neither be sent again nor keep the run waiting (the stop cuts its wait short).
    const fake = await start({ credits: 0 })
    fake.enqueue({ status: 429, headers: { 'retry-after': '30' } })
    const run = await runCli(['generate', ...SIZE, '--concurrency', '2', '--json', '--api-failure', 'placeholder'], { cwd: root, env: fakeEnv(fake.baseURL) })
    expect(run.code, run.stderr).toBe(0)
    // The catalog's one 200 aside: one 429, one 402, no image.
    expect(fake.stats.byStatus).toEqual({ 200: fake.stats.catalogReads, 429: 1, 402: 1 })
    expect(fake.stats.generations).toBe(0)
    expect(fake.stats.generationRequests).toBe(2)
    expect((JSON.parse(run.stdout) as JsonRun).summary).toMatchObject({ generated: 0, placeholders: 6, failed: 6 })
  })

  it('a vite build out of credits fails; with apiFailure "placeholder" it ships what was paid and placeholders for the rest', async () => {
    root = await makeTemp('money-402-vite')
    await writeScripts(root, { 'a.script.json': scriptWith(20, 'credits-vite') })
    await writeApp(root, ['a.script.json'])
    const cacheDir = join(root, '.flux-cache')
    const fake = await start({ credits: 5, latencyMs: 40 })

    const failed = await viteBuild(root, { apiKey: SENTINEL, baseURL: fake.baseURL, concurrency: 4 }).catch((e: unknown) => e)
    expect((failed as Error).message).toContain('out of credits (402)')
    expect(fake.stats.generations).toBe(5)
    expect(await assertCacheConsistent(cacheDir)).toHaveLength(5)

    fake.reset()
    const outDir = await viteBuild(root, { apiKey: SENTINEL, baseURL: fake.baseURL, concurrency: 4, apiFailure: 'placeholder' })
    expect(fake.stats.generations).toBe(0)
    expect(fake.stats.generationRequests).toBeLessThanOrEqual(4)
    const manifest = await readManifest(outDir)
    const real = manifest.filter(e => !e.placeholder)
    expect(real).toHaveLength(5)
    expect(manifest.filter(e => e.placeholder)).toHaveLength(15)
    expect(real.map(e => e.key).sort()).toEqual(await assertCacheConsistent(cacheDir))
    // The shipped images are the paid bytes.
    for (const e of real) {
      const record = JSON.parse(await readFile(join(cacheDir, 'v1', e.key.slice(0, 2), `${e.key}.json`), 'utf8'))
      expect(await fileSha(join(outDir, e.file))).toBe(record.sha256)
    }
  })
})
