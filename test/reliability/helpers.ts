// Shared set-up for the reliability tests: temp projects, the CLI as a real child process, cache inspection.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises'
import { dirname, join, relative, resolve, sep } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { build as esbuild } from 'esbuild'
import { FileStore } from '../../src/core/store'
import { verifyImage } from '../../src/core/image'
import { sha256 } from '../../src/core/key'
import { createEngine } from '../../src/core/engine'
import { resolveOptions } from '../../src/core/options'
import type { AssetRequest, FluxAssetsOptions, Logger } from '../../src/core/types'

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..')
export const TMP = join(REPO, 'test/.tmp')
/** Never anything shaped like a real Together key. */
export const SENTINEL = 'sk-test-SENTINEL-1234567890'
/** Small images keep the fake fast; FLUX.2 takes 256..1920. */
export const SIZE = ['--width', '256', '--height', '256'] as const

export const silent: Logger = { info() {}, warn() {}, error() {} }

/** A logger that keeps every line, for asserting on what a person would see. */
export function recordingLogger(): Logger & { lines: string[] } {
  const lines: string[] = []
  return { lines, info: m => void lines.push(m), warn: m => void lines.push(m), error: m => void lines.push(m) }
}

// ---------------------------------------------------------------- temp projects

/** A fresh folder `test/.tmp/rel-<name>-<random>`; remove it with `removeTemp`. */
export async function makeTemp(name: string): Promise<string> {
  const dir = join(TMP, `rel-${name}-${randomBytes(4).toString('hex')}`)
  await mkdir(dir, { recursive: true })
  return dir
}

export async function removeTemp(dir: string | undefined): Promise<void> {
  if (dir && dir.startsWith(TMP + sep)) await rm(dir, { recursive: true, force: true, maxRetries: 3 })
}

/** A script document with `n` assets `a0..a<n-1>`, spread over scenes of 4, prompts unique per `tag`. */
export function scriptWith(n: number, tag = 'p'): { visual_track: Array<{ assets: Record<string, string> }> } {
  const visual_track: Array<{ assets: Record<string, string> }> = []
  for (let i = 0; i < n; i++) {
    if (i % 4 === 0) visual_track.push({ assets: {} })
    visual_track.at(-1)!.assets[`a${i}`] = `${tag} prompt number ${i}: a lighthouse at dusk`
  }
  return { visual_track }
}

/** Writes each `{ relativePath: document }` (objects as JSON, strings as is) under root. */
export async function writeScripts(root: string, scripts: Record<string, unknown>): Promise<void> {
  for (const [path, doc] of Object.entries(scripts)) {
    const file = join(root, path)
    await mkdir(dirname(file), { recursive: true })
    await writeFile(file, typeof doc === 'string' ? doc : JSON.stringify(doc, null, 2))
  }
}

/** Every file under dir, relative, posix separators, sorted. Missing dir: none. */
export function listFiles(dir: string): string[] {
  const out: string[] = []
  const walk = (d: string) => {
    let entries
    try {
      entries = readdirSync(d, { withFileTypes: true })
    } catch {
      return
    }
    for (const e of entries) {
      const path = join(d, e.name)
      if (e.isDirectory()) walk(path)
      else out.push(relative(dir, path).split(sep).join('/'))
    }
  }
  walk(dir)
  return out.sort()
}

/** path → size:mtime:sha256 of every file under dir. */
export function snapshotTree(dir: string): Map<string, string> {
  return new Map(
    listFiles(dir).map(p => {
      const file = join(dir, p)
      const info = statSync(file)
      return [p, `${info.size}:${info.mtimeMs}:${sha256(readFileSync(file))}`]
    }),
  )
}

/** Files added or changed between two snapshots (removals too), as relative paths. */
export function changedFiles(before: Map<string, string>, after: Map<string, string>): string[] {
  const changed = new Set<string>()
  for (const [p, v] of after) if (before.get(p) !== v) changed.add(p)
  for (const p of before.keys()) if (!after.has(p)) changed.add(p)
  return [...changed].sort()
}

// ---------------------------------------------------------------- the CLI as a child process

let cliPath: Promise<string> | undefined

/**
 * `src/cli.ts` bundled with esbuild (the bundler tsup itself uses) into `test/.tmp/rel-cli-<hash of src>/cli.mjs`:
 * always the current source, built once per source state, and immune to someone else's `tsup` cleaning `dist/`
 * while a child is starting. Dependencies stay external and resolve from the repo's node_modules.
 */
