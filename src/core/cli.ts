import { parseArgs } from 'node:util'
import { version } from '../../package.json'
import { FluxError, redact, ScriptError } from './errors'
import { didYouMean } from './suggest'
import { createEngine } from './engine'
import { resolveOptions } from './options'
import { estimateTotal, formatCost } from './price'
import { formatProgress, formatSummary } from './summary'
import { defaultProvider } from './providers'
import { formatPrice, priceFor, sortImageModels } from './providers/catalog'
import { describeAccepts, findProfile } from './providers/models'
import type { FluxAssetsOptions, Logger, Progress, ResolvedOptions } from './types'

const HELP = `Usage: flux-assets <command> [options]

Commands:
  generate   Generate every missing image into the cache (the default)
  status     Show cached and missing images and the estimated cost; makes no API call
  prune      Delete cache entries no script references (--dry-run lists them)
  models     List the image models the key can use, with prices and what each takes

Options:
  --root <dir>               Project root (default: current directory)
  --include <glob>           Script files, repeatable (default: **/*.script.json)
  --cache-dir <dir>          Cache folder (default: .flux-cache)
  --model <id>               Model (default: black-forest-labs/FLUX.2-dev)
  --width <px>, --height <px>, --steps <n>
  --response-format <fmt>    base64 (default) or url
  --concurrency <n>          Requests at once (default: 4)
  --retries <n>              Retries per image after the first attempt (default: 4)
  --max-new-images <n>       Stop before calling when more would be generated (default: 100)
  --max-cost <usd>           Stop before calling when the estimate is over this (default: no cap)
  --api-failure <mode>       fail (default) or placeholder: what a rejected key, a gated account, no credits,
                             a model not served or an unreachable API do
  --offline                  Make no API call; missing images become placeholders
  --strict                   Exit 1 if any image is a placeholder or failed
  --dry-run                  With prune: list, delete nothing
  --json                     Print a machine-readable summary on stdout
  --verbose                  Also print retries
  -h, --help, -v, --version

Exit codes: 0 ok, 1 failed images under --strict, a budget stop, a model not served or an account gate,
2 bad usage or bad script input.
The API key comes from TOGETHER_API_KEY (or TOGETHER_BEARER_TOKEN), also read from <root>/.env.`

