// Issue 4, point 5: with a sentinel key, a 401 and every other error path is reported without the key appearing in
// stdout, stderr, error messages or their causes, records, the manifest, or any file; a 401 is not retried.
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { generateAssets } from '../../src/core/engine'
import type { FluxAssetsOptions } from '../../src/core/types'
import { startFakeTogether, type FakeTogether, type FakeTogetherOptions, type ForcedResponse } from '../fake-together.mjs'
import {
  errorChain,
  fakeEnv,
  filesContaining,
  makeTemp,
  readManifest,
  recordingLogger,
  removeTemp,
  runCli,
  SENTINEL,
  SIZE,
  scriptWith,
  STACK_LINE,
  viteBuild,
  writeApp,
  writeScripts,
} from './helpers'

let fake: FakeTogether | undefined
let root: string | undefined
afterEach(async () => {
  await fake?.close()
  await removeTemp(root)
  fake = root = undefined
})

interface Scenario {
  name: string
  fake?: FakeTogetherOptions
  /** Answers queued before every run (servers that echo what they were sent). */
  forced?: ForcedResponse[]
  /** CLI flags; `null`: the path has no CLI flag, tested through the API only. */
  args: string[] | null
  options?: FluxAssetsOptions
  message: RegExp
  /** Requests the fake must see per run, when that is part of the promise. */
  requests?: number
  /** An account-level failure: fails the run by default; the checks below run it with apiFailure 'placeholder'. */
  accountLevel?: boolean
}

const echo = (status: number, text: string, n = 6): ForcedResponse[] =>
  Array.from({ length: n }, () => ({ status, body: { error: { message: text, type: 'invalid_request_error' } } }))

/** Account-level failures, run as placeholders (apiFailure 'placeholder'); the default, a failed run, is checked too. */
const ACCOUNT = { args: ['--concurrency', '1', '--api-failure', 'placeholder'], options: { concurrency: 1, apiFailure: 'placeholder' as const }, accountLevel: true }

const SCENARIOS: Scenario[] = [
  // One at a time, so "exactly one request" shows both: a 401 is not retried, and nothing else is tried after it.
  { name: '401 (wrong key)', fake: { apiKeys: ['another-key'] }, ...ACCOUNT, message: /API key rejected \(401\)/, requests: 1 },
  { name: '401 whose body echoes the key', forced: echo(401, `Invalid API key: ${SENTINEL}`), ...ACCOUNT, message: /API key rejected \(401\): Invalid API key: \*\*\*/, requests: 1 },
  { name: '500 until retries run out', fake: { faults: { status500: 1 } }, args: ['--retries', '1'], options: { retries: 1 }, message: /the API answered 500: Internal server error/ },
  { name: '500 whose body echoes the Authorization header', forced: echo(500, `upstream said: Authorization: Bearer ${SENTINEL}`), args: ['--retries', '0'], options: { retries: 0 }, message: /the API answered 500: upstream said: Authorization: Bearer \*\*\*/ },
  { name: '502 HTML page echoing the key', forced: Array.from({ length: 6 }, () => ({ status: 502, body: `<html><body>Bad gateway for ${SENTINEL}</body></html>` })), args: ['--retries', '0'], options: { retries: 0 }, message: /the API answered 502: <html><body>Bad gateway for \*\*\*/ },
  { name: 'timeout', fake: { latencyMs: 5_000 }, args: null, options: { timeout: 300, retries: 0 }, message: /no answer from 127\.0\.0\.1:\d+ within 0\.3 s/ },
  { name: 'connection reset', fake: { faults: { reset: 1 } }, args: ['--retries', '0'], options: { retries: 0 }, message: /connection to 127\.0\.0\.1:\d+ failed \(/ },
  { name: '402 out of credits', fake: { credits: 0 }, ...ACCOUNT, message: /out of credits \(402\)/, requests: 1 },
  // The catalog unreadable (its error message goes through the same redaction), so the request is made and 404s.
  { name: '404 retired model', fake: { catalogResponse: { status: 503 } }, ...ACCOUNT, args: [...ACCOUNT.args, '--model', 'black-forest-labs/FLUX.1-schnell-Free'], options: { ...ACCOUNT.options, model: 'black-forest-labs/FLUX.1-schnell-Free' }, message: /model "black-forest-labs\/FLUX.1-schnell-Free" is not available \(404\)/, requests: 1 },
  { name: 'image URL on a foreign http origin', fake: { urlBase: 'http://images.example.invalid/shrt/' }, args: ['--response-format', 'url'], options: { responseFormat: 'url' }, message: /refusing to download http:\/\/images\.example\.invalid/ },
]

const noKey = (text: string) => expect(text.includes(SENTINEL), `the key leaked into:\n${text}`).toBe(false)

describe('the API key never leaks', () => {
  it.each(SCENARIOS)('$name', async scenario => {
    fake = await startFakeTogether(scenario.fake ?? {})
    root = await makeTemp('secrets')
    await writeScripts(root, { 'a.script.json': scriptWith(3, 'secret') })
    await writeApp(root, ['a.script.json'])
    const f = fake
    const fresh = () => {
      f.reset()
      if (scenario.forced) f.enqueue(...scenario.forced)
    }
    const checkRequests = () => scenario.requests !== undefined && expect(f.stats.generationRequests).toBe(scenario.requests)
    const base: FluxAssetsOptions = { root, apiKey: SENTINEL, baseURL: f.baseURL, width: 256, height: 256, ...scenario.options }

    if (scenario.args) {
      for (const strict of [false, true]) {
        fresh()
        const run = await runCli(['generate', ...SIZE, ...scenario.args, ...(strict ? ['--strict'] : [])], { cwd: root, env: fakeEnv(f.baseURL) })
        expect(run.code, run.stderr).toBe(strict ? 1 : 0)
        expect(run.stderr).toMatch(scenario.message)
        expect(run.stderr).not.toMatch(STACK_LINE)
        noKey(run.stdout + run.stderr)
        checkRequests()
      }
      if (scenario.accountLevel) {
        fresh()
        const failed = await runCli(['generate', ...SIZE, ...scenario.args.filter(a => a !== '--api-failure' && a !== 'placeholder')], { cwd: root, env: fakeEnv(f.baseURL) })
        expect(failed.code, failed.stderr).toBe(1)
        expect(failed.stderr).toMatch(scenario.message)
        expect(failed.stderr).not.toMatch(STACK_LINE)
        noKey(failed.stdout + failed.stderr)
      }
    }

    // The API: records, logger lines, the thrown error and its whole cause chain.
    fresh()
    const logger = recordingLogger()
    const result = await generateAssets({ ...base, logger })
    expect(result.assets.every(a => a.placeholder && scenario.message.test(a.error ?? ''))).toBe(true)
    noKey(JSON.stringify(result))
    noKey(logger.lines.join('\n'))
    checkRequests()

    fresh()
    const error = await generateAssets({ ...base, logger, strict: true }).then(() => undefined, (e: unknown) => e)
    expect((error as Error)?.message).toMatch(scenario.message)
    noKey(errorChain(error).join('\n'))

    // A build: the manifest and every file it wrote (placeholder SVGs carry the reason).
    fresh()
    const outDir = await viteBuild(root, { ...base, root: undefined, logger })
    expect((await readManifest(outDir)).every(e => e.placeholder)).toBe(true)
    noKey(logger.lines.join('\n'))

    // Nothing on disk anywhere in the project: cache, records, output, manifest.
    expect(filesContaining(root, SENTINEL)).toEqual([])
    expect(filesContaining(join(root, 'dist'), 'placeholder')).not.toEqual([])
  })
})