export function cliEntry(): Promise<string> {
  return (cliPath ??= (async () => {
    const hash = createHash('sha256')
    for (const file of listFiles(join(REPO, 'src'))) hash.update(file).update(readFileSync(join(REPO, 'src', file)))
    hash.update(readFileSync(join(REPO, 'package.json')))
    const dir = join(TMP, `rel-cli-${hash.digest('hex').slice(0, 16)}`)
    const out = join(dir, 'cli.mjs')
    if (existsSync(out)) return out
    await mkdir(dir, { recursive: true })
    const temp = join(dir, `cli-${process.pid}-${randomBytes(4).toString('hex')}.mjs`)
    await esbuild({
      entryPoints: [join(REPO, 'src/cli.ts')],
      outfile: temp,
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      packages: 'external',
      logLevel: 'silent',
    })
    await rename(temp, out)
    return out
  })())
}

/** The environment a child gets: the parent's minus every TOGETHER_* variable, plus `extra` (undefined deletes). */
export function childEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('TOGETHER_')) env[k] = v
  env.NO_COLOR = '1'
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete env[k]
    else env[k] = v
  }
  return env
}

export interface Cli {
  child: ChildProcess
  readonly stdout: string
  readonly stderr: string
  /** Resolves with the exit code (or the signal that killed it). */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
}

/** Starts `flux-assets <args>` in cwd with exactly the given env (see childEnv). */
export async function spawnCli(args: string[], options: { cwd: string; env: NodeJS.ProcessEnv }): Promise<Cli> {
  return spawnNode([await cliEntry(), ...args], options.cwd, options.env)
}

/** Starts `node <args>` and collects its output as it comes. */
function spawnNode(args: string[], cwd: string, env: NodeJS.ProcessEnv): Cli {
  const child = spawn(process.execPath, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout!.setEncoding('utf8').on('data', d => (stdout += d))
  child.stderr!.setEncoding('utf8').on('data', d => (stderr += d))
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
    child.once('error', reject)
    child.once('close', (code, signal) => resolve({ code, signal }))
  })
  return {
    child,
    get stdout() {
      return stdout
    },
    get stderr() {
      return stderr
    },
    exited,
  }
}

/** Runs `flux-assets <args>` to the end. */
export async function runCli(args: string[], options: { cwd: string; env: NodeJS.ProcessEnv }) {
  const cli = await spawnCli(args, options)
  const { code, signal } = await cli.exited
  return { code, signal, stdout: cli.stdout, stderr: cli.stderr }
}

let viteChildPath: Promise<string> | undefined

/** What the vite build child runs: `node build.mjs <root> <options JSON>`; exit 0 and "built" on stdout, or 1. */
const VITE_CHILD = `
import { join } from 'node:path'
import { build } from 'vite'
import flux from './src/vite'
const [root, json] = process.argv.slice(2)
const quiet = { info() {}, warn() {}, error() {} }
try {
  await build({
    root,
    configFile: false,
    logLevel: 'silent',
    build: { outDir: join(root, 'dist'), emptyOutDir: true, modulePreload: { polyfill: false } },
    plugins: [flux({ width: 256, height: 256, logger: quiet, ...JSON.parse(json) })],
  })
  process.stdout.write('built\\n')
} catch (error) {
  process.stderr.write(String(error && error.message) + '\\n')
  process.exitCode = 1
}
`

/** A script that runs a `vite build` (JS API) with the plugin from the current source, bundled like cliEntry. */
export function viteBuildEntry(): Promise<string> {
  return (viteChildPath ??= (async () => {
    const hash = createHash('sha256').update(VITE_CHILD)
    for (const file of listFiles(join(REPO, 'src'))) hash.update(file).update(readFileSync(join(REPO, 'src', file)))
    const dir = join(TMP, `rel-vitebuild-${hash.digest('hex').slice(0, 16)}`)
    const out = join(dir, 'build.mjs')
    if (existsSync(out)) return out
    await mkdir(dir, { recursive: true })
    const temp = join(dir, `build-${process.pid}-${randomBytes(4).toString('hex')}.mjs`)
    await esbuild({
      stdin: { contents: VITE_CHILD, resolveDir: REPO, sourcefile: 'vite-build-child.ts', loader: 'ts' },
      outfile: temp,
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      packages: 'external',
      logLevel: 'silent',
    })
    await rename(temp, out)
    return out
  })())
}

/**
 * Starts a `vite build` of root (the app written by writeApp) in a child process, with the plugin and these
 * JSON-serialisable options (256×256 and a silent logger by default). Same handle as spawnCli.
 */
export async function spawnViteBuild(root: string, options: FluxAssetsOptions, env: NodeJS.ProcessEnv = childEnv()): Promise<Cli> {
  return spawnNode([await viteBuildEntry(), root, JSON.stringify(options)], root, env)
}

