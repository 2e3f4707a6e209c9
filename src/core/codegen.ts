import type { AssetRecord, CacheHit, RunSummary } from './types'

export const VIRTUAL_ID = 'virtual:flux-assets'
export const FLUX_QUERY = /\?flux$/

/** The `?flux` module: the script with each asset value replaced by `{ id, prompt, url, width, height, placeholder }`. */
export function fluxModuleCode(data: unknown, records: AssetRecord[], urls: string[]): string {
  const tokens = records.map((_, i) => `__FLUX_URL_${i}_${Math.random().toString(36).slice(2)}__`)
  records.forEach((r, i) => setAt(data, r.pointer, { id: r.id, prompt: r.prompt, url: tokens[i], width: r.width, height: r.height, placeholder: r.placeholder }))
  // JSON is not quite JS: in an object literal `"__proto__": x` sets the prototype instead of a key. A computed key
  // defines an own property. Pretty-printed, a key is the only place `"__proto__":` can start a line.
  let code = JSON.stringify(data, null, 2).replace(/^(\s*)"__proto__":/gm, '$1["__proto__"]:')
  tokens.forEach((token, i) => (code = code.replace(JSON.stringify(token), () => urls[i]!)))
  return `export default ${code}\n`
}

/**
 * `virtual:flux-assets`: the manifest entries grouped by script, each with its `url`, its `model` and its `cost` (the
 * cache record's estimate, `null` when unknown or a placeholder); and, as `summary`, the build's counts (summarize()'s).
 */
export function virtualModuleCode(records: AssetRecord[], urls: string[], hits: ReadonlyMap<string, CacheHit> = new Map(), summary?: RunSummary): string {
  const byScript = new Map<string, string[]>()
  records.forEach((r, i) => {
    const cost = hits.get(r.key)?.record.cost
    const entry = `{ pointer: ${JSON.stringify(r.pointer)}, id: ${JSON.stringify(r.id)}, prompt: ${JSON.stringify(r.prompt)}, key: ${JSON.stringify(r.key)}, url: ${urls[i]}, width: ${r.width}, height: ${r.height}, placeholder: ${r.placeholder}, model: ${JSON.stringify(r.settings.model)}, cost: ${!r.placeholder && typeof cost === 'number' ? cost : null} }`
    byScript.set(r.script, [...(byScript.get(r.script) ?? []), entry])
  })
  const body = [...byScript].map(([script, entries]) => `  ${JSON.stringify(script)}: [\n    ${entries.join(',\n    ')}\n  ]`).join(',\n')
  return `const scripts = {\n${body}\n}\nexport default scripts\nexport const summary = ${JSON.stringify(summary ?? null)}\n`
}

function setAt(data: unknown, pointer: string, value: unknown): void {
  const parts = pointer.split('/').slice(1).map(p => p.replace(/~1/g, '/').replace(/~0/g, '~'))
  let node = data as Record<string, unknown>
  for (const part of parts.slice(0, -1)) node = node[part] as Record<string, unknown>
  // defineProperty: an asset id such as "__proto__" is an own key like any other.
  Object.defineProperty(node, parts.at(-1)!, { value, enumerable: true, writable: true, configurable: true })
}
