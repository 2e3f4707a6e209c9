// Scenario 5: a rate-limited service (a token bucket of R requests per second, capacity R; 429 with retry-after,
// retry-after-ms and x-ratelimit-reset beyond). How close the engine gets to R images per second, and how many 429s
// it provokes on the way, at the default concurrency (4) and at 8.
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { startFakeTogether } from '../test/fake-together.mjs'
import { API_KEY, round, runChild } from './lib.mjs'

/** @param {{ dir: string, dist: string }} run @param {{ smoke: boolean }} flags */
export async function rate(run, { smoke }) {
  const perSecond = 6
  const n = smoke ? 10 : 60
  const latencyMs = 250
  const imageBytes = 150_000
  const root = join(run.dir, 'rate')
  await mkdir(root, { recursive: true })
  const prompts = Array.from({ length: n }, (_, i) => `Rate benchmark prompt ${i}: a paper boat on a puddle`)
  await writeFile(join(root, 'rate.script.json'), JSON.stringify({ visual_track: prompts.map((p, i) => ({ assets: { [`image-${i}`]: p } })) }))

  const fake = await startFakeTogether({ latencyMs, ratePerSecond: perSecond, imageBytes })
  const rows = []
  try {
    for (const concurrency of [4, 8]) {
      fake.reset() // a full bucket, as after a quiet minute
      const r = await runChild('engine', { dist: run.dist, baseURL: fake.baseURL, apiKey: API_KEY, root, cacheDir: join(root, `cache-${concurrency}`), concurrency })
      const imagesPerSecond = r.images / (r.wallMs / 1000)
      // The most any client can do: the first `perSecond` at once from the full bucket, then one per 1/perSecond s.
      const bestMs = (Math.max(0, n - perSecond) / perSecond) * 1000 + latencyMs
      rows.push({
        concurrency,
        images: r.images,
        failed: r.summary.failed,
        wallMs: round(r.wallMs),
        imagesPerSecond: round(imagesPerSecond, 2),
        ofAllowance: round(imagesPerSecond / perSecond, 3),
        ofBestPossible: round(bestMs / r.wallMs, 3),
        requests: fake.stats.generationRequests,
        status429: fake.stats.byStatus[429] ?? 0,
        retries: r.retries,
      })
    }
  } finally {
    await fake.close()
  }
  return {
    params: { n, perSecond, latencyMs, imageBytes },
    rows,
    target: 'images/s ≥ 0.85 × the allowance (6/s), every image generated',
    met: rows.every(r => r.ofAllowance >= 0.85 && r.failed === 0),
  }
}