/** The usual env for a child talking to the fake with the sentinel key. */
export function fakeEnv(baseURL: string, key: string | undefined = SENTINEL): NodeJS.ProcessEnv {
  return childEnv({ TOGETHER_API_KEY: key, TOGETHER_BASE_URL: baseURL })
}

/** Stack-trace lines (`    at fn (file:1:2)`): a person should never see one. */
export const STACK_LINE = /^\s+at .+[(:]\d*/m

/** A pid that certainly belonged to a process that has exited. */
export function deadPid(): number {
  const result = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' })
  return Number(result.stdout)
}

// ---------------------------------------------------------------- waiting

/** Polls `condition` until it returns something truthy; throws after `timeoutMs` (a hang guard, not a timing check). */
export async function waitFor<T>(condition: () => T | Promise<T>, what: string, timeoutMs = 30_000, intervalMs = 20): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await condition()
    if (value) return value as NonNullable<T>
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise(r => setTimeout(r, intervalMs))
  }
}

// ---------------------------------------------------------------- the cache on disk

export const cacheRoot = (cacheDir: string) => join(cacheDir, 'v1')

/** Records present on disk right now (committed entries), without verifying them. */
export function recordFiles(cacheDir: string): string[] {
  return listFiles(cacheRoot(cacheDir)).filter(p => /^[0-9a-f]{2}\/[0-9a-f]{64}\.json$/.test(p))
}

export function lockFiles(cacheDir: string): string[] {
  return listFiles(join(cacheRoot(cacheDir), 'locks'))
}

export function tempFiles(cacheDir: string): string[] {
  return listFiles(join(cacheRoot(cacheDir), 'tmp'))
}

/**
 * The cache's promise, checked file by file: every record points at an image whose bytes have the recorded size and
 * sha256 and are a complete PNG/JPEG/WebP; every file at a final image path is a complete image whose name carries
 * its own hash. Returns the verified records' keys. Throws, naming the file, on the first violation.
 */
export async function assertCacheConsistent(cacheDir: string): Promise<string[]> {
  const root = cacheRoot(cacheDir)
  const cache = new FileStore(cacheDir)
  const keys: string[] = []
  for (const p of listFiles(root)) {
    // roots/: which keys recent runs used (prune.test.ts); no image data.
    if (p.startsWith('tmp/') || p.startsWith('locks/') || p.startsWith('roots/')) continue
    const file = join(root, p)
    const record = /^[0-9a-f]{2}\/([0-9a-f]{64})\.json$/.exec(p)
    const image = /^[0-9a-f]{2}\/([0-9a-f]{64})-([0-9a-f]{16})\.(png|jpg|webp)$/.exec(p)
    // A web variant (#14): its record and its image, beside its source's and held to the same promise.
    const variantRecord = /^[0-9a-f]{2}\/([0-9a-f]{64})~([0-9a-f]{64})\.json$/.exec(p)
    const variantImage = /^[0-9a-f]{2}\/([0-9a-f]{64})~[0-9a-f]{64}-([0-9a-f]{16})\.(webp|avif)$/.exec(p)
    if (variantRecord) {
      const hit = await cache.getVariant(variantRecord[1]!, variantRecord[2]!)
      if (!hit || !(await cache.readVariant(hit))) throw new Error(`${p}: cache.getVariant/readVariant refuse a committed variant`)
    } else if (variantImage) {
      if (sha256(await readFile(file)).slice(0, 16) !== variantImage[2]) throw new Error(`${p}: bytes do not match the hash in the name`)
    } else if (record) {
      const parsed = JSON.parse(await readFile(file, 'utf8'))
      const bytes = await readFile(cache.imagePath(parsed))
      if (bytes.length !== parsed.size || sha256(bytes) !== parsed.sha256) throw new Error(`${p}: record does not match its image`)
      verifyImage(bytes)
      const hit = await cache.get(record[1]!)
      if (!hit || !(await cache.read(hit))) throw new Error(`${p}: cache.get/read refuse a committed entry`)
      keys.push(record[1]!)
    } else if (image) {
      const bytes = await readFile(file)
      if (sha256(bytes).slice(0, 16) !== image[2]) throw new Error(`${p}: bytes do not match the hash in the name`)
      if (verifyImage(bytes) !== image[3]) throw new Error(`${p}: extension does not match the bytes`)
    } else {
      throw new Error(`${p}: unexpected file in the cache`)
    }
  }
  return keys.sort()
}

/** sha256 of every image a build emitted (the bytes that would ship). */
export async function fileSha(path: string): Promise<string> {
  return sha256(await readFile(path))
}

export async function exists(path: string): Promise<boolean> {
  return !!(await stat(path).catch(() => undefined))
}

export async function readdirSafe(dir: string): Promise<string[]> {
  return readdir(dir).catch(() => [])
}

