import { readFileSync } from 'node:fs'
import { isAbsolute, relative, resolve } from 'node:path'
import { parseEnv } from 'node:util'
import { FluxError } from './errors'
import type { FluxAssetsOptions, Logger, ResolvedOptions } from './types'

export const DEFAULT_BASE_URL = 'https://api.together.xyz/v1'
export const DEFAULT_MODEL = 'black-forest-labs/FLUX.1-schnell'
export const DEFAULT_INCLUDE = ['**/*.script.json']

/** Warnings and errors on the console; info (retries, summaries) only with `DEBUG=flux-assets`. */
const consoleLogger: Logger = {
  info: message => /\bflux-assets\b|^\*$/.test(process.env.DEBUG ?? '') && console.info(`[flux-assets] ${message}`),
  warn: message => console.warn(`[flux-assets] ${message}`),
  error: message => console.error(`[flux-assets] ${message}`),
}

export interface ResolveContext {
  /** The bundler's output folder, excluded from discovery. */
  outDir?: string
  /** Environment to read the key and base URL from. Default `process.env`. */
  env?: Record<string, string | undefined>
}

/** Applies every default and checks every value, once. Returns a fresh object; never mutates the user's. */
export function resolveOptions(user: FluxAssetsOptions = {}, root = user.root ?? process.cwd(), context: ResolveContext = {}): ResolvedOptions {
  root = resolve(user.root ?? root)
  const real = withoutEmpty(context.env ?? process.env)
  const dotEnv = readDotEnv(root)
  const cacheDir = resolve(root, user.cacheDir ?? '.flux-cache')

  const exclude = ['**/node_modules/**', '**/.*/**']
  for (const dir of [cacheDir, resolve(root, context.outDir ?? 'dist')]) {
    const rel = relative(root, dir).split('\\').join('/')
    if (rel && !rel.startsWith('..') && !isAbsolute(rel)) exclude.push(`${rel}/**`)
  }

  const baseURL = (user.baseURL ?? real.TOGETHER_BASE_URL ?? dotEnv.TOGETHER_BASE_URL ?? DEFAULT_BASE_URL).replace(/\/+$/, '')
  check(/^https?:\/\//.test(baseURL), 'baseURL', `must be an http(s) URL, got ${JSON.stringify(baseURL)}`)

  return {
    root,
    include: toArray(user.include) ?? DEFAULT_INCLUDE,
    exclude: toArray(user.exclude) ?? exclude,
    cacheDir,
    // A key in the real environment, under either name, wins over one in .env (CI secrets over a stray .env).
    apiKey: user.apiKey || real.TOGETHER_API_KEY || real.TOGETHER_BEARER_TOKEN || dotEnv.TOGETHER_API_KEY || dotEnv.TOGETHER_BEARER_TOKEN || undefined,
    baseURL,
    responseFormat: oneOf('responseFormat', user.responseFormat, ['base64', 'url'], 'base64'),
    promptPrefix: user.promptPrefix ?? '',
    promptSuffix: user.promptSuffix ?? '',
    defaults: {
      model: nonEmpty('model', user.model, DEFAULT_MODEL),
      width: multipleOf8('width', user.width, 1024),
      height: multipleOf8('height', user.height, 768),
      steps: integer('steps', user.steps, 4, 1, 100),
      seed: user.seed === undefined ? undefined : integer('seed', user.seed, 0, 0, Number.MAX_SAFE_INTEGER),
      outputFormat: oneOf('outputFormat', user.outputFormat, ['jpeg', 'png'], 'jpeg'),
    },
    concurrency: integer('concurrency', user.concurrency, 4, 1, 64),
    retries: integer('retries', user.retries, 4, 0, 20),
    maxRetryDelay: integer('maxRetryDelay', user.maxRetryDelay, 60_000, 0, 3_600_000),
    timeout: integer('timeout', user.timeout, 120_000, 1, 3_600_000),
    maxImageBytes: integer('maxImageBytes', user.maxImageBytes, 25 * 1024 * 1024, 1, 2 ** 31),
    strict: user.strict ?? false,
    offline: user.offline ?? false,
    maxNewImages: integer('maxNewImages', user.maxNewImages, 100, 0, Number.MAX_SAFE_INTEGER),
    signal: user.signal,
    logger: user.logger ?? consoleLogger,
    onProgress: user.onProgress,
  }
}

/** Only the two names we use, from `<root>/.env` if there is one. Real environment variables win. */
function readDotEnv(root: string): Record<string, string> {
  let text: string
  try {
    text = readFileSync(resolve(root, '.env'), 'utf8')
  } catch {
    return {}
  }
  const parsed = parseEnv(text) as Record<string, string>
  const picked: Record<string, string> = {}
  for (const name of ['TOGETHER_API_KEY', 'TOGETHER_BEARER_TOKEN', 'TOGETHER_BASE_URL']) {
    if (parsed[name]) picked[name] = parsed[name]
  }
  return picked
}

function withoutEmpty(env: Record<string, string | undefined>): Record<string, string> {
  return Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => !!e[1]))
}

function toArray(value: string | string[] | undefined): string[] | undefined {
  return value === undefined ? undefined : Array.isArray(value) ? [...value] : [value]
}

function check(ok: boolean, name: string, message: string): asserts ok {
  if (!ok) throw new FluxError('FLUX_BAD_OPTION', `flux-assets option "${name}" ${message}`)
}

function integer(name: string, value: number | undefined, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback
  check(Number.isInteger(value) && value >= min && value <= max, name, `must be an integer from ${min} to ${max}, got ${typeof value === 'number' ? value : JSON.stringify(value)}`)
  return value
}

function multipleOf8(name: string, value: number | undefined, fallback: number): number {
  const n = integer(name, value, fallback, 8, 4096)
  check(n % 8 === 0, name, `must be a positive multiple of 8, got ${n}`)
  return n
}

function oneOf<T extends string>(name: string, value: string | undefined, allowed: readonly T[], fallback: T): T {
  if (value === undefined) return fallback
  check((allowed as readonly string[]).includes(value), name, `must be one of ${allowed.join(', ')}, got ${JSON.stringify(value)}`)
  return value as T
}

function nonEmpty(name: string, value: string | undefined, fallback: string): string {
  if (value === undefined) return fallback
  check(typeof value === 'string' && value.trim() !== '', name, 'must be a non-empty string')
  return value
}
