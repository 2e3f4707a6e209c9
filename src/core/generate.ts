import pLimit from 'p-limit'
import { ImageCache } from './cache'
import { ApiError, BudgetError, describe, FluxError, StrictError } from './errors'
import { resolveOptions } from './options'
import { estimateTotal, formatCost } from './price'
import { abortError, withRetry } from './retry'
import { scanScripts } from './scan'
import type { ImageProvider } from './together'
import type { AssetRecord, AssetRequest, CacheHit, FluxAssetsOptions, GenerateResult, Progress, ResolvedOptions } from './types'

/** What the engine's generate() gives its callers (the plugin, the CLI): the result, and the cache entries behind it. */
export interface EngineResult extends GenerateResult {
  /** The verified cache entry of every key that has an image, so a caller can read it without checking it again. */
  hits: ReadonlyMap<string, CacheHit>
}

/** How one unique image (cache key) ended up in this run. */
interface Outcome {
  hit?: CacheHit
  generated?: boolean
  /** Why there is no image: the placeholder's reason. */
  reason?: string
  /** Generation was attempted (or would have been) and failed, as opposed to offline / no key. */
  failed?: boolean
  /** Answers that billed an image for this key (a lost download or a broken image is paid again). */
  paid?: number
}

export interface Engine {
  readonly options: ResolvedOptions
  readonly cache: ImageCache
  /** Finds and validates every script. Throws ScriptError listing every problem. */
  scan(): ReturnType<typeof scanScripts>
  /** Makes sure every request has an image: from the cache, generated, or a placeholder. */
  generate(requests: AssetRequest[], signal?: AbortSignal): Promise<EngineResult>
  /** Closes connections. */
  close(): Promise<void>
}