/** Every message and `cause` message down the chain, for leak checks. */
export function errorChain(error: unknown): string[] {
  const out: string[] = []
  const seen = new Set<unknown>()
  for (let e = error; e !== undefined && e !== null && !seen.has(e); e = (e as { cause?: unknown }).cause) {
    seen.add(e)
    if (e instanceof Error) out.push(e.name, e.message, e.stack ?? '', safeJson(Object.entries(e)))
    else out.push(String(e))
  }
  return out
}

/** The asset requests the scripts under root make, as the CLI computes them with these settings (256×256 default). */
export async function scanRequests(root: string, user: Omit<FluxAssetsOptions, 'root'> = {}): Promise<AssetRequest[]> {
  const engine = createEngine(resolveOptions({ width: 256, height: 256, logger: silent, ...user, root }, root, { env: {} }))
  return (await engine.scan()).requests
}

/** The cache keys the scripts under root ask for, sorted. */
export async function expectedKeys(root: string, user: Omit<FluxAssetsOptions, 'root'> = {}): Promise<string[]> {
  return [...new Set((await scanRequests(root, user)).map(r => r.key))].sort()
}

/** Each key's cache entry, verified by cache.get and verifyImage. Returns how many keys have a valid image. */
export async function validImages(cacheDir: string, keys: string[]): Promise<number> {
  const cache = new FileStore(cacheDir)
  let valid = 0
  for (const key of keys) {
    const hit = await cache.get(key)
    const bytes = hit && (await cache.read(hit))
    if (bytes && verifyImage(bytes) === hit.record.ext) valid++
  }
  return valid
}

function safeJson(value: unknown): string {
  try {
    return JSON.stringify(value) ?? ''
  } catch {
    return String(value)
  }
}

// ---------------------------------------------------------------- a real Vite build

/**
 * Writes a minimal app into root: index.html + main.js importing each given script with `?flux` and the
 * `virtual:flux-assets` manifest module, and putting `{ all, scripts }` on `globalThis.__FLUX_APP__`.
 */
export async function writeApp(root: string, scripts: string[]): Promise<void> {
  const imports = scripts.map((s, i) => `import s${i} from './${s}?flux'`).join('\n')
  const app = `{ all, scripts: [${scripts.map((_, i) => `s${i}`).join(', ')}] }`
  await writeFile(join(root, 'main.js'), `${imports}\nimport all from 'virtual:flux-assets'\nglobalThis.__FLUX_APP__ = ${app}\n`)
  await writeFile(join(root, 'index.html'), '<!doctype html><html><body><script type="module" src="./main.js"></script></body></html>\n')
}

/** `vite build` of root into outDir (written to disk) with the plugin and these options. Returns outDir. */
export async function viteBuild(root: string, options: FluxAssetsOptions, outDir = join(root, 'dist')): Promise<string> {
  const [{ build }, { default: flux }] = await Promise.all([import('vite'), import('../../src/vite')])
  await build({
    root,
    configFile: false,
    logLevel: 'silent',
    build: { outDir, emptyOutDir: true, modulePreload: { polyfill: false } },
    plugins: [flux({ width: 256, height: 256, logger: silent, ...options })],
  })
  return outDir
}

export interface ManifestEntry {
  script: string
  pointer: string
  id: string
  key: string
  file: string
  width: number
  height: number
  placeholder: boolean
}

export async function readManifest(outDir: string): Promise<ManifestEntry[]> {
  return JSON.parse(await readFile(join(outDir, 'flux-assets.json'), 'utf8')).entries
}

/** Files under dir whose bytes contain `needle` (UTF-8), relative paths. */
export function filesContaining(dir: string, needle: string): string[] {
  const bytes = Buffer.from(needle)
  return listFiles(dir).filter(p => readFileSync(join(dir, p)).includes(bytes))
}

/**
 * Imports a built Vite bundle (`<outDir>/assets/index-*.js`) in a fresh Node process and returns what `eval` (an
 * expression over `app`, the bundle's `__FLUX_APP__`) gives, through JSON.
 */
export function runViteBundle(outDir: string, evaluate = 'app'): unknown {
  const bundle = listFiles(outDir).find(f => /^assets\/index-[^/]*\.js$/.test(f))
  if (!bundle) throw new Error(`no bundle in ${outDir}`)
  const code = `await import(${JSON.stringify(pathToFileURL(join(outDir, bundle)).href)}); const app = globalThis.__FLUX_APP__; process.stdout.write(JSON.stringify(${evaluate}))`
  const result = spawnSync(process.execPath, ['--input-type=module', '-e', code], { encoding: 'utf8', env: {} })
  if (result.status !== 0) throw new Error(`bundle failed: ${result.stderr}`)
  return JSON.parse(result.stdout)
}
