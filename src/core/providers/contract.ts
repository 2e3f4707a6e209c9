import type { ImageSettings } from '../types'
import type { Catalog } from './catalog'

/**
 * What every provider must do: one prompt in, one verified image out. Retries, locks and the circuit breaker are
 * the engine's business (schedule.ts); a provider makes one attempt and says how it failed.
 */
export interface ImageProvider {
  /** The provider's id: part of every cache key it makes, so the same prompt from two providers is two images. */
  readonly id: string
  /** `onPaid` is told of every answer that billed an image, even when the image is then lost (expired URL, broken bytes). */
  generate(prompt: string, settings: ImageSettings, signal?: AbortSignal, onPaid?: () => void): Promise<{ bytes: Buffer; responseId?: string }>
  /** The models this key may use, with prices (free to read): read before the first generation of a run. */
  catalog?(signal?: AbortSignal): Promise<Catalog>
  close(): Promise<void>
}

/**
 * The error codes a provider throws (as `ApiError`, with `retryable` and `retryAfterMs`), and what the engine does
 * with each (policy.ts `reach`). A provider maps its own statuses and bodies onto these; nothing else is needed.
 */
export const PROVIDER_ERRORS = {
  /** The key was rejected (401): every further call would be too. Stops the run. */
  FLUX_AUTH: 'all',
  /** The account may not use the model (Together's 403 `third_party_data_sharing_blocked`). Stops the run. */
  FLUX_GATED: 'all',
  /** Out of credits or over a spending limit (402). Stops the run. */
  FLUX_CREDITS: 'all',
  /** The model is not served (404, retired): no more calls for that model. */
  FLUX_MODEL: 'model',
  /** The provider's safety system refused this prompt (422): that image fails, never retried, never cached. */
  FLUX_SAFETY: 'image',
  /** This request was refused as invalid (400, 422): that image fails. */
  FLUX_REQUEST: 'image',
  /** Rate limited (429): retried, paced by `retryAfterMs` when the provider said. */
  FLUX_RATE_LIMIT: 'image',
  /** The provider failed (5xx): retried when `retryable`. */
  FLUX_SERVER: 'image',
  /**
   * No key: the provider found none (an AI SDK provider reads its variable at call time) and sent nothing. Stops
   * further calls; its images are placeholders with one warning, never a failed run (policy.ts, "no key at all").
   */
  FLUX_NO_KEY: 'all',
  /** The API cannot be reached at all (connection refused, no such host), after the retries. Stops the run. */
  FLUX_UNREACHABLE: 'all',
  /** A connection broke (reset) or an error came before an answer: retried when `retryable`. */
  FLUX_NETWORK: 'image',
  /** No answer within `timeout`: retried. */
  FLUX_TIMEOUT: 'image',
  /** An answer that is not what the API documents: retried when `retryable`. */
  FLUX_BAD_RESPONSE: 'image',
  /** url mode: the image URL was refused (not https, a redirect) or its download failed. */
  FLUX_BAD_URL: 'image',
  FLUX_DOWNLOAD: 'image',
} as const satisfies Record<string, 'all' | 'model' | 'image'>

export type ProviderErrorCode = keyof typeof PROVIDER_ERRORS
