import { ApiError, BudgetError, FluxError, StrictError } from './errors'
import { estimateTotal, formatCost } from './price'
import { type Catalog, formatPrice, sortImageModels } from './providers/catalog'
import { PROVIDER_ERRORS } from './providers/contract'
import type { ImageResult } from './summary'
import type { AssetRecord, AssetRequest, ResolvedOptions } from './types'

/**
 * The rules, pure: what may be generated, what stops a run, what fails it. No I/O, no state: every rule about money
 * and failure is read here, in one place.
 */

/** What to do with the missing images: call for them, or give them placeholders (and why). */
export type Decision = { generate: AssetRequest[] } | { placeholders: string; warning: string | undefined }

/** What an engine has paid for so far (a dev server or watch session: every rebuild together). */
export interface Spent {
  images: number
  /** USD; `null` once something of unknown price was paid. */
  cost: number | null
}

/**
 * Offline and no key make placeholders without a call; the budget caps (`maxNewImages`, `maxCost`, both over the
 * whole session) stop the run before the first call. An unknown price counts as over `maxCost`.
 */
export function decide(missing: AssetRequest[], options: Pick<ResolvedOptions, 'offline' | 'maxNewImages' | 'maxCost'>, canCall: boolean, spent: Spent = { images: 0, cost: 0 }): Decision {
  const count = `${missing.length} image${missing.length === 1 ? ' is' : 's are'} not cached`
  if (options.offline) return { placeholders: 'offline: no API call made', warning: missing.length ? `${count} and offline mode is on: using placeholders` : undefined }
  if (!canCall) return { placeholders: 'no API key (set TOGETHER_API_KEY)', warning: missing.length ? `${count} and no API key is set (TOGETHER_API_KEY): using placeholders` : undefined }
  if (missing.length === 0) return { generate: missing }
  const estimate = estimateTotal(missing.map(r => r.settings))
  const before = spent.images ? ` (${spent.images} already generated in this session)` : ''
  const what = `${missing.length} new image${missing.length === 1 ? '' : 's'} would be generated (${formatCost(estimate)})${before}`
  if (missing.length + spent.images > options.maxNewImages) {
    throw new BudgetError(`${what}, more than maxNewImages (${options.maxNewImages}): nothing was generated. Raise maxNewImages (CLI: --max-new-images) to go ahead.`)
  }
  if (options.maxCost !== undefined) {
    const total = estimate === null || spent.cost === null ? null : estimate + spent.cost
    if (total === null || total > options.maxCost) {
      const why = total === null ? 'the price of some of them is unknown' : `more than maxCost ($${options.maxCost})`
      throw new BudgetError(`${what}: ${why}: nothing was generated. Raise maxCost (CLI: --max-cost) to go ahead.`)
    }
  }
  return { generate: missing }
}

/**
 * Every model to be called must be in the catalog the key sees: one that is not (retired, or not for this account)
 * stops the run before any paid request, naming it and what can be used instead.
 */
export function checkModels(requests: AssetRequest[], catalog: Catalog): void {
  const listed = new Set(catalog.models.map(m => m.id))
  const missing = [...new Set(requests.map(r => r.settings.model))].filter(m => !listed.has(m))
  if (missing.length === 0) return
  const available = sortImageModels(catalog.models).map(m => `  ${m.id}  ${formatPrice(m.price)}`)
  throw new FluxError(
    'FLUX_MODEL',
    `model${missing.length === 1 ? '' : 's'} ${missing.map(m => `"${m}"`).join(', ')} ${missing.length === 1 ? 'is' : 'are'} not served for this key (not in the provider's model list): nothing was generated or billed. Image models it can use:\n${available.join('\n')}\nSet the \`model\` option (or a script's "model") to one of them. Cached images of the old model keep working while it stays set.`,
  )
}

/** Codes that fail the whole run (the account cannot generate at all), not just their images. */
const FAILS_RUN = new Set(['FLUX_GATED'])

/** An account-level failure during the run fails it (after every write has settled): one message, nothing lost. */
export function checkRun(results: ReadonlyMap<string, ImageResult>): void {
  for (const result of results.values()) {
    if (result.kind === 'failed' && result.code && FAILS_RUN.has(result.code)) throw new FluxError(result.code, result.reason)
  }
}

/**
 * How far a failed call's reason reaches: `all` when every further call would get the same answer (a rejected key,
 * no credits), `model` when only calls for that model would (it is not served), `image` otherwise.
 */
export function reach(error: unknown): 'all' | 'model' | 'image' {
  if (!(error instanceof ApiError)) return 'image'
  return (PROVIDER_ERRORS as Record<string, 'all' | 'model' | 'image'>)[error.code] ?? 'image'
}

/** Strict: any asset without an image fails the run, naming each. */
export function checkStrict(assets: AssetRecord[], strict: boolean): void {
  const missing = assets.filter(a => a.placeholder)
  if (!strict || missing.length === 0) return
  const images = new Set(missing.map(a => a.key)).size
  const lines = missing.map(a => `  ${a.script} ${a.pointer}: ${a.error}`)
  throw new StrictError(`strict: ${images} image${images === 1 ? '' : 's'} could not be had:\n${lines.join('\n')}`)
}
