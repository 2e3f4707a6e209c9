import { ApiError, BudgetError, StrictError } from './errors'
import { estimateTotal, formatCost } from './price'
import type { AssetRecord, AssetRequest, ResolvedOptions } from './types'

/**
 * The rules, pure: what may be generated, what stops a run, what fails it. No I/O, no state: every rule about money
 * and failure is read here, in one place.
 */

/** What to do with the missing images: call for them, or give them placeholders (and why). */
export type Decision = { generate: AssetRequest[] } | { placeholders: string; warning: string | undefined }

/** Offline and no key make placeholders without a call; the budget stops the run before the first call. */
export function decide(missing: AssetRequest[], options: Pick<ResolvedOptions, 'offline' | 'maxNewImages'>, canCall: boolean): Decision {
  const count = `${missing.length} image${missing.length === 1 ? ' is' : 's are'} not cached`
  if (options.offline) return { placeholders: 'offline: no API call made', warning: missing.length ? `${count} and offline mode is on: using placeholders` : undefined }
  if (!canCall) return { placeholders: 'no API key (set TOGETHER_API_KEY)', warning: missing.length ? `${count} and no API key is set (TOGETHER_API_KEY): using placeholders` : undefined }
  if (missing.length > options.maxNewImages) {
    throw new BudgetError(
      `${missing.length} new images would be generated (${formatCost(estimateTotal(missing.map(r => r.settings)))}), more than maxNewImages (${options.maxNewImages}): nothing was generated. Raise maxNewImages (CLI: --max-new-images) to go ahead.`,
    )
  }
  return { generate: missing }
}

/**
 * How far a failed call's reason reaches: `all` when every further call would get the same answer (a rejected key,
 * no credits), `model` when only calls for that model would (it is not served), `image` otherwise.
 */
export function reach(error: unknown): 'all' | 'model' | 'image' {
  if (!(error instanceof ApiError)) return 'image'
  if (error.code === 'FLUX_CREDITS' || error.code === 'FLUX_AUTH') return 'all'
  if (error.code === 'FLUX_MODEL') return 'model'
  return 'image'
}

/** Strict: any asset without an image fails the run, naming each. */
export function checkStrict(assets: AssetRecord[], strict: boolean): void {
  const missing = assets.filter(a => a.placeholder)
  if (!strict || missing.length === 0) return
  const images = new Set(missing.map(a => a.key)).size
  const lines = missing.map(a => `  ${a.script} ${a.pointer}: ${a.error}`)
  throw new StrictError(`strict: ${images} image${images === 1 ? '' : 's'} could not be had:\n${lines.join('\n')}`)
}
