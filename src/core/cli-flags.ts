import { parseArgs } from 'node:util'
import { FluxError } from './errors'
import { OPTIONS, type OptionName, type OptionSpec } from './schema'
import type { FluxAssetsOptions } from './types'

/**
 * The CLI's flags: one per option with a `cli` entry in schema.ts (so every key-shaping option has one and a build's
 * settings can always be given to the CLI), plus the CLI's own switches.
 */

const OWN = {
  'dry-run': { type: 'boolean', doc: 'generate: list what would be generated and its cost, call nothing; prune: delete nothing' },
  force: { type: 'boolean', doc: 'prune: go ahead although no script was found or every entry would go' },
  json: { type: 'boolean', doc: 'Print a machine-readable result on stdout' },
  verbose: { type: 'boolean', doc: 'Also print retries' },
} as const

/** `promptSuffix` → `prompt-suffix`, `baseURL` → `base-url`. */
export function flagOf(name: string): string {
  return name.replace(/URL$/, 'Url').replace(/[A-Z]/g, c => `-${c.toLowerCase()}`)
}

const FLAGGED = (Object.keys(OPTIONS) as OptionName[]).filter(name => (OPTIONS[name] as OptionSpec).cli)

/** The help's option lines, generated from the schema. */
export function optionHelp(): string {
  const rows: Array<[string, string]> = FLAGGED.map(name => {
    const spec: OptionSpec = OPTIONS[name]
    return [`--${flagOf(name)}${spec.cli!.arg ? ` ${spec.cli!.arg}` : ''}`, spec.cli!.doc]
  })
  for (const [flag, own] of Object.entries(OWN)) rows.push([`--${flag}`, own.doc])
  rows.push(['-h, --help, -v, --version', ''])
  return rows.map(([flag, doc]) => `  ${flag.padEnd(27)}${doc}`.trimEnd()).join('\n')
}

export type Flags = Record<string, string | boolean | string[] | undefined>

/** Every flag, `--name` (for "did you mean"). */
export function flagNames(): string[] {
  return [...FLAGGED.map(name => `--${flagOf(name)}`), ...Object.keys(OWN).map(f => `--${f}`), '--help', '--version']
}

export function parseFlags(argv: string[]): { flags: Flags; positionals: string[] } {
  const options: Record<string, { type: 'string' | 'boolean'; multiple?: boolean; short?: string }> = {}
  for (const name of FLAGGED) {
    const spec: OptionSpec = OPTIONS[name]
    options[flagOf(name)] = spec.type === 'boolean' ? { type: 'boolean' } : { type: 'string', ...(spec.type === 'strings' ? { multiple: true } : {}) }
  }
  for (const [flag, own] of Object.entries(OWN)) options[flag] = { type: own.type }
  options.help = { type: 'boolean', short: 'h' }
  options.version = { type: 'boolean', short: 'v' }
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, strict: true, options })
  return { flags: values as Flags, positionals }
}

/** The options the flags give, as their schema types; undefined for every flag not given. */
export function toOptions(flags: Flags): FluxAssetsOptions {
  const options: Record<string, unknown> = {}
  for (const name of FLAGGED) {
    const flag = flagOf(name)
    const value = flags[flag]
    if (value === undefined) continue
    const spec: OptionSpec = OPTIONS[name]
    if (spec.type === 'integer' || spec.type === 'number') {
      const n = Number(value)
      if (typeof value !== 'string' || value.trim() === '' || !Number.isFinite(n)) throw new FluxError('FLUX_BAD_OPTION', `--${flag} expects a number, got ${JSON.stringify(value)}`)
      options[name] = n
    } else if (spec.type === 'providerOptions') {
      // An object, given as JSON: `--provider-options '{"fal":{"safety_tolerance":"2"}}'`.
      try {
        options[name] = JSON.parse(String(value))
      } catch {
        throw new FluxError('FLUX_BAD_OPTION', `--${flag} expects JSON, got ${JSON.stringify(value)}`)
      }
    } else options[name] = value
  }
  return options as FluxAssetsOptions
}
