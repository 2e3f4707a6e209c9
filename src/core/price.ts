import { aiSdkPrice } from './providers/ai-sdk-models'
import { type CatalogModel, estimateImageCost, priceFor } from './providers/catalog'
import type { ImageSettings } from './types'

/**
 * The catalog read in this process (`GET /models`), if any: its prices win over the built-in table. Set by the
 * engine when it reads the catalog; per process, as the catalog itself is kept.
 */
let listed: readonly CatalogModel[] | undefined

export function usePrices(models: readonly CatalogModel[] | undefined): void {
  listed = models
}

/** Estimated USD for one image, or `null` when the model's price is unknown (never $0). */
export function estimateCost(settings: Pick<ImageSettings, 'model' | 'width' | 'height' | 'steps'> & { provider?: string }): number | null {
  // An AI SDK model: its provider's table (a Together id served elsewhere is not Together's price).
  if (settings.provider !== undefined && settings.provider !== 'together') return estimateImageCost(aiSdkPrice(settings.provider, settings.model), settings)
  return estimateImageCost(priceFor(settings.model, listed)?.price, settings, settings.steps)
}

/** Sum of estimates; `null` as soon as one is unknown. */
export function estimateTotal(settings: Iterable<Pick<ImageSettings, 'model' | 'width' | 'height' | 'steps'> & { provider?: string }>): number | null {
  let total = 0
  for (const s of settings) {
    const cost = estimateCost(s)
    if (cost === null) return null
    total += cost
  }
  return total
}

export function formatCost(cost: number | null): string {
  if (cost === null) return 'cost unknown'
  // Under a cent: two significant digits, trailing zeros dropped ($0.008, $0.000033): toFixed(4) said "$0.0000" for a paid run.
  if (cost > 0 && cost < 0.01) return `est. $${cost.toFixed(Math.min(20, 1 - Math.floor(Math.log10(cost)))).replace(/0+$/, '')}`
  return `est. $${cost.toFixed(cost < 10 ? 3 : 2)}`
}
