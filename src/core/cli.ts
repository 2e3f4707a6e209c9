import { version } from '../../package.json'
import { FluxError, redact, ScriptError } from './errors'
import { didYouMean } from './suggest'
import { createEngine, type Engine, type EngineResult } from './engine'
import { resolveOptions, transformOfRequest } from './options'
import { Variants, variantsAhead } from './variants'
import { dryRun, prune, status, verify } from './cli-cache'
import { flagNames, optionHelp, parseFlags, toOptions } from './cli-flags'
import { formatProgress, formatSummary } from './summary'
import { defaultProvider } from './providers'
import { formatPrice, priceFor, sortImageModels } from './providers/catalog'
import { describeAccepts, findProfile } from './providers/models'
import type { AssetRequest, Logger, Progress, ResolvedOptions } from './types'

const HELP = `Usage: flux-assets <command> [options]

Commands:
  generate   Generate every missing image into the cache, and the web variants of every image (the default);
             --dry-run lists the missing images and their cost instead, and makes nothing
  status     Show cached and missing images and the estimated cost; makes no API call
  prune      Delete cache entries no script references and no build used in the last 30 days (--dry-run lists them)
  verify     Re-hash every cache entry and web variant; report and remove the damaged ones (exit 1 if any)
  models     List the image models the key can use, with prices and what each takes

Options (also read from flux-assets.config.{ts,mjs,js,json} in the root; flags win):
${optionHelp()}

Exit codes: 0 ok, 1 failed images under --strict, a budget stop, a model not served or an account gate,
2 bad usage or bad script input.
The API key comes from TOGETHER_API_KEY (or TOGETHER_BEARER_TOKEN), also read from <root>/.env.`

const COMMANDS = ['generate', 'status', 'prune', 'verify', 'models']

export async function main(argv: string[], io = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  let args: ReturnType<typeof parseFlags>
  try {
    args = parseFlags(argv)
  } catch (error) {
    io.stderr.write(`flux-assets: ${usageError(error)}\n\nUsage: flux-assets [generate|status|prune|verify|models] [options]\nRun flux-assets --help for usage.\n`)
    return 2
  }
  const { flags, positionals } = args
  if (flags.help) return void io.stdout.write(`${HELP}\n`), 0
  if (flags.version) return void io.stdout.write(`${version}\n`), 0
  const command = positionals[0] ?? 'generate'
  if (!COMMANDS.includes(command) || positionals.length > 1) {
    const suggestion = positionals.length === 1 ? didYouMean(command, COMMANDS) : ''
    io.stderr.write(`flux-assets: unknown command "${positionals.join(' ')}"${suggestion}\n\nRun flux-assets --help for usage.\n`)
    return 2
  }

  const tty = !flags.json && (io.stderr as NodeJS.WriteStream).isTTY === true
  let progressShown = false
  const clear = () => progressShown && (io.stderr.write('\r\x1b[K'), (progressShown = false))
  const logger: Logger = {
    info: m => flags.verbose && (clear(), io.stderr.write(`flux-assets: ${m}\n`)),
    debug: m => flags.verbose && (clear(), io.stderr.write(`flux-assets: ${m}\n`)),
    warn: m => (clear(), io.stderr.write(`flux-assets: ${m}\n`)),
    error: m => (clear(), io.stderr.write(`flux-assets: error: ${m}\n`)),
  }
  const onProgress = (p: Progress) => {
    if (!tty) return
    io.stderr.write(`\r\x1b[K${formatProgress(p)}`)
    progressShown = true
  }

  const controller = new AbortController()
  const onSigint = () => {
    if (controller.signal.aborted) process.exit(130)
    logger.warn('interrupted: stopping; finished images stay cached (Ctrl-C again to quit at once)')
    controller.abort(new FluxError('FLUX_ABORTED', 'interrupted'))
  }
  process.on('SIGINT', onSigint)

  let secret: string | undefined
  try {
    const options = resolveOptions({ ...toOptions(flags), logger, onProgress, signal: controller.signal })
    secret = options.apiKey
    if (command === 'models') return await listModels(options, io, !!flags.json)
    const engine = createEngine(options)
    try {
      const json = !!flags.json
      if (command === 'verify') return await verify(engine, io, json)
      const scanned = await engine.scan()
      if (command === 'status') return await status(engine, scanned, io, json)
      if (command === 'prune') return await prune(engine, scanned, io, { dryRun: !!flags['dry-run'], force: !!flags.force, json })
      if (flags['dry-run']) return await dryRun(engine, scanned, io, json)
      const result = await generateWithVariants(engine, scanned.requests)
      clear()
      if (json) io.stdout.write(`${JSON.stringify({ summary: result.summary, assets: result.assets }, null, 2)}\n`)
      else io.stdout.write(`${formatSummary(result.summary)}\n`)
      return 0
    } finally {
      await engine.close()
    }
  } catch (error) {
    clear()
    const message = redact(error instanceof Error ? error.message : String(error), secret)
    io.stderr.write(`flux-assets: ${error instanceof FluxError ? message : `unexpected error: ${message}`}\n`)
    if (error instanceof ScriptError || (error instanceof FluxError && error.code === 'FLUX_BAD_OPTION')) return 2
    if (controller.signal.aborted) return 130
    return 1
  } finally {
    process.off('SIGINT', onSigint)
  }
}

