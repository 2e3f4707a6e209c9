import { readFileSync } from 'node:fs'
import { isAbsolute, relative, resolve } from 'node:path'
import { parseEnv } from 'node:util'
import { loadConfigFile } from './config-file'
import { FluxError } from './errors'
import { createLogger } from './logger'
import { DEFAULT_MODEL, defaultProvider } from './providers'
import { aiSdkDefinition, describeModel, familyOf, isImageModel, keyNamesOf, TOGETHER_ONLY } from './providers/ai-sdk-models'
import { OPTIONS, type OptionName, type OptionSpec, problem } from './schema'
import { didYouMean } from './suggest'
import type { AiSdkImageModel, AssetRequest, FluxAssetsOptions, ResolvedOptions, TransformOverrides, TransformSettings } from './types'

export const DEFAULT_BASE_URL = 'https://api.together.xyz/v1'
export const DEFAULT_INCLUDE = ['**/*.script.json']

/** Warnings and errors on the console; info (retries, summaries) only with `DEBUG=flux-assets`. */
const consoleLogger = createLogger()

export interface ResolveContext {
  /** The bundler's output folder, excluded from discovery. */
  outDir?: string
  /** A dev server (Vite serve): account-level failures are placeholders, never a stop. */
  dev?: boolean
  /** Environment to read the key and base URL from. Default `process.env`. */
  env?: Record<string, string | undefined>
  /** `false`: do not read `flux-assets.config.*` from the root. */
  configFile?: false
}

/**
 * Applies every default and checks every value, once: the given options over the root's config file
 * (`flux-assets.config.*`, shared by the plugin and the CLI) over the defaults. Returns a fresh object; never mutates
 * the user's.
 */
