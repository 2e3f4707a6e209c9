// Issue 4, point 1: a flaky API (500, 503, 429 + Retry-After, resets; in url mode truncated and expired downloads)
// still ends in every image cached and valid, and exit 0.
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { startFakeTogether, type FakeTogether } from '../fake-together.mjs'
import { assertCacheConsistent, expectedKeys, fakeEnv, makeTemp, removeTemp, runCli, SIZE, scriptWith, STACK_LINE, validImages, writeScripts } from './helpers'

let fake: FakeTogether | undefined
let root: string | undefined
afterEach(async () => {
  await fake?.close()
  await removeTemp(root)
  fake = root = undefined
})

const STATUS_FAULTS = { status500: 0.15, status503: 0.1, status429: 0.15, reset: 0.05 }

async function flakyRun(responseFormat: 'url' | 'base64', faults: Record<string, number>, seed: number) {
  // Retry-After 0.1 s: honoured like any other value, but keeps the test short.
  fake = await startFakeTogether({ faults, seed, retryAfter: '0.1' })
  root = await makeTemp(`faults-${responseFormat}`)
  await writeScripts(root, { 'a.script.json': scriptWith(12, 'a'), 'nested/b.script.json': scriptWith(12, 'b') })
  const run = await runCli(['generate', ...SIZE, '--response-format', responseFormat, '--concurrency', '4', '--retries', '12', '--strict', '--json'], {
    cwd: root,
    env: fakeEnv(fake.baseURL),
  })
  return { run, keys: await expectedKeys(root), cacheDir: join(root, '.flux-cache') }
}

describe('faults', () => {
  it('url mode: 500/503/429/resets plus truncated and expired downloads end in 24 valid cached images, exit 0', async () => {
    const { run, keys, cacheDir } = await flakyRun('url', { ...STATUS_FAULTS, truncate: 0.1, expire: 0.05 }, 24)
    expect(run.stderr).not.toMatch(STACK_LINE)
    expect(run.code, run.stderr).toBe(0)
    expect(keys).toHaveLength(24)
    expect(await validImages(cacheDir, keys)).toBe(24)
    expect(await assertCacheConsistent(cacheDir)).toEqual(keys)
    const { summary } = JSON.parse(run.stdout)
    expect(summary).toMatchObject({ assets: 24, unique: 24, generated: 24, placeholders: 0, failed: 0 })
    // The faults really happened: every kind at least once.
    const s = fake!.stats
    expect(s.byStatus[500]).toBeGreaterThan(0)
    expect(s.byStatus[503]).toBeGreaterThan(0)
    expect(s.byStatus[429]).toBeGreaterThan(0)
    expect(s.byStatus[404]).toBeGreaterThan(0) // expired URLs
    expect(s.resets).toBeGreaterThan(0) // resets and truncated transfers
    expect(s.downloads).toBeGreaterThan(24) // truncated transfers were downloaded again
    expect(s.downloadsWithAuth).toBe(0)
  })

  it('base64 mode: 500/503/429/resets end in 24 valid cached images, exit 0', async () => {
    const { run, keys, cacheDir } = await flakyRun('base64', STATUS_FAULTS, 3)
    expect(run.stderr).not.toMatch(STACK_LINE)
    expect(run.code, run.stderr).toBe(0)
    expect(await validImages(cacheDir, keys)).toBe(24)
    expect(await assertCacheConsistent(cacheDir)).toEqual(keys)
    expect(JSON.parse(run.stdout).summary).toMatchObject({ generated: 24, placeholders: 0, failed: 0 })
    // Paid exactly once per image: a failed attempt is never billed, a success is never repeated.
    expect(fake!.stats.generations).toBe(24)
    const s = fake!.stats
    expect(s.byStatus[500]).toBeGreaterThan(0)
    expect(s.byStatus[503]).toBeGreaterThan(0)
    expect(s.byStatus[429]).toBeGreaterThan(0)
    expect(s.resets).toBeGreaterThan(0)
  })
})
