import { createRequire } from 'node:module'

/**
 * fastest-levenshtein, loaded the first time a name is mistyped: a build with valid options never needs it (2-5 ms of
 * import measured in a Vite process).
 */
let distanceFn: ((a: string, b: string) => number) | undefined
const distance = (a: string, b: string) => (distanceFn ??= (createRequire(import.meta.url)('fastest-levenshtein') as typeof import('fastest-levenshtein')).distance)(a, b)

/**
 * The closest of `names` to a mistyped `name`, or `undefined` when none is close: a different case first
 * (`apikey` → `apiKey`), else the smallest edit distance within a third of the name's length (at least 2).
 * fastest-levenshtein: the distance webpack-cli and stylelint use for the same message.
 */
export function closest(name: string, names: readonly string[]): string | undefined {
  const lower = name.toLowerCase()
  const sameCase = names.find(n => n.toLowerCase() === lower)
  if (sameCase) return sameCase
  let best: string | undefined
  let bestDistance = Math.max(2, Math.floor(name.length / 3)) + 1
  for (const n of names) {
    const d = distance(lower, n.toLowerCase())
    if (d < bestDistance) [best, bestDistance] = [n, d]
  }
  return best
}

/** ` (did you mean "apiKey"?)`, or nothing. */
export function didYouMean(name: string, names: readonly string[], quote = (n: string) => `"${n}"`): string {
  const match = closest(name, names)
  return match ? ` (did you mean ${quote(match)}?)` : ''
}
