import fs, { type Stats } from 'node:fs'

/**
 * `readFile` and `stat` over Node's callback API, for the many small reads of a scan and a cache check (10,000
 * scripts, 20,000 records and images). `fs/promises`' readFile goes through a FileHandle (open, fstat, read, close,
 * each its own promise): measured on the bench's 2-core machine, 10,000 scripts took 0.7–0.9 s with it and 0.5 s
 * with this, 20,000 record reads + stats 1.8–2.3 s against 0.8 s (bench/README.md, scenario 3). Same semantics,
 * same errors; callers still bound how many run at once. `fs.readFile` is looked up per call, so tests can stub it.
 * The scan and the store's `get` have since moved to sync calls in `inBatches` (below): cheaper still; these serve the
 * rest (a `?flux` load's changed scripts in dev, variant records, a get's async path).
 */
export function readText(path: string): Promise<string> {
  return new Promise((resolve, reject) => fs.readFile(path, 'utf8', (error, text) => (error ? reject(error) : resolve(text))))
}

export function statOf(path: string): Promise<Stats> {
  return new Promise((resolve, reject) => fs.stat(path, (error, info) => (error ? reject(error) : resolve(info))))
}

/** A file's text and the size + mtime of what was read (from the open file: they describe exactly those bytes). */
export interface ReadWithStat {
  text: string
  size: number
  mtimeMs: number
}

/**
 * `readText` that also says what it read: open, fstat, read, close, as `fs.readFile` does inside (no extra system
 * call). The typed-scripts declarations use it to know later, by a stat, whether a script changed since.
 */
export function readTextWithStat(path: string): Promise<ReadWithStat> {
  return new Promise((resolve, reject) => {
    fs.open(path, 'r', (openError, fd) => {
      if (openError) return reject(openError)
      const fail = (error: Error) => fs.close(fd, () => reject(error))
      fs.fstat(fd, (statError, info) => {
        if (statError) return fail(statError)
        if (!info.isFile()) return fail(Object.assign(new Error(`EISDIR: illegal operation on a directory, read '${path}'`), { code: 'EISDIR' }))
        const chunks: Buffer[] = []
        let total = 0
        // As fs.readFile: the size fstat gave, read to the end of it (a size of 0: until the end of file).
        const next = () => {
          const length = info.size > 0 ? info.size - total : 64 * 1024
          fs.read(fd, Buffer.allocUnsafe(length), 0, length, null, (readError, n, buffer) => {
            if (readError) return fail(readError)
            if (n > 0) chunks.push(n === length ? buffer : buffer.subarray(0, n))
            total += n
            if (n > 0 && (info.size === 0 || total < info.size)) return next()
            fs.close(fd, closeError => (closeError ? reject(closeError) : resolve({ text: Buffer.concat(chunks, total).toString('utf8'), size: info.size, mtimeMs: info.mtimeMs })))
          })
        }
        next()
      })
    })
  })
}

/**
 * `readTextWithStat`, synchronously: open, fstat, read to the size fstat gave (to the end of file when it says 0),
 * close. For the scan's many small files, run in `inBatches` so no batch holds the event loop longer than BATCH_MS.
 */
export function readTextWithStatSync(path: string): ReadWithStat {
  const fd = fs.openSync(path, 'r')
  try {
    const info = fs.fstatSync(fd)
    if (!info.isFile()) throw Object.assign(new Error(`EISDIR: illegal operation on a directory, read '${path}'`), { code: 'EISDIR' })
    const chunks: Buffer[] = []
    let total = 0
    for (;;) {
      const length = info.size > 0 ? info.size - total : 64 * 1024
      if (length <= 0) break
      const buffer = Buffer.allocUnsafe(length)
      const n = fs.readSync(fd, buffer, 0, length, null)
      if (n === 0) break
      chunks.push(n === length ? buffer : buffer.subarray(0, n))
      total += n
    }
    return { text: chunks.length === 1 ? chunks[0]!.toString('utf8') : Buffer.concat(chunks, total).toString('utf8'), size: info.size, mtimeMs: info.mtimeMs }
  } finally {
    fs.closeSync(fd)
  }
}

/**
 * Longest a batch of synchronous small-file work (script reads, cache records, image stats) may hold the event loop,
 * in ms. The sync calls cost a third of the thread pool's round trips on a 2-core machine (bench scenario 3's floor);
 * batches keep a dev server that runs the same scan responsive: between two batches its other callbacks run. Vite
 * does the same kind of call in its own resolver (8.3: `tryCleanFsResolve` → `tryStatSync`, i.e. `fs.statSync`, and
 * `safeRealpathSync`; `loadPackageData` → `fs.readFileSync`), one small file at a time.
 */
export const BATCH_MS = 5

/**
 * Runs `each` over `items` synchronously, in batches of at most `budgetMs` (at least one item each), yielding to the
 * event loop (setImmediate: I/O callbacks and timers run in between) after every batch but the last. An `each` that
 * throws rejects the whole run.
 */
export async function inBatches<T>(items: readonly T[], each: (item: T, index: number) => void, budgetMs = BATCH_MS): Promise<void> {
  let i = 0
  while (i < items.length) {
    const until = performance.now() + budgetMs
    do each(items[i]!, i++)
    while (i < items.length && performance.now() < until)
    if (i < items.length) await new Promise<void>(resolve => setImmediate(resolve))
  }
}

/**
 * `inBatches` for work that arrives one call at a time (a build's image reads): `await due()` before each piece of
 * sync work; once BATCH_MS has been spent since the last turn, the event loop gets one (setImmediate). Callers that
 * wait on the same turn re-check the budget when they wake, so the first one's work counts for the others.
 */
export class SyncBudget {
  private until = 0
  private turn: Promise<void> | undefined

  constructor(private readonly budgetMs = BATCH_MS) {}

  async due(): Promise<void> {
    while (performance.now() > this.until) {
      if (!this.until) {
        this.until = performance.now() + this.budgetMs
        return
      }
      await (this.turn ??= new Promise<void>(resolve => setImmediate(resolve)).then(() => {
        this.turn = undefined
        this.until = performance.now() + this.budgetMs
      }))
    }
  }
}
