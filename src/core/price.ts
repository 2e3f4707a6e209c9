import type { ImageSettings } from './types'

/**
 * USD per megapixel at the model's default steps: an estimate from Together's price model
 * (cost = megapixels × price per MP × steps / default steps). Prices change; keep them here and only here.
 */
const PRICES: Record<string, { perMegapixel: number; defaultSteps: number }> = {
  'black-forest-labs/FLUX.1-schnell': { perMegapixel: 0.0027, defaultSteps: 4 },
}

/** Estimated USD for one image, or `null` when the model's price is unknown. */
export function estimateCost(settings: Pick<ImageSettings, 'model' | 'width' | 'height' | 'steps'>): number | null {
  const price = PRICES[settings.model]
  if (!price) return null
  return ((settings.width * settings.height) / 1_000_000) * price.perMegapixel * (settings.steps / price.defaultSteps)
}

/** Sum of estimates; `null` as soon as one is unknown. */
export function estimateTotal(settings: Iterable<Pick<ImageSettings, 'model' | 'width' | 'height' | 'steps'>>): number | null {
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