/** All the behaviour, with no bundler: the plugin and the CLI are thin layers over this. */
export function createEngine(options: ResolvedOptions, inject: { provider?: ImageProvider } = {}): Engine {
  const cache = new ImageCache(options.cacheDir)
  let provider = inject.provider
  let cleaned = false
  const secret = options.apiKey

  async function generate(requests: AssetRequest[], signal = options.signal): Promise<EngineResult> {
    const started = performance.now()
    if (!cleaned) {
      cleaned = true
      await cache.cleanTemp()
    }
    const unique = new Map<string, AssetRequest>()
    for (const request of requests) if (!unique.has(request.key)) unique.set(request.key, request)

    const outcomes = new Map<string, Outcome>()
    const hits = await Promise.all([...unique.keys()].map(key => cache.get(key)))
    ;[...unique.keys()].forEach((key, i) => hits[i] && outcomes.set(key, { hit: hits[i] }))
    const missing = [...unique.values()].filter(r => !outcomes.has(r.key))

    const progress: Progress = { total: unique.size, done: outcomes.size, cached: outcomes.size, generating: 0, generated: 0, failed: 0 }
    const report = () => options.onProgress?.({ ...progress })
    report()

    const noCall = options.offline ? 'offline: no API call made' : !secret && !inject.provider ? 'no API key (set TOGETHER_API_KEY)' : undefined
    if (noCall) {
      for (const r of missing) outcomes.set(r.key, { reason: noCall })
      if (missing.length) options.logger.warn(`${missing.length} image${missing.length === 1 ? ' is' : 's are'} not cached and ${options.offline ? 'offline mode is on' : 'no API key is set (TOGETHER_API_KEY)'}: using placeholders`)
    } else if (missing.length) {
      if (missing.length > options.maxNewImages) {
        throw new BudgetError(
          `${missing.length} new images would be generated (${formatCost(estimateTotal(missing.map(r => r.settings)))}), more than maxNewImages (${options.maxNewImages}): nothing was generated. Raise maxNewImages (CLI: --max-new-images) to go ahead.`,
        )
      }
      // Loaded on first use: undici takes ~100 ms to import, a tenth of a warm build that never calls the API.
      const { createTogetherProvider } = await import('./together')
      provider ??= createTogetherProvider(options)
      await generateMissing(provider, missing, outcomes, progress, report, signal)
    }

    const assets: AssetRecord[] = requests.map(r => {
      const outcome = outcomes.get(r.key)!
      return {
        ...r,
        file: outcome.hit?.file ?? null,
        width: r.settings.width,
        height: r.settings.height,
        placeholder: !outcome.hit,
        ...(outcome.reason ? { error: outcome.reason } : {}),
      }
    })
    for (const a of assets) if (outcomes.get(a.key)!.failed) options.logger.warn(`${a.script}: ${a.id}: ${a.error}`)

    const all = [...outcomes.values()]
    const generated = [...unique.values()].filter(r => outcomes.get(r.key)!.generated)
    // What was paid: every billed answer, and at least one per image generated (a provider may not report bills).
    const paid = [...unique.values()].flatMap(r => {
      const o = outcomes.get(r.key)!
      return Array<AssetRequest['settings']>(Math.max(o.paid ?? 0, o.generated ? 1 : 0)).fill(r.settings)
    })
    const summary = {
      assets: requests.length,
      unique: unique.size,
      generated: generated.length,
      paid: paid.length,
      cached: all.filter(o => o.hit && !o.generated).length,
      placeholders: all.filter(o => !o.hit).length,
      failed: all.filter(o => o.failed).length,
      durationMs: Math.round(performance.now() - started),
      estimatedCost: estimateTotal(paid),
    }
    if (options.strict && summary.placeholders) {
      const lines = assets.filter(a => a.placeholder).map(a => `  ${a.script} ${a.pointer}: ${a.error}`)
      throw new StrictError(`strict: ${summary.placeholders} image${summary.placeholders === 1 ? '' : 's'} could not be had:\n${lines.join('\n')}`)
    }
    const verified = new Map<string, CacheHit>()
    for (const [key, outcome] of outcomes) if (outcome.hit) verified.set(key, outcome.hit)
    return { assets, summary, hits: verified }
  }

  async function generateMissing(
    provider: ImageProvider,
    missing: AssetRequest[],
    outcomes: Map<string, Outcome>,
    progress: Progress,
    report: () => void,
    signal: AbortSignal | undefined,
  ): Promise<void> {
    const limit = pLimit(options.concurrency)
    /** Set by an answer that every further call would get too (401, 402): nothing more is sent. */
    let stop: string | undefined
    /** Aborted on stop: cuts retry waits short. Requests in flight are left alone (they may be paid for). */
    const stopped = new AbortController()
    const retrySignal = signal ? AbortSignal.any([signal, stopped.signal]) : stopped.signal
    /** Models the API said it does not serve: no more calls for them. */
    const deadModels = new Map<string, string>()
    /** Billed answers per key. */
    const paid = new Map<string, number>()

    /** `answered` gives the request slot back: called once the image is in hand, before it is written. */
    const one = async (r: AssetRequest, answered: () => void): Promise<Outcome> => {
      const skip = stop ?? deadModels.get(r.settings.model)
      if (skip) return { reason: `not attempted: ${skip}`, failed: true }
      return cache.withLock(
        r.key,
        async () => {
          progress.generating++
          report()
          try {
            // Checked before every attempt: a retry must not be sent after a stop (402 from another request).
            const send = () => {
              const skip = stop ?? deadModels.get(r.settings.model)
              if (skip) throw new FluxError('FLUX_STOPPED', `stopped: ${skip}`)
              return provider.generate(r.prompt, r.settings, signal, () => paid.set(r.key, (paid.get(r.key) ?? 0) + 1))
            }
            const image = await withRetry(send, {
              retries: options.retries,
              maxRetryDelay: options.maxRetryDelay,
              signal: retrySignal,
              onRetry: (error, attempt, delay) => options.logger.info(`${r.script}: ${r.id}: ${describe(error, secret)}; retry ${attempt} in ${delay} ms`),
            })
            answered()
            const hit = await cache.put(r.key, image.bytes, { prompt: r.prompt, settings: r.settings, responseId: image.responseId })
            return { hit, generated: true }
          } finally {
            progress.generating--
          }
        },
        { signal, onHit: hit => ({ hit }) },
      )
    }

    /** A failed image: its reason, and whether every further call must stop. Rethrows an abort. */
    const failure = (r: AssetRequest, error: unknown): Outcome => {
      if (signal?.aborted) throw error
      const reason = describe(error, secret)
      if (error instanceof ApiError && (error.code === 'FLUX_CREDITS' || error.code === 'FLUX_AUTH') && !stop) {
        stop = reason
        stopped.abort(new FluxError('FLUX_STOPPED', `stopped: ${reason}`))
      }
      if (error instanceof ApiError && error.code === 'FLUX_MODEL') deadModels.set(r.settings.model, reason)
      if (!(error instanceof FluxError)) options.logger.error(`${r.script}: ${r.id}: unexpected ${(error as Error)?.name ?? 'error'}: ${reason}`)
      return { reason, failed: true }
    }

    const tasks = missing.map(async r => {
      // A slot of `concurrency` is a request in flight, not a write: it is free again once the answer is in, so the
      // cache write (two fsyncs) overlaps the next request instead of delaying it (bench scenario 1). A failure is
      // classified before its slot is freed, so the next request already sees a stop (401, 402).
      let finished!: Promise<Outcome>
      await limit(() => new Promise<void>(answered => {
        finished = one(r, answered).catch(error => failure(r, error))
        finished.then(() => answered(), () => answered())
      }))
      const outcome = await finished
      if (paid.has(r.key)) outcome.paid = paid.get(r.key)
      outcomes.set(r.key, outcome)
      progress.done++
      if (outcome.generated) progress.generated++
      else if (outcome.hit) progress.cached++
      else progress.failed++
      report()
    })
    // Wait for every task, even after an abort, so no write is left half done when we return.
    const settled = await Promise.allSettled(tasks)
    if (signal?.aborted) throw abortError(signal)
    const rejected = settled.find(s => s.status === 'rejected')
    if (rejected) throw (rejected as PromiseRejectedResult).reason
  }

  return {
    options,
    cache,
    scan: () => scanScripts(options),
    generate,
    close: async () => {
      await provider?.close()
      provider = inject.provider
    },
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