export async function main(argv: string[], io = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  let args: ReturnType<typeof parse>
  try {
    args = parse(argv)
  } catch (error) {
    io.stderr.write(`flux-assets: ${usageError(error)}\n\nUsage: flux-assets [generate|status|prune|models] [options]\nRun flux-assets --help for usage.\n`)
    return 2
  }
  const { values: flags, positionals } = args
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
      const { files, requests } = await engine.scan()
      if (command === 'generate') {
        const result = await engine.generate(requests)
        clear()
        if (flags.json) io.stdout.write(`${JSON.stringify({ summary: result.summary, assets: result.assets }, null, 2)}\n`)
        else io.stdout.write(`${formatSummary(result.summary)}\n`)
        return 0
      }
      const keys = new Map(requests.map(r => [r.key, r]))
      if (command === 'status') {
        const hits = await Promise.all([...keys.keys()].map(async k => [k, await engine.store.get(k)] as const))
        const cachedKeys = new Set(hits.filter(([, hit]) => hit).map(([k]) => k))
        // What the cached images cost when they were made (entries from before 2026-12 did not record it).
        let cacheCost: number | null = 0
        for (const [, hit] of hits) if (hit) cacheCost = cacheCost === null || typeof hit.record.cost !== 'number' ? null : cacheCost + hit.record.cost
        const missing = [...keys.values()].filter(r => !cachedKeys.has(r.key))
        const missingAssets = requests.filter(r => !cachedKeys.has(r.key))
        const status = {
          scripts: files.length,
          assets: requests.length,
          images: keys.size,
          cached: keys.size - missing.length,
          missing: missing.length,
          estimatedCost: estimateTotal(missing.map(r => r.settings)),
          cachedCost: cacheCost,
          missingAssets: missingAssets.map(r => ({ script: r.script, pointer: r.pointer, id: r.id, prompt: r.prompt, key: r.key })),
        }
        if (flags.json) io.stdout.write(`${JSON.stringify(status, null, 2)}\n`)
        else {
          for (const r of missingAssets) io.stdout.write(`missing  ${r.script} ${r.pointer}\n`)
          io.stdout.write(
            `${status.scripts} ${status.scripts === 1 ? 'script' : 'scripts'} · ${status.assets} assets · ${status.images} images · ${status.cached} cached${status.cached ? ` (${cacheCost === null ? 'cost unknown' : `$${cacheCost.toFixed(3)}`} spent on them)` : ''} · ${status.missing} missing (${formatCost(status.estimatedCost)})\n`,
          )
        }
        return 0
      }
      const unused = (await engine.store.keys()).filter(k => !keys.has(k))
      if (!flags['dry-run']) for (const key of unused) await engine.store.remove(key)
      if (flags.json) io.stdout.write(`${JSON.stringify({ removed: flags['dry-run'] ? [] : unused, unused }, null, 2)}\n`)
      else {
        for (const key of unused) io.stdout.write(`${flags['dry-run'] ? 'would remove' : 'removed'}  ${key}\n`)
        io.stdout.write(`${unused.length} unused entr${unused.length === 1 ? 'y' : 'ies'} ${flags['dry-run'] ? 'found' : 'removed'}\n`)
      }
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

/** `flux-assets models`: what the key can use (the provider's catalog), FLUX first, with price and what each takes. */
async function listModels(options: ResolvedOptions, io: { stdout: NodeJS.WritableStream }, json: boolean): Promise<number> {
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

const COMMANDS = ['generate', 'status', 'prune', 'models']

/** parseArgs' message, in our words: `unknown option --dryrun (did you mean --dry-run?)`. */
function usageError(error: unknown): string {
  const { code, message } = error as { code?: string; message: string }
  const unknown = /Unknown option '([^']+)'/.exec(message)?.[1]
  if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' && unknown) {
    const flags = Object.keys(parse.options).map(f => `--${f}`)
    return `unknown option ${unknown}${didYouMean(unknown.replace(/=.*$/, ''), flags, f => f)}`
  }
  return message
}

function parse(argv: string[]) {
  return parseArgs({ args: argv, allowPositionals: true, strict: true, options: parse.options })
}
parse.options = {
  root: { type: 'string' },
  include: { type: 'string', multiple: true },
  'cache-dir': { type: 'string' },
  model: { type: 'string' },
  width: { type: 'string' },
  height: { type: 'string' },
  steps: { type: 'string' },
  'response-format': { type: 'string' },
  concurrency: { type: 'string' },
  retries: { type: 'string' },
  'max-new-images': { type: 'string' },
  'max-cost': { type: 'string' },
  'api-failure': { type: 'string' },
  offline: { type: 'boolean' },
  strict: { type: 'boolean' },
  'dry-run': { type: 'boolean' },
  json: { type: 'boolean' },
  verbose: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'v' },
} as const

function toOptions(flags: ReturnType<typeof parse>['values']): FluxAssetsOptions {
  const number = (name: keyof typeof flags) => {
    const value = flags[name]
    if (value === undefined) return undefined
    const n = Number(value)
    if (typeof value !== 'string' || value.trim() === '' || !Number.isFinite(n)) throw new FluxError('FLUX_BAD_OPTION', `--${name} expects a number, got ${JSON.stringify(value)}`)
    return n
  }
  return {
    root: flags.root,
    include: flags.include,
    cacheDir: flags['cache-dir'],
    model: flags.model,
    width: number('width'),
    height: number('height'),
    steps: number('steps'),
    responseFormat: flags['response-format'] as FluxAssetsOptions['responseFormat'],
    concurrency: number('concurrency'),
    retries: number('retries'),
    maxNewImages: number('max-new-images'),
    maxCost: number('max-cost'),
    apiFailure: flags['api-failure'] as FluxAssetsOptions['apiFailure'],
    offline: flags.offline,
    strict: flags.strict,
  }
}
