// Issue 4, point 7: hostile ids, prompts and script shapes end in a clear error (exit 2, file + JSON pointer, no stack
// trace) or a safe result, and nothing is ever written outside the output and cache folders.
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { startFakeTogether, type FakeTogether } from '../fake-together.mjs'
import {
  changedFiles,
  childEnv,
  fakeEnv,
  listFiles,
  makeTemp,
  readManifest,
  recordingLogger,
  removeTemp,
  runCli,
  runViteBundle,
  SENTINEL,
  SIZE,
  snapshotTree,
  spawnViteBuild,
  STACK_LINE,
  viteBuild,
  writeApp,
  writeScripts,
} from './helpers'

let fake: FakeTogether
/** The temp folder; the project is `<tmp>/project/<nested>` so a write above the project would show up in the snapshot. */
let tmp: string
let root: string
beforeEach(async () => {
  fake = await startFakeTogether({})
  tmp = await makeTemp('hostile')
  root = join(tmp, 'project', 'app')
  await mkdir(root, { recursive: true })
})
afterEach(async () => {
  await fake.close()
  await removeTemp(tmp)
})

/** The cache, the output, and the typed-script declarations (`.flux-assets/`, git-ignored) of a build. */
const ALLOWED = /^project\/app\/(\.flux-cache|dist|\.flux-assets)\//

/** Runs `act`, then checks that every file it added or changed under the temp folder is in the cache or the output. */
async function confined<T>(act: () => Promise<T>): Promise<T> {
  const before = snapshotTree(tmp)
  const result = await act()
  const outside = changedFiles(before, snapshotTree(tmp)).filter(p => !ALLOWED.test(p))
  expect(outside, 'files written outside the cache and output folders').toEqual([])
  return result
}

/** A clear input error: exit 2, each expected line on stderr, no stack trace, no API call. */
function expectInputError(run: { code: number | null; stderr: string }, lines: string[]) {
  expect(run.code, run.stderr).toBe(2)
  for (const line of lines) expect(run.stderr).toContain(line)
  expect(run.stderr).not.toMatch(STACK_LINE)
  expect(fake.stats.generationRequests).toBe(0)
}

const HOSTILE_IDS = ['../x', '../../../../escape', 'a/b', '/etc/passwd', 'C:\\Windows\\evil', '..', 'CON', 'nul.txt', '__proto__', 'x'.repeat(300), '<img src=x onerror=alert(1)>', '"; process.exit(1); "']

