// Shared by the benchmarks: scratch folders, the dist snapshot, child processes that time themselves, statistics,
// the machine description and the results table. node: built-ins only.
import { spawn } from 'node:child_process'
import { cp, mkdir, readdir, rm, stat, writeFile } from 'node:fs/promises'
import { cpus, loadavg, totalmem } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const BENCH = fileURLToPath(new URL('.', import.meta.url))
export const REPO = join(BENCH, '..')
export const CHILD = join(BENCH, 'child.mjs')
/** Never shaped like a real key. */
export const API_KEY = 'sk-test-SENTINEL-1234567890'

/**
 * A scratch folder for this run under bench/.tmp/, holding a private copy of dist/: another engineer's `tsup`
 * (which cleans dist/) cannot pull the code out from under a run that takes minutes.
 */
export async function createRun() {
  const dir = join(BENCH, '.tmp', `run-${process.pid}-${Date.now().toString(36)}`)
  const dist = join(dir, 'dist')
  await stat(join(REPO, 'dist', 'index.js')).catch(() => {
    throw new Error('dist/ is missing: run `npx tsup` (or `npm run bench`, which builds first)')
  })
  await mkdir(dir, { recursive: true })
  await cp(join(REPO, 'dist'), dist, { recursive: true })
  return { dir, dist, remove: () => rm(dir, { recursive: true, force: true, maxRetries: 3 }) }
}

/**
 * Runs one task of child.mjs in a fresh Node process and returns the JSON it prints last. The child times its own
 * work: process start and module loading are never in the figures unless a task says so.
 * @param {string} task @param {Record<string, unknown>} args @param {{ execArgv?: string[], timeoutMs?: number }} [options]
 */
export function runChild(task, args, options = {}) {
  return new Promise((resolve, reject) => {
    const env = { ...process.env }
    for (const name of ['TOGETHER_API_KEY', 'TOGETHER_BEARER_TOKEN', 'TOGETHER_BASE_URL', 'DEBUG']) delete env[name]
    // BENCH_CHILD_FLAGS='--cpu-prof --cpu-prof-dir=bench/.tmp/prof' profiles every measured process.
    const flags = process.env.BENCH_CHILD_FLAGS?.split(/\s+/).filter(Boolean) ?? []
    const child = spawn(process.execPath, [...flags, ...(options.execArgv ?? []), CHILD, task, JSON.stringify(args)], {
      cwd: REPO,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let out = ''
    let err = ''
    child.stdout.on('data', d => (out += d))
    child.stderr.on('data', d => (err += d))
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 180_000)
    child.on('error', reject)
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      const last = out.trim().split('\n').at(-1) ?? ''
      if (code !== 0) return reject(new Error(`bench child ${task} exited ${code ?? signal}:\n${err.slice(-4000)}${out.slice(-2000)}`))
      try {
        resolve(JSON.parse(last))
      } catch {
        reject(new Error(`bench child ${task} printed no JSON:\n${out.slice(-2000)}\n${err.slice(-2000)}`))
      }
    })
  })
}

/** @param {number[]} values */
export function median(values) {
  const s = [...values].sort((a, b) => a - b)
  const mid = s.length >> 1
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2
}

/** @param {number} n @param {number} [digits] */
export const round = (n, digits = 0) => Math.round(n * 10 ** digits) / 10 ** digits

export function machine() {
  const cpu = cpus()[0]?.model?.trim() || 'unknown'
  return {
    nproc: cpus().length,
    cpu,
    memoryGb: round(totalmem() / 2 ** 30, 1),
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
    loadAverage: loadavg().map(l => round(l, 2)),
  }
}

/** Writes many small files with a bounded number in flight. @param {Array<[string, string | Uint8Array]>} files */
export async function writeFiles(files, concurrency = 32) {
  const dirs = new Set(files.map(([path]) => join(path, '..')))
  for (const dir of dirs) await mkdir(dir, { recursive: true })
  let next = 0
  const worker = async () => {
    while (next < files.length) {
      const [path, data] = files[next++]
      await writeFile(path, data)
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker))
}

/** Every file under dir, recursively (absolute paths). @param {string} dir @returns {Promise<string[]>} */
export async function listFiles(dir) {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true }).catch(() => [])
  return entries.filter(e => e.isFile()).map(e => join(e.parentPath ?? e.path, e.name))
}

/** Runs fn over items with a bounded number in flight. @template T @param {T[]} items @param {(item: T) => Promise<unknown>} fn */
export async function pool(items, fn, concurrency = 16) {
  let next = 0
  const worker = async () => {
    while (next < items.length) await fn(items[next++])
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker))
}

/**
 * A plain-text table.
 * @param {string[]} head @param {Array<Array<string | number>>} rows
 */
export function table(head, rows) {
  const cells = [head, ...rows.map(r => r.map(String))]
  const widths = head.map((_, i) => Math.max(...cells.map(r => (r[i] ?? '').length)))
  const line = (/** @type {string[]} */ r) => r.map((c, i) => (c ?? '').padEnd(widths[i])).join('  ').trimEnd()
  return [line(head), widths.map(w => '-'.repeat(w)).join('  '), ...cells.slice(1).map(line)].join('\n')
}

/** @param {number} ms */
export const seconds = ms => `${(ms / 1000).toFixed(2)} s`
/** @param {number} bytes */
export const mb = bytes => `${(bytes / 2 ** 20).toFixed(1)} MB`
