import { resolveOptions } from './options'
import { plan } from './plan'
import { checkStrict, decide } from './policy'
import { scanScripts } from './scan'
import { schedule } from './schedule'
import { FileStore } from './store'
import { hitOf, type ImageResult, progressOf, summarize } from './summary'
import type { ImageProvider } from './together'
import type { AssetRecord, AssetRequest, CacheHit, FluxAssetsOptions, GenerateResult, ResolvedOptions } from './types'

/** What the engine's generate() gives its callers (the plugin, the CLI): the result, and the cache entries behind it. */
export interface EngineResult extends GenerateResult {
  /** The verified cache entry of every key that has an image, so a caller can read it without checking it again. */
  hits: ReadonlyMap<string, CacheHit>
}

export interface Engine {
  readonly options: ResolvedOptions
  readonly store: FileStore
  /** Finds and validates every script. Throws ScriptError listing every problem. */
  scan(): ReturnType<typeof scanScripts>
  /** Makes sure every request has an image: from the cache, generated, or a placeholder. */
  generate(requests: AssetRequest[], signal?: AbortSignal): Promise<EngineResult>
  /** Closes connections. */
  close(): Promise<void>
}

/**
 * The stages in order, with no bundler: scan → plan → policy → schedule (→ store), and the records the emitters
 * ship. The plugin and the CLI are thin layers over this.
 */
export function createEngine(options: ResolvedOptions, inject: { provider?: ImageProvider } = {}): Engine {
  const store = new FileStore(options.cacheDir)
  let provider = inject.provider
  let recovered = false

  async function generate(requests: AssetRequest[], signal = options.signal): Promise<EngineResult> {
    const started = performance.now()
    if (!recovered) {
      // Once per engine: what a killed run left behind (half-written temp files, locks nobody will release).
      recovered = true
      await store.removeOrphanTemp()
      await store.locks.sweep()
    }
    const work = await plan(requests, store)
    const results = new Map<string, ImageResult>()
    for (const [key, hit] of work.cached) results.set(key, { kind: 'cached', hit })
    let generating = 0
    const report = () => options.onProgress?.(progressOf(results, work.unique.size, generating))
    report()

    const decision = decide(work.missing, options, !!options.apiKey || !!inject.provider)
    if ('placeholders' in decision) {
      for (const r of work.missing) results.set(r.key, { kind: 'placeholder', reason: decision.placeholders })
      if (decision.warning) options.logger.warn(decision.warning)
      if (work.missing.length) report()
    } else if (decision.generate.length) {
      // Loaded on first use: undici takes ~100 ms to import, a tenth of a warm build that never calls the API.
      const { createTogetherProvider } = await import('./together')
      provider ??= createTogetherProvider(options)
      await schedule({
        requests: decision.generate,
        provider,
        store,
        lock: store.locks,
        options,
        signal,
        onGenerating: delta => ((generating += delta), report()),
        onResult: (key, result) => (results.set(key, result), report()),
      })
    }

    const assets: AssetRecord[] = requests.map(r => toRecord(r, results.get(r.key)!))
    for (const a of assets) if (results.get(a.key)!.kind === 'failed') options.logger.warn(`${a.script}: ${a.id}: ${a.error}`)
    const summary = summarize(results, requests.length, performance.now() - started)
    checkStrict(assets, options.strict)
    const hits = new Map<string, CacheHit>()
    for (const [key, result] of results) if (hitOf(result)) hits.set(key, hitOf(result)!)
    return { assets, summary, hits }
  }

  return {
    options,
    store,
    scan: () => scanScripts(options),
    generate,
    close: async () => {
      await provider?.close()
      provider = inject.provider
    },
  }
}

/** One asset occurrence as callers see it: where it is, and its image file or why it has none. */
function toRecord(r: AssetRequest, result: ImageResult): AssetRecord {
  const hit = hitOf(result)
  return {
    ...r,
    file: hit?.file ?? null,
    width: r.settings.width,
    height: r.settings.height,
    placeholder: !hit,
    ...(hit ? {} : { error: (result as { reason: string }).reason }),
  }
}

/** Discover every script under `root`, make sure each asset has an image, and tell what happened. */
export async function generateAssets(user: FluxAssetsOptions = {}): Promise<GenerateResult> {
  const engine = createEngine(resolveOptions(user))
  try {
    const { requests } = await engine.scan()
    const { assets, summary } = await engine.generate(requests)
    return { assets, summary }
  } finally {
    await engine.close()
  }
}