/**
 * `generate`: every missing image, and the web variants of every image with the settings a build uses (options and
 * config file, each asset's own), each image's started as soon as it is cached while the others are generated: a
 * build after it (CI) encodes nothing. A run that fails stops the variants not yet started and ends after the rest.
 */
async function generateWithVariants(engine: Engine, requests: AssetRequest[]): Promise<EngineResult> {
  const variants = new Variants(engine.store)
  const stop = new AbortController()
  const ahead = variantsAhead(variants, requests, r => transformOfRequest(r, engine.options.transform), stop.signal)
  try {
    const result = await engine.generate(requests, undefined, ahead)
    await Promise.all(ahead.started)
    return result
  } catch (error) {
    stop.abort(error)
    await variants.settled()
    throw error
  }
}

/** `flux-assets models`: what the key can use (the provider's catalog), FLUX first, with price and what each takes. */
async function listModels(options: ResolvedOptions, io: { stdout: NodeJS.WritableStream }, json: boolean): Promise<number> {
  // Together's catalog: never asked with another provider's key.
  if (options.imageModel) throw new FluxError('FLUX_BAD_OPTION', `models lists Together's catalog, and \`model\` is an AI SDK model (${options.imageModel.provider} ${options.imageModel.modelId}): see that provider's model list`)
  if (!options.apiKey) throw new FluxError('FLUX_NO_KEY', 'models needs an API key (TOGETHER_API_KEY) to ask which models it can use')
  const provider = await defaultProvider.load(options)
  try {
    if (!provider.catalog) throw new FluxError('FLUX_CATALOG', 'this provider has no model list')
    const models = sortImageModels((await provider.catalog(options.signal)).models).map(m => {
      const profile = findProfile(m.id)
      return { id: m.id, name: m.displayName ?? profile?.label, price: formatPrice(m.price ?? priceFor(m.id)?.price), takes: profile ? describeAccepts(profile) : 'unknown to this plugin (conservative request)' }
    })
    if (json) io.stdout.write(`${JSON.stringify(models, null, 2)}\n`)
    else for (const m of models) io.stdout.write(`${m.id}${m.id === options.defaults.model ? ' (default)' : ''}\n  ${m.price} · ${m.takes}\n`)
    return 0
  } finally {
    await provider.close()
  }
}

/** parseArgs' message, in our words: `unknown option --dryrun (did you mean --dry-run?)`. */
function usageError(error: unknown): string {
  const { code, message } = error as { code?: string; message: string }
  const unknown = /Unknown option '([^']+)'/.exec(message)?.[1]
  if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' && unknown) return `unknown option ${unknown}${didYouMean(unknown.replace(/=.*$/, ''), flagNames(), f => f)}`
  return message
}
