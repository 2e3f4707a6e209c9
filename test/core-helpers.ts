// Shared by the core engine tests (cache, together, generate, cli): temp folders, script files, a recording logger.
import { randomBytes } from 'node:crypto'
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { dirname, join, relative, resolve, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import { vi } from 'vitest'
import type { main } from '../src/core/cli'
import { createEngine, type Engine } from '../src/core/engine'
import { resolveOptions } from '../src/core/options'
import type { FluxAssetsOptions, GenerateResult, Logger } from '../src/core/types'

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..')
export const TMP = join(REPO, 'test/.tmp')
/** Never anything shaped like a real Together key. */
export const API_KEY = 'sk-test-SENTINEL-1234567890'

/** A fresh folder `test/.tmp/core-<label>-<random>`. */
export async function tempDir(label: string): Promise<string> {
  const dir = join(TMP, `core-${label}-${randomBytes(4).toString('hex')}`)
  await mkdir(dir, { recursive: true })
  return dir
}

export async function removeDir(dir: string | undefined): Promise<void> {
  if (dir && dir.startsWith(TMP + sep)) await rm(dir, { recursive: true, force: true, maxRetries: 3 })
}

/** `{ visual_track: [{ assets }] }` */
export const scene = (assets: Record<string, unknown>) => ({ visual_track: [{ assets }] })

/** Writes each `{ relativePath: document }` (objects as JSON, strings as they are) under root. */
export async function writeScripts(root: string, scripts: Record<string, unknown>): Promise<void> {
  for (const [path, doc] of Object.entries(scripts)) {
    const file = join(root, path)
    await mkdir(dirname(file), { recursive: true })
    await writeFile(file, typeof doc === 'string' ? doc : JSON.stringify(doc, null, 2))
  }
}

/** Every file under dir, absolute, recursively. Missing dir: none. */
export async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => [])
  return entries.filter(e => e.isFile()).map(e => join(e.parentPath, e.name)).sort()
}

/** Every file under dir, relative with posix separators. */
export async function relFilesUnder(dir: string): Promise<string[]> {
  return (await filesUnder(dir)).map(f => relative(dir, f).split(sep).join('/'))
}

/** Concatenated text of every file under dir (binary files as latin1), for "the key is nowhere" checks. */
export async function allText(dir: string): Promise<string> {
  const texts = await Promise.all((await filesUnder(dir)).map(f => readFile(f, 'latin1')))
  return texts.join('\n')
}

export interface Logs extends Logger {
  infos: string[]
  warnings: string[]
  errors: string[]
  all(): string
}

export function recordingLogger(): Logs {
  const logs: Logs = {
    infos: [],
    warnings: [],
    errors: [],
    info: m => void logs.infos.push(m),
    warn: m => void logs.warnings.push(m),
    error: m => void logs.errors.push(m),
    all: () => [...logs.infos, ...logs.warnings, ...logs.errors].join('\n'),
  }
  return logs
}

export const silentLogger: Logger = { info() {}, warn() {}, error() {} }

// ---------------------------------------------------------------- the engine, with no bundler

/** Small images keep the fake fast (FLUX.2, the default model, takes 256..1920). */
export const SMALL = { width: 256, height: 256 } as const

/**
 * An engine over root with these options (256×256 unless said otherwise, silent). The key and base URL come only from
 * `user` and `env` (default: none): the developer's own TOGETHER_* variables never leak in.
 */
export function engineFor(root: string, user: FluxAssetsOptions = {}, env: Record<string, string | undefined> = {}): Engine {
  return createEngine(resolveOptions({ ...SMALL, logger: silentLogger, ...user, root }, root, { env }))
}

/** Scan + generate once, then close the engine. */
export async function runEngine(root: string, user: FluxAssetsOptions = {}, env: Record<string, string | undefined> = {}): Promise<GenerateResult> {
  const engine = engineFor(root, user, env)
  try {
    const { requests } = await engine.scan()
    return await engine.generate(requests)
  } finally {
    await engine.close()
  }
}

/** Options that point the engine at a fake with the sentinel key. */
export const fakeOptions = (fake: { baseURL: string }, more: FluxAssetsOptions = {}): FluxAssetsOptions => ({ apiKey: API_KEY, baseURL: fake.baseURL, ...more })

/** The image generation requests the fake received (downloads and other routes left out). */
export function generationBodies(fake: { log: Array<{ method: string; path: string; body: unknown }> }): Array<Record<string, unknown>> {
  return fake.log.filter(e => e.method === 'POST' && e.path === '/v1/images/generations').map(e => e.body as Record<string, unknown>)
}

/** Records that are on disk now under a cache dir (`v1/ab/<key>.json`), as keys. */
export async function cachedKeys(cacheDir: string): Promise<string[]> {
  return (await relFilesUnder(join(cacheDir, 'v1')))
    .map(p => /^[0-9a-f]{2}\/([0-9a-f]{64})\.json$/.exec(p)?.[1])
    .filter((k): k is string => !!k)
    .sort()
}

// ---------------------------------------------------------------- the CLI in-process

export interface CapturedStream {
  isTTY: boolean
  text: string
  write(chunk: string): boolean
}

/** stdout/stderr stand-ins for `main(argv, io)`: they keep what was written; `tty` sets `isTTY` on both. */
export function captureIO(tty = false): { stdout: CapturedStream; stderr: CapturedStream; io: Parameters<typeof main>[1] } {
  const stream = (): CapturedStream => ({
    isTTY: tty,
    text: '',
    write(chunk: string) {
      this.text += chunk
      return true
    },
  })
  const stdout = stream()
  const stderr = stream()
  return { stdout, stderr, io: { stdout, stderr } as unknown as Parameters<typeof main>[1] }
}

/**
 * Runs `work` under a clock that moves 1 ms a call (so each BATCH_MS batch of sync calls ends after a few items on any
 * machine, however fast) beside a setImmediate chain, and counts the chain's turns between the first and the last
 * of the work's own `mark()`s: 0 when the work ran as one synchronous loop.
 */
export async function turnsDuring<T>(work: (mark: () => void) => Promise<T>): Promise<{ result: T; marks: number; turns: number }> {
  let fake = 0
  const clock = vi.spyOn(performance, 'now').mockImplementation(() => (fake += 1))
  const events: Array<'tick' | 'mark'> = []
  let running = true
  const tick = () => running && (events.push('tick'), setImmediate(tick))
  let result: T
  try {
    setImmediate(tick)
    result = await work(() => events.push('mark'))
  } finally {
    running = false
    clock.mockRestore()
  }
  const marks = events.flatMap((e, i) => (e === 'mark' ? [i] : []))
  return { result, marks: marks.length, turns: events.slice(marks[0], marks.at(-1)).filter(e => e === 'tick').length }
}
