import { ApiError, BudgetError, FluxError, StrictError } from './errors'
import { estimateTotal, formatCost } from './price'
import { type Catalog, formatPrice, sortImageModels } from './providers/catalog'
import { PROVIDER_ERRORS } from './providers/contract'
import type { ImageResult } from './summary'
import type { AssetRecord, AssetRequest, ResolvedOptions } from './types'

/**
 * The rules, pure: what may be generated, what stops a run, what fails it. No I/O, no state: every rule about money
 * and failure is read here, in one place. The table of what fails (README, "What fails"):
 *
 * | situation                                   | build / CLI                                   | dev server            |
 * |---------------------------------------------|-----------------------------------------------|-----------------------|
 * | no key at all                               | placeholders + one warning, exit 0            | placeholders          |
 * | account-level: key rejected, account gated, | stop further calls, fail: exit 1 / failed     | placeholders + reason |
 * | out of credits, model not served, API       | build, one message, nothing generated lost    | (terminal + browser   |
 * | unreachable, cache disk full or read-only   | (`apiFailure: 'placeholder'`: placeholders)   | console)              |
 * | one image's own failure (safety, a 400)     | placeholder + its line; fails under `strict`  | placeholder           |
 * | budget stop (`maxNewImages`, `maxCost`)     | stop before any call, exit 1                  | stop, say so          |
 * | bad script input                            | exit 2 / failed build naming file and place   | Vite's error overlay  |
 *
 * `strict` makes every placeholder a failure and wins over everything else.
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

/**
 * Account-level: every further call would fail the same way (reach `all`), or the model is not served (`model`).
 * No key is not one: it is the table's first row (placeholders, one warning), found out at call time.
 */
export function isAccountLevel(code: string | undefined): boolean {
  return code !== undefined && !isNoKey(code) && reachOf(code) !== 'image'
}

/** The provider found no key before sending anything (an AI SDK provider reads its own variable at call time). */
export function isNoKey(code: string | undefined): boolean {
  return code === 'FLUX_NO_KEY'
}

/** What a call that failed (or was not made) for want of a key ends as: a placeholder, as with no key set at all. */
export function noKeyResult(reason: string): ImageResult {
  return { kind: 'placeholder', reason, code: 'FLUX_NO_KEY' }
}

/** The one warning of a run whose provider had no key: `3 images are not cached and no API key …: using placeholders`. */
export function noKeyWarning(results: ReadonlyMap<string, ImageResult>): string | undefined {
  const missing = [...results.values()].flatMap(r => (r.kind === 'placeholder' && isNoKey(r.code) ? [r.reason] : []))
  if (!missing.length) return undefined
  return `${missing.length} image${missing.length === 1 ? ' is' : 's are'} not cached and there is ${missing[0]}: using placeholders`
}

/** The account-level failure of a run, if any: its code, its reason (once), and how many images it cost. */
export function accountFailure(results: ReadonlyMap<string, ImageResult>): { code: string; reason: string; images: number } | undefined {
  let first: { code: string; reason: string } | undefined
  let images = 0
  for (const r of results.values()) {
    if (r.kind !== 'failed' || !isAccountLevel(r.code)) continue
    images++
    // The reason itself, not a "not attempted: stopped: …" echo of it.
    if (!first || (first.reason.startsWith('not attempted') && !r.reason.startsWith('not attempted'))) first = { code: r.code!, reason: r.reason }
  }
  return first && { ...first, reason: first.reason.replace(/^not attempted: (stopped: )?/, ''), images }
}

/**
 * An account-level failure fails the run (after every write has settled): one message, nothing generated lost.
 * `apiFailure: 'placeholder'` and the dev server keep the placeholders and say it once instead. Returns that line.
 */
export function checkRun(results: ReadonlyMap<string, ImageResult>, options: Pick<ResolvedOptions, 'apiFailure' | 'dev'>): string | undefined {
  const failure = accountFailure(results)
  if (!failure) return undefined
  const count = `${failure.images} image${failure.images === 1 ? '' : 's'}`
  if (options.apiFailure === 'fail' && !options.dev) {
    throw new FluxError(failure.code, `${failure.reason}\n${count} could not be generated; every image made before stays cached. (apiFailure: 'placeholder' ships placeholders instead.)`)
  }
  return `${failure.reason}: ${count} ${failure.images === 1 ? 'is a placeholder' : 'are placeholders'}`
}

/**
 * How far a failed call's reason reaches: `all` when every further call would get the same answer (a rejected key,
 * no credits), `model` when only calls for that model would (it is not served), `image` otherwise.
 */
export function reach(error: unknown): 'all' | 'model' | 'image' {
  if (error instanceof ApiError || (error instanceof FluxError && error.code === 'FLUX_DISK')) return reachOf(error.code)
  return 'image'
}

/** How far a code reaches: the provider contract's table, and the cache disk (a full or read-only one loses every further paid image too). */
function reachOf(code: string): 'all' | 'model' | 'image' {
  if (code === 'FLUX_DISK') return 'all'
  return (PROVIDER_ERRORS as Record<string, 'all' | 'model' | 'image'>)[code] ?? 'image'
}

/** Strict: any asset without an image fails the run, naming each. */
export function checkStrict(assets: AssetRecord[], strict: boolean): void {
  const missing = assets.filter(a => a.placeholder)
  if (!strict || missing.length === 0) return
  const images = new Set(missing.map(a => a.key)).size
  const lines = missing.map(a => `  ${a.script} ${a.pointer}: ${a.error}`)
  throw new StrictError(`strict: ${images} image${images === 1 ? ' is a placeholder' : 's are placeholders'}, and strict allows none:\n${lines.join('\n')}`)
}