describe('hostile input', () => {
  it('ids that look like paths, reserved names, 300 characters or markup are labels: generated, built and emitted safely', async () => {
    const assets = Object.fromEntries(HOSTILE_IDS.map((id, i) => [id, `hostile id prompt ${i}`]))
    await writeScripts(root, { 'a.script.json': { visual_track: [{ assets }] } })
    await writeApp(root, ['a.script.json'])

    const cli = await confined(() => runCli(['generate', ...SIZE, '--strict', '--json'], { cwd: root, env: fakeEnv(fake.baseURL) }))
    expect(cli.code, cli.stderr).toBe(0)
    const { assets: records } = JSON.parse(cli.stdout)
    expect(records.map((r: { id: string }) => r.id)).toEqual(HOSTILE_IDS)
    expect(fake.stats.generations).toBe(HOSTILE_IDS.length)

    const logger = recordingLogger()
    await confined(() => viteBuild(root, { apiKey: SENTINEL, baseURL: fake.baseURL, logger }))
    const entries = await readManifest(join(root, 'dist'))
    expect(entries.map(e => e.id)).toEqual(HOSTILE_IDS)
    for (const e of entries) expect(e.file).toMatch(/^assets\/[a-z0-9-]{1,40}-[\w-]{8}\.jpg$/)
    const files = listFiles(join(root, 'dist'))
    for (const e of entries) expect(files).toContain(e.file)
    // The ?flux module, run: each id is an own key of `assets` holding its URL; no prototype was touched.
    const app = runViteBundle(join(root, 'dist'), '({ ids: Object.keys(app.scripts[0].visual_track[0].assets), urls: Object.values(app.scripts[0].visual_track[0].assets).map(a => a.url), polluted: ({}).url !== undefined || Object.getPrototypeOf(app.scripts[0].visual_track[0].assets) !== Object.prototype })') as { ids: string[]; urls: string[]; polluted: boolean }
    expect(app.ids).toEqual(HOSTILE_IDS)
    expect(app.urls).toEqual(entries.map(e => `/${e.file}`))
    expect(app.polluted).toBe(false)
    expect(fake.stats.generations).toBe(HOSTILE_IDS.length)
  })

  it('a NUL in an id, a 100 KB prompt, and wrong shapes (array, null, strings in visual_track) are clear errors, exit 2', async () => {
    await writeScripts(root, {
      'nul.script.json': { visual_track: [{ assets: { 'a\u0000b': 'fine prompt' } }] },
      'long.script.json': { visual_track: [{ assets: { big: 'x'.repeat(100_000) } }] },
      'array.script.json': [{ assets: { a: 'p' } }],
      'null.script.json': 'null',
      'strings.script.json': { visual_track: ['a scene', 'another'] },
      'deep.script.json': `{"visual_track": ${'['.repeat(50_000)}${']'.repeat(50_000)}}`,
    })
    const run = await confined(() => runCli(['generate', ...SIZE], { cwd: root, env: fakeEnv(fake.baseURL) }))
    expectInputError(run, [
      'nul.script.json: /visual_track/0/assets/a\\u0000b: asset id must be non-empty and printable',
      'long.script.json: /visual_track/0/assets/big: prompt is 100000 characters; the limit is 10000',
      'array.script.json: /: expected an object with a "visual_track" array',
      'null.script.json: /: expected an object with a "visual_track" array',
      'strings.script.json: /visual_track/0: expected a scene object',
      'strings.script.json: /visual_track/1: expected a scene object',
      // Measured before the shape (#11, item 13): too deep to become a `?flux` module, whatever else is wrong.
      `deep.script.json: /visual_track${'/0'.repeat(43)}/…: nested more than 256 levels deep`,
    ])
    // No raw NUL reaches the terminal.
    expect(run.stderr).not.toContain('\u0000')
    // Nothing was written at all: not even a cache folder.
    expect(listFiles(join(root, '.flux-cache'))).toEqual([])
  })

  it('the same bad input fails a vite build with the same clear message, and writes nothing', async () => {
    await writeScripts(root, { 'strings.script.json': { visual_track: ['a scene'] }, 'nul.script.json': { visual_track: [{ assets: { 'a\u0000b': 'p' } }] } })
    await writeApp(root, ['strings.script.json'])
    const error = await confined(() => viteBuild(root, { apiKey: SENTINEL, baseURL: fake.baseURL }).then(() => undefined, (e: Error) => e))
    expect(error?.message).toContain('strings.script.json: /visual_track/0: expected a scene object')
    expect(error?.message).toContain('nul.script.json: /visual_track/0/assets/a\\u0000b: asset id must be non-empty and printable')
    expect(fake.stats.generationRequests).toBe(0)
    expect(listFiles(join(root, 'dist'))).toEqual([])
  })

  it('10,000 assets in one file, offline: placeholders for all, exit 0, no crash', async () => {
    const assets = Object.fromEntries(Array.from({ length: 10_000 }, (_, i) => [`asset-${i}`, `prompt number ${i}`]))
    await writeScripts(root, { 'big.script.json': { visual_track: [{ assets }] } })
    const run = await confined(() => runCli(['generate', ...SIZE, '--offline', '--json'], { cwd: root, env: childEnv() }))
    expect(run.code, run.stderr).toBe(0)
    expect(run.stderr).not.toMatch(STACK_LINE)
    expect(run.stderr).toContain('10000 images are not cached and offline mode is on: using placeholders')
    expect(JSON.parse(run.stdout).summary).toMatchObject({ assets: 10_000, unique: 10_000, generated: 0, placeholders: 10_000 })
    expect(fake.stats.generationRequests).toBe(0)

    // Without --offline and with a key, the budget stops it before any call.
    const budget = await confined(() => runCli(['generate', ...SIZE], { cwd: root, env: fakeEnv(fake.baseURL) }))
    expect(budget.code).toBe(1)
    expect(budget.stderr).toContain('10000 new images would be generated')
    expect(fake.stats.generationRequests).toBe(0)
  })

  // #11, item 13: an ignored key nested 100,000 deep passed the CLI and failed the build with a RangeError and a stack
  // trace from re-stringifying the script for its `?flux` module. Now a script error naming the file, everywhere.
  it('a script nested 100,000 deep is a script error naming the file, in the CLI and in a vite build', async () => {
    const deep = `{"visual_track":[{"assets":{"a":"a deep prompt"}}],"notes":${'['.repeat(100_000)}${']'.repeat(100_000)}}`
    await writeScripts(root, { 'deep.script.json': deep })
    await writeApp(root, ['deep.script.json'])
    const message = /deep\.script\.json: \/notes\/0\/0\/0[/0]*…: nested more than 256 levels deep/

    const status = await confined(() => runCli(['status', ...SIZE], { cwd: root, env: childEnv() }))
    expect(status.code, status.stderr).toBe(2)
    expect(status.stderr).toMatch(message)
    const build = await confined(async () => {
      const child = await spawnViteBuild(root, { apiKey: SENTINEL, baseURL: fake.baseURL })
      return { code: (await child.exited).code, stderr: child.stderr }
    })
    expect(build.code).toBe(1)
    expect(build.stderr).toMatch(message)
    for (const run of [status, build]) {
      expect(run.stderr).not.toMatch(/RangeError|Maximum call stack/)
      expect(run.stderr).not.toMatch(STACK_LINE)
    }
    expect(fake.stats.generationRequests).toBe(0)
  })
})
