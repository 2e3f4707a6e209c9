import pLimit from 'p-limit'
import { type ApiError, describe, FluxError } from './errors'
import type { KeyLock } from './lock'
import { isNoKey, noKeyResult, reach } from './policy'
import { abortError, withRetry } from './retry'
import type { Store } from './store'
import { costOf, type ImageResult } from './summary'
import type { ImageProvider } from './providers/contract'
import type { AssetRequest, ResolvedOptions } from './types'

export interface ScheduleInput {
  requests: AssetRequest[]
  provider: ImageProvider
  store: Store
  lock: KeyLock
  options: Pick<ResolvedOptions, 'concurrency' | 'retries' | 'maxRetryDelay' | 'logger' | 'apiKey'>
  signal: AbortSignal | undefined
  /** Told when an image starts generating (`+1`) and stops (`-1`), and of each result as it comes. */
  onGenerating?(delta: 1 | -1): void
  onResult?(key: string, result: ImageResult): void
}

/**
 * Generates the requests: `concurrency` requests in flight, each under its key's lock, retried by the retry rules,
 * with a circuit breaker (policy's `reach`): an answer every further call would get too stops all calls, a model
 * that is not served stops the calls for it. Waits for every task, even after an abort, so no write is left half done.
 */
export async function schedule(input: ScheduleInput): Promise<Map<string, ImageResult>> {
  const { provider, store, lock, options, signal } = input
  const secret = options.apiKey
  const results = new Map<string, ImageResult>()
  const limit = pLimit(options.concurrency)
  /** Set by an answer that every further call would get too (401, 402, 403): nothing more is sent. */
  let stop: string | undefined
  let stopCode: string | undefined
  /** Aborted on stop: cuts retry waits short. Requests in flight are left alone (they may be paid for). */
  const stopped = new AbortController()
  const retrySignal = signal ? AbortSignal.any([signal, stopped.signal]) : stopped.signal
  /** Models the API said it does not serve: no more calls for them. */
  const deadModels = new Map<string, string>()
  /** Billed answers per key. */
  const paid = new Map<string, number>()
  const skipReason = (r: AssetRequest) => stop ?? deadModels.get(r.settings.model)

  /** `answered` gives the request slot back: called once the image is in hand, before it is written. */
  const one = async (r: AssetRequest, answered: () => void): Promise<ImageResult> => {
    if (skipReason(r)) {
      if (stop && isNoKey(stopCode)) return noKeyResult(stop)
      return { kind: 'failed', reason: `not attempted: ${skipReason(r)}`, paid: 0, cost: 0, code: stop ? stopCode : 'FLUX_MODEL' }
    }
    const held = await lock.acquire(r.key, () => store.get(r.key), signal)
    if ('ready' in held) return { kind: 'cached', hit: held.ready }
    try {
      // Someone may have finished the entry between our miss and our lock.
      const done = await store.get(r.key)
      if (done) return { kind: 'cached', hit: done }
      input.onGenerating?.(1)
      try {
        // Checked before every attempt: a retry must not be sent after a stop (402 from another request).
        const send = () => {
          const skip = skipReason(r)
          if (skip) throw new FluxError('FLUX_STOPPED', `stopped: ${skip}`)
          return provider.generate(r.prompt, r.settings, signal, () => paid.set(r.key, (paid.get(r.key) ?? 0) + 1))
        }
        const image = await withRetry(send, {
          retries: options.retries,
          maxRetryDelay: options.maxRetryDelay,
          signal: retrySignal,
          // Detail, not news: a retry that works is nobody's business (DEBUG=flux-assets or --verbose shows them).
          onRetry: (error, attempt, delay) => (options.logger.debug ?? options.logger.info).call(options.logger, `${r.script}: ${r.id}: ${describe(error, secret)}; retry ${attempt} in ${delay} ms`),
        })
        answered()
        const billed = Math.max(1, paid.get(r.key) ?? 0)
        const cost = costOf(r, billed)
        const hit = await store.put(r.key, image.bytes, { prompt: r.prompt, settings: r.settings, responseId: image.responseId, cost })
        return { kind: 'generated', hit, paid: billed, cost }
      } finally {
        input.onGenerating?.(-1)
      }
    } finally {
      await held.release()
    }
  }

  /** A failed image: its reason; trips the breaker when every further call must stop. Rethrows an abort. */
  const failure = (r: AssetRequest, error: unknown): ImageResult => {
    if (signal?.aborted) throw error
    const reason = describe(error, secret)
    const scope = reach(error)
    if (scope === 'all' && !stop) {
      stop = reason
      stopCode = (error as ApiError).code
      stopped.abort(new FluxError('FLUX_STOPPED', `stopped: ${reason}`))
    }
    if (scope === 'model') deadModels.set(r.settings.model, reason)
    if (!(error instanceof FluxError)) options.logger.error(`${r.script}: ${r.id}: unexpected ${(error as Error)?.name ?? 'error'}: ${reason}`)
    const billed = paid.get(r.key) ?? 0
    const code = error instanceof FluxError ? (error.code === 'FLUX_STOPPED' ? stopCode : error.code) : undefined
    // No key: nothing was sent; a placeholder as with no key set at all, said once by the engine.
    if (isNoKey(code) && billed === 0) return noKeyResult(isNoKey((error as FluxError).code) ? reason : stop!)
    return { kind: 'failed', reason, paid: billed, cost: costOf(r, billed), ...(code ? { code } : {}) }
  }

  const tasks = input.requests.map(async r => {
    // A slot of `concurrency` is a request in flight, not a write: it is free again once the answer is in, so the
    // cache write (two fsyncs) overlaps the next request instead of delaying it (bench scenario 1). A failure is
    // classified before its slot is freed, so the next request already sees a stop (401, 402).
    let finished!: Promise<ImageResult>
    await limit(
      () =>
        new Promise<void>(answered => {
          finished = one(r, answered).catch(error => failure(r, error))
          finished.then(
            () => answered(),
            () => answered(),
          )
        }),
    )
    const result = await finished
    results.set(r.key, result)
    input.onResult?.(r.key, result)
  })
  const settled = await Promise.allSettled(tasks)
  if (signal?.aborted) throw abortError(signal)
  const rejected = settled.find(s => s.status === 'rejected')
  if (rejected) throw (rejected as PromiseRejectedResult).reason
  if (stopCode === 'FLUX_DISK') tellLost()
  return results

  /** After a disk stop, every image it hit says how many paid images could not be stored, for one clear failure. */
  function tellLost(): void {
    const disk = [...results].filter(([, r]) => r.kind === 'failed' && r.code === 'FLUX_DISK')
    const lost = disk.reduce((n, [, r]) => n + (r.kind === 'failed' && r.paid > 0 ? 1 : 0), 0)
    const reason = `${stop}: generation stopped; ${lost} paid image${lost === 1 ? '' : 's'} could not be stored. Free space on the disk (or make the cache folder writable), then run again`
    for (const [key, r] of disk) {
      const told = { ...r, reason } as ImageResult
      results.set(key, told)
      input.onResult?.(key, told)
    }
  }
}
