import type { Logger, Progress } from './types'

/** Whether `DEBUG` asks for our info lines (`DEBUG=flux-assets`, or `*`). */
export const debugEnabled = (): boolean => /\bflux-assets\b|^\*$/.test(process.env.DEBUG ?? '')

/** Where messages go right now: a bundler's logger once known (`named`: it already names the plugin itself). */
export interface Sink {
  logger?: Partial<Logger>
  named?: boolean
}

/**
 * The one `[flux-assets]` logger. Messages go to the sink's logger (Vite's, Rollup's, webpack's), else the console.
 * The prefix is left off where the bundler names the plugin itself (Rollup, webpack). Info without a sink goes to the
 * console only when `consoleInfo` says so (the API and CLI: only under DEBUG).
 */
export function createLogger(sink: () => Sink = () => ({}), consoleInfo: () => boolean = debugEnabled): Logger {
  const say = (level: 'info' | 'warn' | 'error') => (message: string) => {
    const { logger, named } = sink()
    const text = named ? message : `[flux-assets] ${message}`
    // Called as a method: webpack's logger needs its `this`.
    if (logger?.[level]) logger[level](text)
    else if (level !== 'info' || consoleInfo()) console[level](text)
  }
  const info = say('info')
  // Detail (retries) only when asked for, whatever the sink.
  return { info, warn: say('warn'), error: say('error'), debug: message => debugEnabled() && info(message) }
}

/**
 * A build's progress while it generates (nothing for an all-cached build): in a terminal one line redrawn in place
 * (done / total, generating, failed, spent so far), otherwise a line every `everyMs` at most, so CI logs stay short.
 */
export function progressReporter(info: (message: string) => void, stream: NodeJS.WriteStream = process.stderr, everyMs = 5_000) {
  const tty = stream.isTTY === true && !process.env.CI
  // The first line after `everyMs` too: a build that generates for a few seconds says nothing but its summary.
  let last = Date.now()
  let shown = false
  return (p: Progress) => {
    const working = p.generating > 0 || p.generated > 0 || p.failed > 0
    if (!working) return
    const line = `${p.done}/${p.total} · ${p.generating} generating · ${p.failed} failed · ${p.spent === null ? 'cost unknown' : `$${p.spent.toFixed(3)} spent`}`
    if (tty) {
      stream.write(p.done === p.total ? (shown ? '\r\x1b[K' : '') : `\r\x1b[K[flux-assets] ${line}`)
      shown = p.done !== p.total
    } else if (p.done < p.total && Date.now() - last >= everyMs) {
      last = Date.now()
      info(line)
    }
  }
}
