import { randomBytes } from 'node:crypto'
import { readdir, readFile, rm, stat } from 'node:fs/promises'
import { hostname } from 'node:os'
import { join } from 'node:path'

/** How long a run's keys protect their entries from `prune`. */
export const ROOTS_MAX_AGE_MS = 30 * 24 * 60 * 60_000
/** Names this module makes, and the only ones it ever deletes. */
const RUN_FILE = /^run-[0-9a-z-]+\.json$/

/**
 * Which cache keys each build and CLI run used: one small file per run (`<dir>/run-<time>-<host>-<pid>-<random>.json`,
 * rewritten with every key the run has used so far), kept `maxAgeMs` after the run's last use. `prune` never deletes
 * a key listed here, whatever settings it was given: a build's settings the CLI does not know cannot cost its images.
 * The folder ignores itself for git (`.gitignore`: `*`), so builds never dirty a committed cache. The store gives it
 * its folder and its atomic write; it knows nothing of images.
 */
export class Roots {
  constructor(
    private readonly dir: string,
    private readonly write: (file: string, bytes: Buffer) => Promise<void>,
    private readonly maxAgeMs = ROOTS_MAX_AGE_MS,
    private readonly now: () => number = Date.now,
  ) {}

  /** A new run's id: its file name. */
  newRun(): string {
    const host = hostname().toLowerCase().replace(/[^0-9a-z]+/g, '-').slice(0, 40)
    const time = new Date(this.now()).toISOString().slice(0, 19).replace(/[^0-9]/g, '')
    return `run-${time}-${host}-${process.pid}-${randomBytes(4).toString('hex')}.json`
  }

  /** Writes the run's file with these keys (all the run used so far). */
  async record(run: string, keys: Iterable<string>): Promise<void> {
    const ignore = join(this.dir, '.gitignore')
    if (!(await stat(ignore).catch(() => undefined))) await this.write(ignore, Buffer.from('# Written by flux-assets: which keys recent runs used (for prune). Never commit.\n*\n'))
    const body = { version: 1, at: new Date(this.now()).toISOString(), keys: [...new Set(keys)].sort() }
    await this.write(join(this.dir, run), Buffer.from(`${JSON.stringify(body)}\n`))
  }

  /** Every key a run used within `maxAgeMs`. An unreadable run file protects nothing but is not an error. */
  async keys(): Promise<Set<string>> {
    const keys = new Set<string>()
    for (const name of await this.runs()) {
      const path = join(this.dir, name)
      const info = await stat(path).catch(() => undefined)
      if (!info || this.now() - info.mtimeMs > this.maxAgeMs) continue
      const parsed = await readFile(path, 'utf8')
        .then(t => JSON.parse(t) as { keys?: unknown })
        .catch(() => undefined)
      if (Array.isArray(parsed?.keys)) for (const key of parsed.keys) if (typeof key === 'string') keys.add(key)
    }
    return keys
  }

  /** Removes run files older than `maxAgeMs`. Returns how many. */
  async expire(): Promise<number> {
    let removed = 0
    for (const name of await this.runs()) {
      const path = join(this.dir, name)
      const info = await stat(path).catch(() => undefined)
      if (info && this.now() - info.mtimeMs > this.maxAgeMs) {
        await rm(path, { force: true })
        removed++
      }
    }
    return removed
  }

  private async runs(): Promise<string[]> {
    return (await readdir(this.dir).catch(() => [] as string[])).filter(name => RUN_FILE.test(name))
  }
}
