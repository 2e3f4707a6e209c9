import { describe, expect, it } from 'vitest'
import { ApiError, FluxError, ImageError } from '../src/core/errors'
import { calculateDelay, parseRetryAfter, sleep, withRetry } from '../src/core/retry'

describe('calculateDelay (full jitter)', () => {
  it('is 0 when random() is 0, whatever the attempt', () => {
    for (const attempt of [0, 1, 5, 30]) expect(calculateDelay(attempt, 500, 20_000, () => 0)).toBe(0)
  })

  it('is just under min(cap, base·2^attempt) when random() is 0.999', () => {
    for (const attempt of [0, 1, 2, 3, 5, 6, 10, 40]) {
      const ceiling = Math.min(20_000, 500 * 2 ** attempt)
      const delay = calculateDelay(attempt, 500, 20_000, () => 0.999)
      expect(delay).toBeLessThan(ceiling)
      expect(delay).toBeGreaterThanOrEqual(Math.floor(ceiling * 0.999))
    }
  })

  it('stays within [0, ceiling] for random values, and is an integer', () => {
    let seed = 7
    const random = () => ((seed = (seed * 16807) % 2147483647) - 1) / 2147483646
    for (let attempt = 0; attempt < 12; attempt++) {
      for (let i = 0; i < 50; i++) {
        const delay = calculateDelay(attempt, 100, 3_000, random)
        expect(Number.isInteger(delay)).toBe(true)
        expect(delay).toBeGreaterThanOrEqual(0)
        expect(delay).toBeLessThanOrEqual(Math.min(3_000, 100 * 2 ** attempt))
      }
    }
  })

  it('uses the defaults base 500 and cap 20 s', () => {
    expect(calculateDelay(0, undefined, undefined, () => 0.5)).toBe(250)
    expect(calculateDelay(20, undefined, undefined, () => 0.5)).toBe(10_000)
  })
})

describe('parseRetryAfter', () => {
  const now = Date.parse('2026-05-01T12:00:00Z')

  it('reads retry-after-ms first', () => {
    expect(parseRetryAfter({ 'retry-after-ms': '1500', 'retry-after': '9' }, now)).toBe(1500)
    expect(parseRetryAfter({ 'retry-after-ms': '12.2' }, now)).toBe(13)
    expect(parseRetryAfter({ 'retry-after-ms': '0' }, now)).toBe(0)
  })

  it('reads retry-after in seconds', () => {
    expect(parseRetryAfter({ 'retry-after': '3' }, now)).toBe(3000)
    expect(parseRetryAfter({ 'retry-after': ' 0.5 ' }, now)).toBe(500)
    expect(parseRetryAfter({ 'retry-after': ['2', '9'] }, now)).toBe(2000)
  })

  it('reads retry-after as an HTTP date, never negative', () => {
    expect(parseRetryAfter({ 'retry-after': new Date(now + 7000).toUTCString() }, now)).toBe(7000)
    expect(parseRetryAfter({ 'retry-after': new Date(now - 7000).toUTCString() }, now)).toBe(0)
  })

  it('reads x-ratelimit-reset as seconds from now or as a Unix time', () => {
    expect(parseRetryAfter({ 'x-ratelimit-reset': '4' }, now)).toBe(4000)
    expect(parseRetryAfter({ 'x-ratelimit-reset': String(now / 1000 + 12) }, now)).toBe(12_000)
    expect(parseRetryAfter({ 'x-ratelimit-reset': String(now / 1000 - 12) }, now)).toBe(0)
  })

  it('is undefined when nothing usable was said', () => {
    expect(parseRetryAfter({}, now)).toBeUndefined()
    expect(parseRetryAfter({ 'retry-after': 'soon' }, now)).toBeUndefined()
    expect(parseRetryAfter({ 'retry-after': '-3' }, now)).toBeUndefined()
    expect(parseRetryAfter({ 'retry-after-ms': 'abc' }, now)).toBeUndefined()
    expect(parseRetryAfter({ 'retry-after-ms': '-1' }, now)).toBeUndefined()
    expect(parseRetryAfter({ 'retry-after-ms': '' }, now)).toBeUndefined()
    expect(parseRetryAfter({ 'x-ratelimit-reset': 'tomorrow' }, now)).toBeUndefined()
    expect(parseRetryAfter({ 'x-ratelimit-remaining': '0' }, now)).toBeUndefined()
  })

  it('falls through garbage to the next header', () => {
    expect(parseRetryAfter({ 'retry-after-ms': 'x', 'retry-after': '2' }, now)).toBe(2000)
    expect(parseRetryAfter({ 'retry-after': 'soon', 'x-ratelimit-reset': '3' }, now)).toBe(3000)
  })
})

