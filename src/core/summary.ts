import { estimateCost, formatCost } from './price'
import type { AssetRequest, CacheHit, Progress, RunSummary } from './types'

/**
 * How one unique image (cache key) ended up in a run: the one result the engine keeps per image. Every count the
 * user sees (the progress line, the summary line, `--json`) comes from these through summarize(), nowhere else.
 * - `cached`: the cache had it (also when another process made it while we waited for its lock);
 * - `generated`: paid for and stored this run (`paid` > 1 when a lost download or a broken image was paid again);
 * - `placeholder`: no call was made (offline, no key), so a stand-in ships;
 * - `failed`: generation was attempted (or stopped for everyone) and gave no image; it may still have been paid.
 */
export type ImageResult =
  | { kind: 'cached'; hit: CacheHit }
  | { kind: 'generated'; hit: CacheHit; paid: number; cost: number | null }
  | { kind: 'placeholder'; reason: string; code?: string }
  | { kind: 'failed'; reason: string; paid: number; cost: number | null; code?: string }

/** What `paid` answers cost, or `null` when the model's price is unknown. */
export function costOf(request: AssetRequest, paid: number): number | null {
  if (paid === 0) return 0
  const each = estimateCost(request.settings)
  return each === null ? null : each * paid
}

/** The cache entry behind a result, if it has an image. */
export function hitOf(result: ImageResult | undefined): CacheHit | undefined {
  return result && (result.kind === 'cached' || result.kind === 'generated') ? result.hit : undefined
}

interface Counts {
  cached: number
  generated: number
  placeholders: number
  failed: number
  paid: number
  cost: number | null
}

function count(results: Iterable<ImageResult>): Counts {
  const c: Counts = { cached: 0, generated: 0, placeholders: 0, failed: 0, paid: 0, cost: 0 }
  for (const r of results) {
    if (r.kind === 'cached') c.cached++
    else if (r.kind === 'generated') c.generated++
    else if (r.kind === 'placeholder') c.placeholders++
    else c.failed++
    if (r.kind === 'generated' || r.kind === 'failed') {
      c.paid += r.paid
      c.cost = c.cost === null || r.cost === null ? null : c.cost + r.cost
    }
  }
  return c
}

/** The run's summary from its results. `placeholders` counts every asset image without an image (failed ones too). */
export function summarize(results: ReadonlyMap<string, ImageResult>, assets: number, durationMs: number): RunSummary {
  const c = count(results.values())
  return {
    assets,
    unique: results.size,
    generated: c.generated,
    paid: c.paid,
    cached: c.cached,
    placeholders: c.placeholders + c.failed,
    failed: c.failed,
    durationMs: Math.round(durationMs),
    estimatedCost: c.cost,
  }
}

/** Progress so far: the same counting as summarize(), over the results in so far. */
export function progressOf(results: ReadonlyMap<string, ImageResult>, total: number, generating: number): Progress {
  const c = count(results.values())
  return { total, done: results.size, cached: c.cached, generating, generated: c.generated, placeholders: c.placeholders, failed: c.failed, spent: c.cost }
}

/** `12 assets · 3 generated · 9 cached · 0 placeholders · 4.1 s · est. $0.008` */
export function formatSummary(s: RunSummary): string {
  const parts = [
    `${s.assets} asset${s.assets === 1 ? '' : 's'}${s.unique === s.assets ? '' : ` (${s.unique} image${s.unique === 1 ? '' : 's'})`}`,
    `${s.generated} generated${s.paid > s.generated ? ` (${s.paid} paid)` : ''}`,
    `${s.cached} cached`,
    `${s.placeholders} placeholder${s.placeholders === 1 ? '' : 's'}`,
  ]
  if (s.failed) parts.push(`${s.failed} failed`)
  parts.push(`${(s.durationMs / 1000).toFixed(1)} s`, formatCost(s.estimatedCost))
  return parts.join(' · ')
}

/** `7/12 · 5 cached · 2 generated · 4 generating · 1 failed`: the CLI's progress line. */
export function formatProgress(p: Progress): string {
  return `${p.done}/${p.total} · ${p.cached} cached · ${p.generated} generated · ${p.generating} generating · ${p.failed} failed`
}