export function resolveOptions(given: FluxAssetsOptions = {}, root = given.root ?? process.cwd(), context: ResolveContext = {}): ResolvedOptions {
  checkNames(given)
  root = resolve(given.root ?? root)
  const file = context.configFile === false ? undefined : loadConfigFile(root)
  if (file) checkNames(file.options, file.file)
  const user: FluxAssetsOptions = { ...file?.options, ...withoutUndefined(given) }
  const real = withoutEmpty(context.env ?? process.env)
  const dotEnv = readDotEnv(root)
  const cacheDir = resolve(root, value('cacheDir'))

  const exclude = ['**/node_modules/**', '**/.*/**']
  for (const dir of [cacheDir, resolve(root, context.outDir ?? 'dist')]) {
    const rel = relative(root, dir).split('\\').join('/')
    if (rel && !rel.startsWith('..') && !isAbsolute(rel)) exclude.push(`${rel}/**`)
  }

  const baseURL = (value('baseURL') ?? real.TOGETHER_BASE_URL ?? dotEnv.TOGETHER_BASE_URL ?? DEFAULT_BASE_URL).replace(/\/+$/, '')
  check(/^https?:\/\//.test(baseURL), 'baseURL', `must be an http(s) URL, got ${JSON.stringify(baseURL)}`)

  // The `model` option as given: a Together model id, or an AI SDK image model (the user's object, kept as it is).
  const model = value('model')
  const imageModel = isImageModel(model) ? model : undefined
  const ai = imageModel ? aiSdkOptions(imageModel, user, real, readDotEnv(root, keyNamesOf(imageModel.provider))) : undefined

  return {
    root,
    include: toArray(value('include')) ?? DEFAULT_INCLUDE,
    exclude: toArray(value('exclude')) ?? exclude,
    cacheDir,
    // A key in the real environment, under either name, wins over one in .env (CI secrets over a stray .env).
    apiKey: ai ? ai.apiKey : value('apiKey') || real.TOGETHER_API_KEY || real.TOGETHER_BEARER_TOKEN || dotEnv.TOGETHER_API_KEY || dotEnv.TOGETHER_BEARER_TOKEN || undefined,
    keyNames: ai ? ai.keyNames : ['TOGETHER_API_KEY'],
    providerEnv: ai ? ai.providerEnv : {},
    imageModel,
    provider: imageModel ? aiSdkDefinition(imageModel) : defaultProvider,
    baseURL,
    responseFormat: value('responseFormat'),
    promptPrefix: value('promptPrefix'),
    promptSuffix: value('promptSuffix'),
    defaults: {
      model: imageModel ? imageModel.modelId : ((model as string | undefined) ?? DEFAULT_MODEL),
      width: value('width'),
      height: value('height'),
      steps: value('steps'),
      seed: value('seed'),
      guidance: value('guidance'),
      negativePrompt: value('negativePrompt'),
      aspectRatio: value('aspectRatio'),
      promptUpsampling: value('promptUpsampling'),
      // Sent to Together always (its default); to an AI SDK model never: checked, then only as given (a note says so).
      outputFormat: imageModel ? value('outputFormat') && user.outputFormat : value('outputFormat'),
      providerOptions: value('providerOptions'),
    },
    concurrency: value('concurrency'),
    retries: value('retries'),
    maxRetryDelay: value('maxRetryDelay'),
    timeout: value('timeout'),
    maxImageBytes: value('maxImageBytes'),
    strict: value('strict'),
    apiFailure: value('apiFailure'),
    dev: context.dev ?? false,
    offline: value('offline'),
    maxNewImages: value('maxNewImages'),
    maxCost: value('maxCost'),
    dts: value('dts'),
    signal: value('signal'),
    logger: value('logger') ?? consoleLogger,
    onProgress: value('onProgress'),
    transform: transformOf({}, { formats: value('formats'), widths: value('widths'), quality: value('quality'), blur: value('blur') }),
  }

  /** The user's value of an option, checked against its schema, or the schema's default. */
  function value<K extends OptionName>(name: K): Resolved<K> {
    const spec: OptionSpec = OPTIONS[name]
    const set = user[name]
    const wrong = problem(spec, set)
    const where = file && given[name] === undefined ? ` (in ${relative(root, file.file)})` : ''
    if (wrong) throw new FluxError('FLUX_BAD_OPTION', `flux-assets option "${name}"${where} ${wrong}`)
    return (set ?? ('default' in spec ? spec.default : undefined)) as Resolved<K>
  }
}

/**
 * Variant settings: an asset's own (from its script) over the global ones, each whole except `quality`, merged per
 * format. Widths sorted and unique, so `[960, 480]` and `[480, 960]` are one transform (and one variant key).
 */
export function transformOf(own: TransformOverrides, global: TransformOverrides): TransformSettings {
  const spec = OPTIONS.quality.default
  const widths = own.widths ?? global.widths ?? []
  return {
    formats: [...(own.formats ?? global.formats ?? OPTIONS.formats.default)],
    widths: [...new Set(widths)].sort((a, b) => a - b),
    quality: { ...spec, ...global.quality, ...own.quality },
    blur: own.blur ?? global.blur ?? OPTIONS.blur.default,
  }
}

/** A request's variant settings: its script's over the resolved global ones (what a build and `generate` make). */
export function transformOfRequest(request: Pick<AssetRequest, 'transform'>, global: TransformSettings): TransformSettings {
  return request.transform ? transformOf(request.transform, global) : global
}

/** An option's type once resolved: never undefined when the schema has a default. */
type Resolved<K extends OptionName> = (typeof OPTIONS)[K] extends { default: unknown } ? Exclude<FluxAssetsOptions[K], undefined> : FluxAssetsOptions[K]

/**
 * Every option name must be one of the schema's: a misspelled one (`apikey`) would silently do nothing, and the types
 * that would catch it often do not see the bundler config. Undefined values count too: they are a name written down.
 */
function checkNames(user: FluxAssetsOptions, file?: string): void {
  const where = file ? ` in ${file}` : ''
  if (user === null || typeof user !== 'object') throw new FluxError('FLUX_BAD_OPTION', `flux-assets options${where} must be an object, got ${user === null ? 'null' : typeof user}`)
  const names = Object.keys(OPTIONS)
  const unknown = Object.keys(user).filter(k => !Object.hasOwn(OPTIONS, k))
  if (unknown.length === 0) return
  const lines = unknown.map(k => `unknown option "${k}"${didYouMean(k, names)}`)
  throw new FluxError('FLUX_BAD_OPTION', `flux-assets${where}: ${lines.join('; ')}. Valid options: ${names.join(', ')}.`)
}

/**
 * An AI SDK model's key and the options that are Together's alone. Its provider reads the key itself (from its
 * variable, or an `apiKey` given to it in code): the key found here is redacted from every message, and a key only in
 * `<root>/.env` is handed to the provider through `process.env` (`providerEnv`).
 */
function aiSdkOptions(model: AiSdkImageModel, user: FluxAssetsOptions, real: Record<string, string>, dotEnv: Record<string, string>) {
  const name = describeModel(model)
  for (const option of ['apiKey', 'baseURL', 'responseFormat', ...TOGETHER_ONLY] as const) {
    if (user[option] === undefined) continue
    const instead =
      option === 'apiKey' ? `set ${keyNamesOf(model.provider)[0] ?? "the provider's own key variable"} (also read from <root>/.env), or pass apiKey to the provider (e.g. createFal({ apiKey }))`
      : option === 'baseURL' ? 'pass baseURL to the provider (e.g. createFal({ baseURL }))'
      : option === 'responseFormat' ? 'the provider decides how images come back'
      : `set it in providerOptions, as ${familyOf(model.provider)} names it (e.g. { ${familyOf(model.provider)}: { ... } })`
    check(false, option, `is a Together option, and \`model\` is an AI SDK model (${name}): ${instead}`)
  }
  const keyNames = keyNamesOf(model.provider)
  const providerEnv: Record<string, string> = {}
  let apiKey: string | undefined
  for (const key of keyNames) apiKey ??= real[key]
  if (!apiKey) {
    const found = keyNames.find(key => dotEnv[key])
    if (found) (apiKey = dotEnv[found]!), (providerEnv[found] = dotEnv[found]!)
  }
  return { apiKey, keyNames, providerEnv }
}

/** Only the names we use (Together's, or an AI SDK provider's `extra`), from `<root>/.env` if there is one. Real environment variables win. */
function readDotEnv(root: string, extra: readonly string[] = []): Record<string, string> {
  let text: string
  try {
    text = readFileSync(resolve(root, '.env'), 'utf8')
  } catch {
    return {}
  }
  const parsed = parseEnv(text) as Record<string, string>
  const picked: Record<string, string> = {}
  for (const name of ['TOGETHER_API_KEY', 'TOGETHER_BEARER_TOKEN', 'TOGETHER_BASE_URL', ...extra]) {
    if (parsed[name]) picked[name] = parsed[name]
  }
  return picked
}

function withoutUndefined<T extends object>(options: T): Partial<T> {
  return Object.fromEntries(Object.entries(options).filter(e => e[1] !== undefined)) as Partial<T>
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
