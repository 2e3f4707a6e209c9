import type { Logger } from './types'

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
  const say = (level: keyof Logger) => (message: string) => {
    const { logger, named } = sink()
    const text = named ? message : `[flux-assets] ${message}`
    // Called as a method: webpack's logger needs its `this`.
    if (logger?.[level]) logger[level](text)
    else if (level !== 'info' || consoleInfo()) console[level](text)
  }
  return { info: say('info'), warn: say('warn'), error: say('error') }
}
