import type { ScriptIssue } from './types'

/** Every error this package throws on purpose: a stable `code` and a message a person can act on. */
export class FluxError extends Error {
  override name = 'FluxError'
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message)
  }
}

/** Bad script input: every issue across every script, collected and reported together. */
export class ScriptError extends FluxError {
  override name = 'ScriptError'
  constructor(readonly issues: ScriptIssue[]) {
    super('FLUX_SCRIPT_INVALID', formatIssues(issues))
  }
}

export function formatIssues(issues: ScriptIssue[]): string {
  const one = issues.length === 1
  const lines = issues.map(i => {
    const line = `${i.script}: ${i.where}: ${i.message}`
    const frame = i.frame ? `\n${i.frame.split('\n').map(l => `${one ? '  ' : '    '}${l}`).join('\n')}` : ''
    return `${one ? '' : '  '}${line}${frame}`
  })
  return one ? lines[0]! : `${issues.length} problems in script files:\n${lines.join('\n')}`
}

/**
 * The API (or the image host) said no, or could not be reached.
 * `status` is absent for network failures; `retryAfterMs` is what the server asked for, if anything.
 */
export class ApiError extends FluxError {
  override name = 'ApiError'
  constructor(
    code: string,
    message: string,
    readonly status: number | undefined,
    readonly retryable: boolean,
    readonly retryAfterMs?: number,
  ) {
    super(code, message)
  }
}

/** The image itself is unacceptable: not PNG/JPEG/WebP, truncated, or over the size cap. */
export class ImageError extends FluxError {
  override name = 'ImageError'
  constructor(
    message: string,
    readonly retryable = true,
  ) {
    super('FLUX_BAD_IMAGE', message)
  }
}

/** More uncached images than `maxNewImages`: stopped before the first call. */
export class BudgetError extends FluxError {
  override name = 'BudgetError'
  constructor(message: string) {
    super('FLUX_BUDGET', message)
  }
}

/** Strict mode: some assets are placeholders or failed. */
export class StrictError extends FluxError {
  override name = 'StrictError'
  constructor(message: string) {
    super('FLUX_STRICT', message)
  }
}

/** Replaces every occurrence of `secret` in `text`. Used on everything that leaves the engine. */
export function redact(text: string, secret: string | undefined): string {
  if (!secret || secret.length < 4) return text
  return text.split(secret).join('***')
}

/** A message fit for a person from anything thrown, with the key removed. */
export function describe(error: unknown, secret: string | undefined): string {
  const message = error instanceof Error ? error.message : String(error)
  return redact(message, secret)
}
