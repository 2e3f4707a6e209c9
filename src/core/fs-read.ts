import fs, { type Stats } from 'node:fs'

/**
 * `readFile` and `stat` over Node's callback API, for the many small reads of a scan and a cache check (10,000
 * scripts, 20,000 records and images). `fs/promises`' readFile goes through a FileHandle (open, fstat, read, close,
 * each its own promise): measured on the bench's 2-core machine, 10,000 scripts took 0.7–0.9 s with it and 0.5 s
 * with this, 20,000 record reads + stats 1.8–2.3 s against 0.8 s (bench/README.md, scenario 3). Same semantics,
 * same errors; callers still bound how many run at once. `fs.readFile` is looked up per call, so tests can stub it.
 */
export function readText(path: string): Promise<string> {
  return new Promise((resolve, reject) => fs.readFile(path, 'utf8', (error, text) => (error ? reject(error) : resolve(text))))
}

export function statOf(path: string): Promise<Stats> {
  return new Promise((resolve, reject) => fs.stat(path, (error, info) => (error ? reject(error) : resolve(info))))
}
