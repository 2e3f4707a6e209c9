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