describe('sleep', () => {
  it('resolves after the time', async () => {
    await expect(sleep(5)).resolves.toBeUndefined()
  })

  it('rejects at once with the reason when the signal aborts', async () => {
    const controller = new AbortController()
    const reason = new FluxError('FLUX_ABORTED', 'stop now')
    const pending = sleep(60_000, controller.signal)
    controller.abort(reason)
    await expect(pending).rejects.toBe(reason)
  })

  it('rejects when the signal is already aborted', async () => {
    await expect(sleep(60_000, AbortSignal.abort(new Error('gone')))).rejects.toThrow('gone')
  })

  it('turns a non-Error reason into a FluxError FLUX_ABORTED', async () => {
    await expect(sleep(60_000, AbortSignal.abort('nope'))).rejects.toMatchObject({ code: 'FLUX_ABORTED' })
  })
})

describe('withRetry', () => {
  const retryable = (status = 503, retryAfterMs?: number) => new ApiError('FLUX_SERVER', `the API answered ${status}`, status, true, retryAfterMs)
  const fast = { retries: 4, maxRetryDelay: 60_000, random: () => 0, minDelay: 0 }

  /** fn failing with the given errors in turn, then answering 'ok'. */
  function failing(...errors: Error[]) {
    const attempts: number[] = []
    const fn = async (attempt: number) => {
      attempts.push(attempt)
      const error = errors.shift()
      if (error) throw error
      return 'ok'
    }
    return { fn, attempts }
  }

  it('returns the first success without retrying', async () => {
    const { fn, attempts } = failing()
    await expect(withRetry(fn, fast)).resolves.toBe('ok')
    expect(attempts).toEqual([0])
  })

  it('retries a retryable ApiError until it succeeds, telling onRetry each time', async () => {
    const { fn, attempts } = failing(retryable(500), retryable(503), retryable(429))
    const told: Array<[string, number, number]> = []
    await expect(withRetry(fn, { ...fast, onRetry: (e, attempt, delay) => told.push([e.message, attempt, delay]) })).resolves.toBe('ok')
    expect(attempts).toEqual([0, 1, 2, 3])
    expect(told).toEqual([
      ['the API answered 500', 1, 0],
      ['the API answered 503', 2, 0],
      ['the API answered 429', 3, 0],
    ])
  })

  it('stops at once on a non-retryable ApiError', async () => {
    const error = new ApiError('FLUX_AUTH', 'API key rejected (401)', 401, false)
    const { fn, attempts } = failing(error)
    await expect(withRetry(fn, fast)).rejects.toBe(error)
    expect(attempts).toEqual([0])
  })

  it('does not retry errors that are not FluxErrors', async () => {
    const error = new TypeError('bug')
    const { fn, attempts } = failing(error)
    await expect(withRetry(fn, fast)).rejects.toBe(error)
    expect(attempts).toEqual([0])
  })

  it('retries a retryable ImageError (a broken image answer), but not an oversized one', async () => {
    const broken = failing(new ImageError('truncated PNG image (10 bytes)'))
    await expect(withRetry(broken.fn, fast)).resolves.toBe('ok')
    expect(broken.attempts).toEqual([0, 1])
    const tooLarge = new ImageError('the image is larger than the size cap', false)
    const large = failing(tooLarge)
    await expect(withRetry(large.fn, fast)).rejects.toBe(tooLarge)
    expect(large.attempts).toEqual([0])
  })

  it('honours retryAfterMs instead of the backoff', async () => {
    const { fn } = failing(retryable(429, 7), retryable(429, 3))
    const delays: number[] = []
    await withRetry(fn, { ...fast, random: () => 0.999, baseDelay: 50_000, capDelay: 50_000, onRetry: (_e, _a, d) => delays.push(d) })
    expect(delays).toEqual([7, 3])
  })

  it('uses full-jitter backoff when the server says nothing', async () => {
    const { fn } = failing(retryable(), retryable(), retryable())
    const delays: number[] = []
    await withRetry(fn, { ...fast, random: () => 0.5, baseDelay: 4, capDelay: 10, onRetry: (_e, _a, d) => delays.push(d) })
    expect(delays).toEqual([2, 4, 5])
  })

  it('fails with the server message when retry-after exceeds maxRetryDelay', async () => {
    const { fn, attempts } = failing(new ApiError('FLUX_RATE_LIMIT', 'the API answered 429: slow down', 429, true, 120_000))
    const error = await withRetry(fn, { ...fast, maxRetryDelay: 60_000 }).catch(e => e)
    expect(error).toBeInstanceOf(ApiError)
    expect(error.code).toBe('FLUX_RATE_LIMIT')
    expect(error.status).toBe(429)
    expect(error.retryable).toBe(false)
    expect(error.message).toContain('the API answered 429: slow down')
    expect(error.message).toContain('120 s')
    expect(error.message).toContain('maxRetryDelay')
    expect(attempts).toEqual([0])
  })

  it('respects `retries`: 1 + retries attempts, then the last error', async () => {
    for (const retries of [0, 1, 3]) {
      const errors = Array.from({ length: 10 }, (_, i) => retryable(500 + i))
      const { fn, attempts } = failing(...errors)
      const error = await withRetry(fn, { ...fast, retries }).catch(e => e)
      expect(attempts).toHaveLength(retries + 1)
      expect(error.message).toBe(`the API answered ${500 + retries}`)
    }
  })

  it('does not count a 429 that says when to come back against `retries`', async () => {
    const paced = () => new ApiError('FLUX_RATE_LIMIT', 'the API answered 429', 429, true, 1)
    const { fn, attempts } = failing(paced(), paced(), paced(), paced(), paced(), retryable(500), paced(), retryable(503))
    await expect(withRetry(fn, { ...fast, retries: 2 })).resolves.toBe('ok')
    expect(attempts).toHaveLength(9)
    // A 429 with no wait named is an ordinary failure.
    const bare = failing(...Array.from({ length: 5 }, () => new ApiError('FLUX_RATE_LIMIT', 'the API answered 429', 429, true)))
    await expect(withRetry(bare.fn, { ...fast, retries: 2 })).rejects.toThrow('429')
    expect(bare.attempts).toHaveLength(3)
  })

  it('caps the waits of paced 429s at maxRetryDelay in all, then counts them as failures', async () => {
    const paced = () => new ApiError('FLUX_RATE_LIMIT', 'the API answered 429', 429, true, 4)
    const { fn, attempts } = failing(...Array.from({ length: 20 }, paced))
    const delays: number[] = []
    const error = await withRetry(fn, { ...fast, retries: 1, maxRetryDelay: 10, onRetry: (_e, _a, d) => delays.push(d) }).catch(e => e)
    expect(error.message).toBe('the API answered 429')
    // Two paced waits (8 ms of 10), then the third 429 uses the one retry, and the fourth ends it.
    expect(delays).toEqual([4, 4, 4])
    expect(attempts).toHaveLength(4)
  })

  it('stops waiting and rejects when the signal aborts during a backoff', async () => {
    const controller = new AbortController()
    const { fn, attempts } = failing(retryable(503, 60_000))
    const pending = withRetry(fn, { ...fast, signal: controller.signal, onRetry: () => queueMicrotask(() => controller.abort(new FluxError('FLUX_ABORTED', 'user stop'))) })
    await expect(pending).rejects.toThrow('user stop')
    expect(attempts).toEqual([0])
  })

  it('makes no attempt with an already aborted signal', async () => {
    const { fn, attempts } = failing()
    await expect(withRetry(fn, { ...fast, signal: AbortSignal.abort(new Error('already')) })).rejects.toThrow('already')
    expect(attempts).toEqual([])
  })
})
