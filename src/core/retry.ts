import { setTimeout as wait } from 'node:timers/promises'
import { ApiError, FluxError, ImageError } from './errors'

export interface RetryOptions {
  /** Retries after the first attempt. */
  retries: number
  /** Longest wait a server may ask for; past it, fail with the server's message. */
  maxRetryDelay: number
  /** First backoff ceiling in ms. */
  baseDelay?: number
  /** Backoff ceiling in ms. */
  capDelay?: number
  /** Shortest wait before any retry, whatever the server asked (`retry-after: 0` must not become a busy loop). */
  minDelay?: number
  /** Most paced waits (429s saying when to come back) per call, on top of `retries`. */
  maxPaced?: number
  signal?: AbortSignal
  random?: () => number
  /** Told before each wait, e.g. to log or count. */
  onRetry?: (error: ApiError | ImageError, attempt: number, delayMs: number) => void
}

/** Full jitter: a random delay in [0, min(cap, base·2^attempt)]. `attempt` counts from 0. */
export function calculateDelay(attempt: number, base = 500, cap = 20_000, random = Math.random): number {
  return Math.floor(random() * Math.min(cap, base * 2 ** attempt))
}

/**
 * How long the server asked us to wait, in ms, from `retry-after-ms`, `retry-after` (seconds or an HTTP date)
 * or `x-ratelimit-reset` (seconds from now, or a Unix time in seconds). `undefined` when it did not say.
 */
export function parseRetryAfter(headers: Record<string, string | string[] | undefined>, now = Date.now()): number | undefined {
  const header = (name: string) => {
    const value = headers[name]
    return (Array.isArray(value) ? value[0] : value)?.trim() || undefined
  }
  const ms = Number(header('retry-after-ms'))
  if (header('retry-after-ms') && Number.isFinite(ms) && ms >= 0) return Math.ceil(ms)

  const after = header('retry-after')
  if (after) {
    if (/^\d+(\.\d+)?$/.test(after)) return Math.ceil(Number(after) * 1000)
    const date = Date.parse(after)
    // Only something shaped like an HTTP date: Date.parse also reads '-3' as a year.
    if (!Number.isNaN(date) && /[a-z]/i.test(after)) return Math.max(0, date - now)
  }

  const reset = header('x-ratelimit-reset')
  if (reset && /^\d+(\.\d+)?$/.test(reset)) {
    const seconds = Number(reset)
    // Unix timestamps are large; small numbers are "seconds from now".
    return Math.max(0, Math.ceil(seconds > 1e9 ? seconds * 1000 - now : seconds * 1000))
  }
  return undefined
}

/** Resolves after `ms`, or rejects with the signal's reason as soon as it aborts. */
export async function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) throw abortError(signal)
  // node:timers/promises rejects with its own AbortError: callers get the signal's reason, as everywhere else.
  await wait(ms, undefined, { signal }).catch(error => {
    throw signal?.aborted ? abortError(signal) : error
  })
}

export function abortError(signal: AbortSignal): Error {
  const reason = signal.reason
  return reason instanceof Error ? reason : new FluxError('FLUX_ABORTED', 'aborted')
}

/** Default shortest wait before a retry, in ms. */
export const MIN_RETRY_DELAY = 250
/** Default most paced waits per image: with `retries`, every image has a bounded number of attempts. */
export const MAX_PACED = 30

/**
 * Runs `fn` until it succeeds, throws something not retryable, or runs out of retries (rate-limit waits aside, which
 * are bounded too: at most `maxPaced`, each counted as at least `minDelay` against `maxRetryDelay`).
 */
export async function withRetry<T>(fn: (attempt: number) => Promise<T>, options: RetryOptions): Promise<T> {
  const { retries, maxRetryDelay, baseDelay = 500, capDelay = 20_000, minDelay = MIN_RETRY_DELAY, maxPaced = MAX_PACED, signal, random = Math.random } = options
  let pacedWaits = 0
  /** Failed attempts that used up `retries`. */
  let failures = 0
  /** Time spent waiting as rate limits (429 with a wait) asked. */
  let pacedMs = 0
  for (let attempt = 0; ; attempt++) {
    if (signal?.aborted) throw abortError(signal)
    try {
      return await fn(attempt)
    } catch (error) {
      if (signal?.aborted) throw abortError(signal)
      // A 429 that says when to come back is the service pacing a batch, not a failure: it does not use up `retries`
      // (with several requests in flight against a rate limit, each is turned away many times: 4 retries failed 1 image
      // in 10 at 6 requests/s, see bench/README.md), as long as such waits add up to at most maxRetryDelay.
      // A wait asked for is never shorter than minDelay: `retry-after: 0` (or a date in the past) paced nothing.
      const asked = error instanceof ApiError && error.retryAfterMs !== undefined ? Math.max(minDelay, error.retryAfterMs) : undefined
      const paced = error instanceof ApiError && error.code === 'FLUX_RATE_LIMIT' && asked !== undefined && pacedWaits < maxPaced && pacedMs + asked <= maxRetryDelay
      // A broken image answer (truncated, not an image) is as transient as a 5xx; an oversized one is not retryable.
      if (!(error instanceof ApiError || error instanceof ImageError) || !error.retryable || (!paced && failures >= retries)) throw error
      if (paced) {
        pacedMs += asked
        pacedWaits++
      } else failures++
      if (error instanceof ApiError && error.retryAfterMs !== undefined && error.retryAfterMs > maxRetryDelay) {
        throw new ApiError(error.code, `${error.message} (the server asked to wait ${Math.ceil(error.retryAfterMs / 1000)} s, more than maxRetryDelay ${Math.ceil(maxRetryDelay / 1000)} s)`, error.status, false)
      }
      const delay = asked ?? Math.max(minDelay, calculateDelay(attempt, baseDelay, capDelay, random))
      options.onRetry?.(error, attempt + 1, delay)
      await sleep(delay, signal)
    }
  }
}
