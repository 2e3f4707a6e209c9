// The `flux-assets` command: `main(argv, io)` in-process for output and exit codes, plus a few runs of the CLI as
// tsup builds it, in a real child process.
import { spawn } from 'node:child_process'
import { readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { main } from '../src/core/cli'
import { formatCost } from '../src/core/price'
import { formatSummary } from '../src/core/summary'
import { SAFETY_MARKER, startFakeTogether, type FakeTogether } from './fake-together.mjs'
import { API_KEY, cachedKeys, captureIO, engineFor, generationBodies, REPO, removeDir, scene, tempDir, TMP, writeScripts } from './core-helpers'

const ENV_NAMES = ['TOGETHER_API_KEY', 'TOGETHER_BEARER_TOKEN', 'TOGETHER_BASE_URL'] as const
const SIZE = ['--width', '256', '--height', '256']
/** `N assets · g generated · c cached · p placeholders · t s · est. $x` (the cost part checked separately). */
const SUMMARY = /^(\d+) assets?(?: \(\d+ images?\))? · (\d+) generated · (\d+) cached · (\d+) placeholders?(?: · \d+ failed)? · \d+\.\d s · (est\. \$\d+\.\d+|cost unknown)$/
const STACK_LINE = /^\s+at .+[(:]\d*/m

let fake: FakeTogether
let root: string
const saved: Partial<Record<(typeof ENV_NAMES)[number], string>> = {}
beforeEach(async () => {
  // main() reads process.env: only what a test sets there counts.
  for (const name of ENV_NAMES) {
    saved[name] = process.env[name]
    delete process.env[name]
  }
  fake = await startFakeTogether()
  root = await tempDir('cli')
})
afterEach(async () => {
  for (const name of ENV_NAMES) {
    delete process.env[name]
    if (saved[name] !== undefined) process.env[name] = saved[name]
  }
  await fake.close()
  await removeDir(root)
})

/** The fake's base URL and the sentinel key, the way a user sets them: in the environment. */
function useFake() {
  process.env.TOGETHER_API_KEY = API_KEY
  process.env.TOGETHER_BASE_URL = fake.baseURL
}

/** Runs `flux-assets <command> --root <root> ...args` in-process. */
async function cli(args: string[], { tty = false, withRoot = true } = {}) {
  const { stdout, stderr, io } = captureIO(tty)
  const code = await main(withRoot ? [...args, '--root', root] : args, io)
  return { code, stdout: stdout.text, stderr: stderr.text }
}

/** What a terminal shows of stderr: per line, the text after the last clear-line sequence. */
const screen = (text: string) => text.split('\n').map(line => line.split('\r\x1b[K').at(-1)!)

const THREE = () => writeScripts(root, { 'a.script.json': scene({ a: 'cli one', b: 'cli two' }), 'sub/b.script.json': scene({ c: 'cli three' }) })

describe('generate', () => {
  it('fills the cache and prints one summary line; the second run generates nothing', async () => {
    useFake()
    await THREE()
    const first = await cli(['generate', ...SIZE])
    expect(first.code, first.stderr).toBe(0)
    expect(first.stderr).toBe('')
    const lines = first.stdout.split('\n')
    expect(lines).toHaveLength(2)
    expect(lines[1]).toBe('')
    const [, assets, generated, cached, placeholders, cost] = SUMMARY.exec(lines[0]!) ?? []
    expect([assets, generated, cached, placeholders]).toEqual(['3', '3', '0', '0'])
    expect(cost).toBe('est. $0.046') // 3 × FLUX.2 [dev] at $0.0154 per image (the fake's catalog price)
    expect(fake.stats.generations).toBe(3)
    expect(await cachedKeys(join(root, '.flux-cache'))).toHaveLength(3)

    const second = await cli(['generate', ...SIZE])
    expect(second.code).toBe(0)
    expect(second.stdout).toMatch(/^3 assets · 0 generated · 3 cached · 0 placeholders · \d+\.\d s · est\. \$0\.000\n$/)
    expect(fake.stats.generations).toBe(3)
  })

  it('is the default command', async () => {
    useFake()
    await THREE()
    const run = await cli([...SIZE])
    expect(run.code).toBe(0)
    expect(run.stdout).toMatch(/^3 assets · 3 generated/)
  })

  it('the summary has the issue\'s shape: `12 assets · 3 generated · 9 cached · 0 placeholders · 4.1 s · est. $0.008`', () => {
    const line = formatSummary({ assets: 12, unique: 12, generated: 3, paid: 3, cached: 9, placeholders: 0, failed: 0, durationMs: 4100, estimatedCost: 0.008 })
    expect(line).toBe('12 assets · 3 generated · 9 cached · 0 placeholders · 4.1 s · est. $0.008')
    expect(line).toMatch(SUMMARY)
    expect(['est. $0.0064', 'est. $0.000033', 'est. $0.017', 'est. $0.000', 'est. $12.35']).toEqual([0.00637, 0.0000332, 0.017, 0, 12.345].map(formatCost))
    expect(formatSummary({ assets: 1, unique: 1, generated: 1, paid: 1, cached: 0, placeholders: 1, failed: 1, durationMs: 50, estimatedCost: null })).toBe(
      '1 asset · 1 generated · 0 cached · 1 placeholder · 1 failed · 0.1 s · cost unknown',
    )
  })

  it('--json prints a machine-readable summary and the records on stdout, and nothing else', async () => {
    useFake()
    await THREE()
    const run = await cli(['generate', ...SIZE, '--json'])
    expect(run.code).toBe(0)
    expect(run.stderr).toBe('')
    const out = JSON.parse(run.stdout)
    expect(out.summary).toMatchObject({ assets: 3, unique: 3, generated: 3, cached: 0, placeholders: 0, failed: 0, estimatedCost: expect.any(Number) })
    expect(out.assets).toHaveLength(3)
    expect(out.assets[0]).toMatchObject({ script: 'a.script.json', pointer: '/visual_track/0/assets/a', id: 'a', prompt: 'cli one', placeholder: false, width: 256, height: 256 })
    expect(out.assets.map((a: { file: string }) => a.file.startsWith(join(root, '.flux-cache')))).toEqual([true, true, true])
  })

  it('an unknown model says "cost unknown" instead of a price, and once that its parameters are unknown', async () => {
    useFake()
    await THREE()
    // Served and listed by the fake without a price, unknown to the plugin's profiles.
    fake.set({ extraModels: [{ id: 'acme/unknown-model' }] })
    const run = await cli(['generate', ...SIZE, '--model', 'acme/unknown-model'])
    expect(run.code).toBe(0)
    expect(run.stdout).toMatch(/^3 assets · 3 generated · 0 cached · 0 placeholders · \d+\.\d s · cost unknown\n$/)
    expect(run.stderr.match(/is not in this plugin's table/g)).toHaveLength(1)
    expect(generationBodies(fake).map(b => b.model)).toEqual(['acme/unknown-model', 'acme/unknown-model', 'acme/unknown-model'])
    const status = await cli(['status', ...SIZE, '--model', 'acme/other-unknown'])
    expect(status.stdout).toMatch(/3 missing \(cost unknown\)\n$/)
  })

  it('passes the flags on: --model, --width, --height, --steps, --response-format, --concurrency, --include, --cache-dir', async () => {
    useFake()
    fake.set({ extraModels: [{ id: 'acme/m' }] })
    await writeScripts(root, { 'keep/x.script.json': scene({ x: 'flag x', y: 'flag y' }), 'skip/z.script.json': scene({ z: 'flag z' }) })
    const run = await cli(['generate', '--model', 'acme/m', '--width', '128', '--height', '72', '--steps', '2', '--response-format', 'url', '--concurrency', '1', '--include', 'keep/**/*.script.json', '--cache-dir', 'my-cache', '--json'])
    expect(run.code, run.stderr).toBe(0)
    const bodies = fake.log.filter(e => e.method === 'POST').map(e => e.body)
    expect(bodies).toEqual([
      { model: 'acme/m', prompt: 'flag x', width: 128, height: 72, steps: 2, n: 1, response_format: 'url', output_format: 'jpeg' },
      { model: 'acme/m', prompt: 'flag y', width: 128, height: 72, steps: 2, n: 1, response_format: 'url', output_format: 'jpeg' },
    ])
    expect(fake.stats.maxInFlight).toBe(1)
    expect(fake.stats.downloads).toBe(2)
    expect(await cachedKeys(join(root, 'my-cache'))).toHaveLength(2)
    expect(await cachedKeys(join(root, '.flux-cache'))).toEqual([])
  })

  it('reads the key and base URL from <root>/.env', async () => {
    await THREE()
    await writeScripts(root, { '.env': `TOGETHER_API_KEY=${API_KEY}\nTOGETHER_BASE_URL=${fake.baseURL}\n` })
    const run = await cli(['generate', ...SIZE])
    expect(run.code).toBe(0)
    expect(run.stdout).toMatch(/^3 assets · 3 generated/)
    expect(fake.log.find(e => e.method === 'POST')!.headers.authorization).toBe(`Bearer ${API_KEY}`)
  })
})

describe('output a person can follow', () => {
  it('in a TTY: a progress line on stderr (done/total, cached, generated, generating, failed), cleared before the summary', async () => {
    useFake()
    await THREE()
    const run = await cli(['generate', ...SIZE], { tty: true })
    expect(run.code).toBe(0)
    const updates = run.stderr.split('\r\x1b[K').filter(Boolean)
    expect(updates.length).toBeGreaterThan(1)
    for (const u of updates) expect(u).toMatch(/^\d\/3 · \d cached · \d generated · \d generating · \d failed$/)
    expect(updates[0]).toBe('0/3 · 0 cached · 0 generated · 0 generating · 0 failed')
    expect(updates.at(-1)).toBe('3/3 · 0 cached · 3 generated · 0 generating · 0 failed')
    expect(run.stderr.endsWith('\r\x1b[K')).toBe(true) // the line is cleared, the summary stands alone
    expect(run.stdout.trimEnd()).toMatch(SUMMARY)
  })

  it('in a TTY, with a failure: the progress line counts it as failed, never as generated, and agrees with the summary', async () => {
    useFake()
    await THREE()
    // One image's own failure (a 400 for its prompt): not retried, the other two are made.
    fake.enqueue({ status: 400 })
    const run = await cli(['generate', ...SIZE], { tty: true })
    expect(run.code).toBe(0)
    const last = run.stderr.split('\r\x1b[K').filter(u => /^\d\/3 · /.test(u)).at(-1)
    expect(last).toBe('3/3 · 0 cached · 2 generated · 0 generating · 1 failed')
    expect(run.stdout.trimEnd()).toMatch(/^3 assets · 2 generated · 0 cached · 1 placeholder · 1 failed · /)
    expect(fake.stats.generations).toBe(2)
  })

  it('not a TTY (or --json): no progress line, no control characters', async () => {
    useFake()
    await THREE()
    const plain = await cli(['generate', ...SIZE])
    expect(plain.stderr).toBe('')
    // eslint-disable-next-line no-control-regex
    expect(plain.stdout).not.toMatch(/[\r\x1b]/)
    const json = await cli(['generate', ...SIZE, '--json', '--cache-dir', 'other'], { tty: true })
    expect(json.stderr).toBe('')
    expect(() => JSON.parse(json.stdout)).not.toThrow()
  })

  it('one line per failure naming script, id and the API message; exit 0 without --strict', async () => {
    useFake()
    // One image's own failure: the provider's safety system refuses its prompt (422).
    await writeScripts(root, { 'a.script.json': scene({ ok: 'fine', broken: `a refused prompt ${SAFETY_MARKER}` }) })
    const run = await cli(['generate', ...SIZE], { tty: true })
    expect(run.code).toBe(0)
    const lines = screen(run.stderr).filter(l => l.startsWith('flux-assets:'))
    expect(lines).toEqual([
      "flux-assets: a.script.json: broken: the provider's safety system refused the prompt (422): The prompt was flagged by the safety checker and no image was generated.",
    ])
    expect(run.stdout).toMatch(/^2 assets · 1 generated · 0 cached · 1 placeholder · 1 failed · /)
  })

  it('--verbose also prints retries', async () => {
    useFake()
    await writeScripts(root, { 'a.script.json': scene({ a: 'retry once' }) })
    fake.enqueue({ status: 503 })
    const quiet = await cli(['generate', ...SIZE])
    expect(quiet.stderr).toBe('')
    fake.enqueue({ status: 503 })
    const verbose = await cli(['generate', ...SIZE, '--verbose', '--cache-dir', 'c2'])
    expect(verbose.stderr).toMatch(/^flux-assets: a\.script\.json: a: the API answered 503: .+; retry 1 in \d+ ms\n$/)
  })

  it('no key: placeholders, exactly one warning, exit 0', async () => {
    process.env.TOGETHER_BASE_URL = fake.baseURL
    await THREE()
    const run = await cli(['generate', ...SIZE])
    expect(run.code).toBe(0)
    expect(run.stderr).toBe('flux-assets: 3 images are not cached and no API key is set (TOGETHER_API_KEY): using placeholders\n')
    expect(run.stdout).toMatch(/^3 assets · 0 generated · 0 cached · 3 placeholders · \d+\.\d s · est\. \$0\.000\n$/)
    expect(fake.stats.generationRequests).toBe(0)
  })

  it('--offline: no request, placeholders for what is missing', async () => {
    useFake()
    await THREE()
    const run = await cli(['generate', ...SIZE, '--offline'])
    expect(run.code).toBe(0)
    expect(run.stderr).toBe('flux-assets: 3 images are not cached and offline mode is on: using placeholders\n')
    expect(fake.stats.generationRequests).toBe(0)
  })
})

describe('exit codes', () => {
  it('--strict with placeholders: 1, listing each asset with its reason', async () => {
    await THREE()
    const run = await cli(['generate', ...SIZE, '--strict'])
    expect(run.code).toBe(1)
    expect(run.stderr).toContain('flux-assets: strict: 3 images are placeholders, and strict allows none:\n')
    for (const where of ['a.script.json /visual_track/0/assets/a', 'a.script.json /visual_track/0/assets/b', 'sub/b.script.json /visual_track/0/assets/c']) {
      expect(run.stderr).toContain(`  ${where}: no API key (set TOGETHER_API_KEY)\n`)
    }
    expect(run.stdout).toBe('')
    // All cached: strict passes.
    useFake()
    expect((await cli(['generate', ...SIZE])).code).toBe(0)
    expect((await cli(['generate', ...SIZE, '--strict', '--offline'])).code).toBe(0)
  })

  it('a budget stop: 1, naming the count and the estimated cost, before any request', async () => {
    useFake()
    await THREE()
    const run = await cli(['generate', '--max-new-images', '2'])
    expect(run.code).toBe(1)
    expect(run.stderr).toBe(
      'flux-assets: 3 new images would be generated (est. $0.046), more than maxNewImages (2): nothing was generated. Raise maxNewImages (CLI: --max-new-images) to go ahead.\n',
    )
    expect(fake.stats.generationRequests).toBe(0)
  })

  it.each([
    [['--nope'], /^flux-assets: unknown option --nope\n/],
    [['--dryrun'], /^flux-assets: unknown option --dryrun \(did you mean --dry-run\?\)\n\nUsage: flux-assets \[generate\|status\|prune\|verify\|models\] \[options\]\n/],
    [['statsu'], /^flux-assets: unknown command "statsu" \(did you mean "status"\?\)/],
    [['generate', 'extra'], /^flux-assets: unknown command "generate extra"/],
    [['frobnicate'], /^flux-assets: unknown command "frobnicate"/],
    [['--width'], /^flux-assets: Option '--width' argument/],
    [['--width', 'abc'], /^flux-assets: --width expects a number, got "abc"/],
    [['--width', '100'], /^flux-assets: flux-assets option "width" must be a multiple of 8 from 8 to 4096, got 100/],
    [['--concurrency', '0'], /^flux-assets: flux-assets option "concurrency" must be an integer from 1 to 64, got 0/],
    [['--response-format', 'xml'], /^flux-assets: flux-assets option "responseFormat" must be one of base64, url, got "xml"/],
    [['--json=yes'], /^flux-assets: Option '--json' does not take an argument/],
  ])('bad usage %j: 2 with a clear message and where to find usage', async (args, message) => {
    useFake()
    await THREE()
    const run = await cli(args)
    expect(run.code).toBe(2)
    expect(run.stderr).toMatch(message)
    expect(run.stderr).not.toMatch(STACK_LINE)
    expect(run.stdout).toBe('')
    expect(fake.stats.generationRequests).toBe(0)
  })

  it('bad flags point to the usage, which --help prints (exit 0)', async () => {
    const bad = await cli(['--nope'])
    expect(bad.stderr).toMatch(/\n\nUsage: flux-assets .+\nRun flux-assets --help for usage\.\n$/)
    const help = await cli(['--help'], { withRoot: false })
    expect(help.code).toBe(0)
    expect(help.stdout).toMatch(/^Usage: flux-assets <command> \[options\]/)
    for (const flag of ['--root', '--include', '--cache-dir', '--concurrency', '--response-format', '--model', '--width', '--height', '--steps', '--strict', '--offline', '--max-new-images', '--json', '--dry-run']) {
      expect(help.stdout).toContain(flag)
    }
    expect(help.stdout).toContain('Exit codes: 0 ok, 1 failed images under --strict, a budget stop, a model not served or an account gate,\n2 bad usage or bad script input.')
    const version = await cli(['-v'], { withRoot: false })
    expect(version).toEqual({ code: 0, stdout: `${JSON.parse(await readFile(join(REPO, 'package.json'), 'utf8')).version}\n`, stderr: '' })
  })

  it('bad script input: 2, every problem with its file and pointer (or line:column), no stack', async () => {
    useFake()
    await writeScripts(root, {
      'a.script.json': '{ "visual_track": [ { "assets": { "x": "ok" } }, ]\n}',
      'b.script.json': scene({ avatar: 42 }),
      'c.script.json': scene({ fine: 'a fine prompt' }),
    })
    const run = await cli(['generate', ...SIZE])
    expect(run.code).toBe(2)
    // The syntax error with its line and a caret under the comma; the number named as what was found.
    expect(run.stderr).toBe(
      [
        'flux-assets: 2 problems in script files:',
        '  a.script.json: 1:48: invalid JSON: trailing comma',
        '    1 | { "visual_track": [ { "assets": { "x": "ok" } }, ]',
        '      |                                                ^',
        '  b.script.json: /visual_track/0/assets/avatar: expected a prompt string or { prompt }, got the number 42',
        '',
      ].join('\n'),
    )
    expect(run.stderr).not.toMatch(STACK_LINE)
    expect(fake.stats.generationRequests).toBe(0)
    // status and prune refuse bad input the same way.
    expect((await cli(['status'])).code).toBe(2)
    expect((await cli(['prune', '--dry-run'])).code).toBe(2)
  })
})

describe('status', () => {
  it('tells the truth before and after generate, and makes no API call', async () => {
    useFake()
    await THREE()
    const before = await cli(['status', ...SIZE])
    expect(before.code).toBe(0)
    expect(before.stdout.split('\n')).toEqual([
      'missing  a.script.json /visual_track/0/assets/a',
      'missing  a.script.json /visual_track/0/assets/b',
      'missing  sub/b.script.json /visual_track/0/assets/c',
      '2 scripts · 3 assets · 3 images · 0 cached · 3 missing (est. $0.046)',
      '',
    ])
    expect(fake.stats.generationRequests).toBe(0)

    await cli(['generate', ...SIZE])
    fake.reset()
    const after = await cli(['status', ...SIZE])
    // What the cached images cost is in their records (the catalog's price when they were made).
    expect(after.stdout).toBe('2 scripts · 3 assets · 3 images · 3 cached ($0.046 spent on them) · 0 missing (est. $0.000)\n')
    // A different size is a different image: status sees it is missing.
    const other = await cli(['status', '--width', '512', '--height', '256'])
    expect(other.stdout).toMatch(/0 cached · 3 missing/)
    expect(fake.stats.generationRequests).toBe(0)
  })

  it('--json: counts, cost and the missing assets', async () => {
    useFake()
    await writeScripts(root, { 'a.script.json': scene({ a: 'st one', b: 'st two', c: 'st one' }) })
    await cli(['generate', ...SIZE, '--include', 'nothing/**'])
    const run = await cli(['status', ...SIZE, '--json'])
    expect(run.code).toBe(0)
    const status = JSON.parse(run.stdout)
    expect(status).toMatchObject({ scripts: 1, assets: 3, images: 2, cached: 0, missing: 2, estimatedCost: expect.closeTo(2 * 0.0154, 12) })
    expect(status.missingAssets.map((m: { id: string }) => m.id)).toEqual(['a', 'b', 'c'])
    expect(Object.keys(status.missingAssets[0]).sort()).toEqual(['id', 'key', 'pointer', 'prompt', 'script'])
  })
})

describe('prune', () => {
  it('--dry-run lists the unreferenced entries and deletes nothing; prune deletes exactly those', async () => {
    useFake()
    await THREE()
    await cli(['generate', ...SIZE])
    const cacheDir = join(root, '.flux-cache')
    const all = await cachedKeys(cacheDir)
    await writeScripts(root, { 'a.script.json': scene({ a: 'cli one' }) }) // b dropped; sub/b.script.json still uses c
    const { requests } = await engineFor(root).scan()
    const kept = [...new Set(requests.map(r => r.key))].sort()
    const unused = all.filter(k => !kept.includes(k))
    expect(unused).toHaveLength(1)

    // The generate run's roots protect every entry it used (test/reliability/prune.test.ts): forgotten here.
    await rm(join(cacheDir, 'v1', 'roots'), { recursive: true })
    const dry = await cli(['prune', ...SIZE, '--dry-run'])
    expect(dry.code).toBe(0)
    expect(dry.stdout).toMatch(new RegExp(`^would remove  ${unused[0]!.slice(0, 12)}  256×256  [\\d.]+ KB  "cli two"\n1 unused entry found\n$`))
    expect(await cachedKeys(cacheDir)).toEqual(all)

    const dryJson = JSON.parse((await cli(['prune', ...SIZE, '--dry-run', '--json'])).stdout)
    expect(dryJson).toMatchObject({ removed: [], unused, entries: [{ key: unused[0], prompt: 'cli two', width: 256, height: 256, bytes: expect.any(Number) }], keptByRoots: [] })

    const real = await cli(['prune', ...SIZE, '--json'])
    expect(real.code).toBe(0)
    expect(JSON.parse(real.stdout)).toMatchObject({ removed: unused, unused })
    expect(await cachedKeys(cacheDir)).toEqual(kept)
    expect((await cli(['prune', ...SIZE])).stdout).toBe('0 unused entries removed\n')
    // What is left still verifies: generate has nothing to do.
    fake.reset()
    expect((await cli(['generate', ...SIZE])).stdout).toMatch(/ 0 generated · 2 cached /)
    expect(fake.stats.generationRequests).toBe(0)
  })
})

describe('the built CLI in a child process', () => {
  let outDir: string
  beforeAll(async () => {
    // tsup with the package's own config, into a private folder: someone else's `tsup` cleaning dist/ cannot race us.
    outDir = join(TMP, `core-cli-dist-${process.pid}-${Date.now()}`)
    const { build } = await import('tsup')
    await build({ outDir, dts: false, clean: false, silent: true, format: ['esm'] })
  })
  afterAll(async () => removeDir(outDir))

  function run(args: string[], env: Record<string, string | undefined>) {
    const childEnv: NodeJS.ProcessEnv = { PATH: process.env.PATH, NO_COLOR: '1', ...env }
    return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
      const child = spawn(process.execPath, [join(outDir, 'cli.js'), ...args], { cwd: root, env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] })
      let stdout = ''
      let stderr = ''
      child.stdout.setEncoding('utf8').on('data', d => (stdout += d))
      child.stderr.setEncoding('utf8').on('data', d => (stderr += d))
      child.once('error', reject).once('close', code => resolve({ code, stdout, stderr }))
    })
  }

  it('package.json points the bin at dist/cli.js, which tsup builds with a shebang', async () => {
    const pkg = JSON.parse(await readFile(join(REPO, 'package.json'), 'utf8'))
    expect(pkg.bin).toEqual({ 'flux-assets': './dist/cli.js' })
    expect((await readFile(join(outDir, 'cli.js'), 'utf8')).startsWith('#!/usr/bin/env node\n')).toBe(true)
  })

  it('generate fills the cache in the working directory (exit 0), status agrees, a second generate pays nothing', async () => {
    await THREE()
    const env = { TOGETHER_API_KEY: API_KEY, TOGETHER_BASE_URL: fake.baseURL }
    const first = await run(['generate', ...SIZE], env)
    expect(first.code, first.stderr).toBe(0)
    expect(first.stdout).toMatch(/^3 assets · 3 generated · 0 cached · 0 placeholders · \d+\.\d s · est\. \$0\.046\n$/)
    expect(await cachedKeys(join(root, '.flux-cache'))).toHaveLength(3)

    const status = await run(['status', ...SIZE, '--json'], env)
    expect(status.code).toBe(0)
    expect(JSON.parse(status.stdout)).toMatchObject({ assets: 3, cached: 3, missing: 0 })

    const second = await run(['generate', ...SIZE], env)
    expect(second.stdout).toMatch(/^3 assets · 0 generated · 3 cached /)
    expect(fake.stats.generations).toBe(3)
    expect(first.stdout + first.stderr + second.stdout + status.stdout).not.toContain(API_KEY)
  })

  it('exit codes from a real process: 2 for a bad flag, 1 for --strict with no key', async () => {
    await THREE()
    const bad = await run(['generate', '--bogus'], {})
    expect(bad.code).toBe(2)
    expect(bad.stderr).toMatch(/unknown option --bogus/)
    const strict = await run(['generate', ...SIZE, '--strict'], { TOGETHER_BASE_URL: fake.baseURL })
    expect(strict.code).toBe(1)
    expect(strict.stderr).toMatch(/strict: 3 images are placeholders, and strict allows none/)
    expect(strict.stderr).not.toMatch(STACK_LINE)
    expect(fake.stats.generationRequests).toBe(0)
  })
})
