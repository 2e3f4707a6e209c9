// Issue 11, point 1: `prune` deleted the images a build used, because the build's settings (vite.config) were unknown
// to the CLI. Two protections: one source of settings (flux-assets.config.*, shared by the plugin and the CLI, with
// CLI flags for every key-shaping option), and the cache's roots: the keys each build and run used, spared by prune
// for 30 days whatever its settings. Prune also refuses to empty the cache on a typo, and lists what it would delete.
import { spawnSync } from 'node:child_process'
import { readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { createEngine } from '../../src/core/engine'
import { resolveOptions } from '../../src/core/options'
import { Roots } from '../../src/core/roots'
import { OPTIONS, type OptionSpec } from '../../src/core/schema'
import { startFakeTogether, type FakeTogether } from '../fake-together.mjs'
import { cacheRoot, fakeEnv, makeTemp, recordFiles, removeTemp, runCli, SENTINEL, SIZE, scriptWith, STACK_LINE, validImages, viteBuild, writeApp, writeScripts } from './helpers'

let fake: FakeTogether
let root: string | undefined
afterEach(async () => {
  await fake?.close()
  await removeTemp(root)
  root = undefined
})

async function project(name: string, files: Record<string, string> = {}) {
  fake = await startFakeTogether({})
  root = await makeTemp(name)
  await writeScripts(root, { 'a.script.json': scriptWith(3, name), ...files })
  await writeApp(root, ['a.script.json'])
  return join(root, '.flux-cache')
}

const cli = (args: string[]) => runCli(args, { cwd: root!, env: fakeEnv(fake.baseURL) })
const prompts = () => fake.log.filter(e => e.method === 'POST').map(e => e.body as { prompt: string; output_format: string; width: number })
const roots = (cacheDir: string) => join(cacheRoot(cacheDir), 'roots')

describe('one source of settings', () => {
  it('flux-assets.config.mjs is read by the plugin and the CLI: after a build, status finds every image and prune keeps them', async () => {
    const config = `export default { promptSuffix: ', in watercolor', outputFormat: 'png', width: 256, height: 256 }\n`
    const cacheDir = await project('config-shared', { 'flux-assets.config.mjs': config })
    // No settings in the plugin call at all (the helper's 256×256 undone): they come from the file.
    await viteBuild(root!, { apiKey: SENTINEL, baseURL: fake.baseURL, width: undefined, height: undefined })
    expect(prompts()).toHaveLength(3)
    for (const body of prompts()) expect(body).toMatchObject({ prompt: expect.stringMatching(/, in watercolor$/), output_format: 'png', width: 256 })

    await rm(roots(cacheDir), { recursive: true })
    const status = await cli(['status', '--json'])
    expect(status.code, status.stderr).toBe(0)
    expect(JSON.parse(status.stdout)).toMatchObject({ cached: 3, missing: 0 })
    const pruned = await cli(['prune', '--json'])
    expect(JSON.parse(pruned.stdout)).toMatchObject({ removed: [] })
    expect(recordFiles(cacheDir)).toHaveLength(3)
  })

  it('plugin options win over the file; a .ts config works in the CLI; a bad value names the file', async () => {
    await project('config-ts', { 'flux-assets.config.ts': `const suffix: string = ', from ts'\nexport default { promptSuffix: suffix, seed: 7 }\n` })
    expect(resolveOptions({ seed: 8 }, root!, { env: {} })).toMatchObject({ promptSuffix: ', from ts', defaults: { seed: 8 } })
    const run = await cli(['generate', ...SIZE])
    expect(run.code, run.stderr).toBe(0)
    expect(prompts().every(b => b.prompt.endsWith(', from ts'))).toBe(true)

    await writeFile(join(root!, 'flux-assets.config.ts'), 'export default { width: 100 }\n')
    const bad = await cli(['status'])
    expect(bad.code).toBe(2)
    expect(bad.stderr).toContain('flux-assets option "width" (in flux-assets.config.ts) must be a multiple of 8 from 8 to 4096, got 100')
    expect(bad.stderr).not.toMatch(STACK_LINE)
  })

  it('every option that changes the pixels has a CLI flag: a build with promptSuffix and seed in its plugin options is found by status with the same flags', async () => {
    for (const [name, spec] of Object.entries(OPTIONS) as Array<[string, OptionSpec]>) if (spec.keyed) expect(spec.cli, name).toBeDefined()
    await project('flags')
    await viteBuild(root!, { apiKey: SENTINEL, baseURL: fake.baseURL, promptPrefix: 'House style: ', promptSuffix: ', dusk', seed: 42, outputFormat: 'png' })
    const status = await cli(['status', ...SIZE, '--prompt-prefix', 'House style: ', '--prompt-suffix', ', dusk', '--seed', '42', '--output-format', 'png', '--json'])
    expect(status.code, status.stderr).toBe(0)
    expect(JSON.parse(status.stdout)).toMatchObject({ cached: 3, missing: 0 })
  })
})

describe('the roots: what builds used is never pruned', () => {
  it('a build whose settings the CLI does not know: prune --force keeps its images for 30 days, then lets them go', async () => {
    const cacheDir = await project('roots')
    await viteBuild(root!, { apiKey: SENTINEL, baseURL: fake.baseURL, promptSuffix: ', only the build knows' })
    const keys = recordFiles(cacheDir).map(f => f.slice(3, -5))
    expect(keys).toHaveLength(3)

    // The CLI, without the suffix, sees three other images: every entry is unused as far as it can tell.
    const dry = await cli(['prune', ...SIZE, '--force', '--dry-run'])
    expect(dry.stdout).toBe('0 unused entries found; 3 kept: used by a build or run in the last 30 days\n')
    const kept = await cli(['prune', ...SIZE, '--force', '--json'])
    expect(kept.code, kept.stderr).toBe(0)
    expect(JSON.parse(kept.stdout)).toMatchObject({ removed: [], keptByRoots: keys.sort() })
    expect(await validImages(cacheDir, keys)).toBe(3)

    // Builds never dirty a committed cache: the roots folder ignores itself.
    expect(await readFile(join(roots(cacheDir), '.gitignore'), 'utf8')).toMatch(/^\*$/m)
    const git = spawnSync('git', ['init', '-q', root!], { encoding: 'utf8' })
    if (git.status === 0) {
      const status = spawnSync('git', ['status', '--porcelain', '--untracked-files=all'], { cwd: root!, encoding: 'utf8' }).stdout
      expect(status).toContain('.flux-cache/v1/')
      expect(status).not.toContain('roots/')
    }

    // 31 days later, nothing protects them any more.
    const old = new Date(Date.now() - 31 * 86_400_000)
    for (const name of await readdir(roots(cacheDir))) if (name.startsWith('run-')) await utimes(join(roots(cacheDir), name), old, old)
    const gone = await cli(['prune', ...SIZE, '--force', '--json'])
    expect(JSON.parse(gone.stdout).removed.sort()).toEqual(keys.sort())
    expect(recordFiles(cacheDir)).toEqual([])
    // The expired run files went with them.
    expect((await readdir(roots(cacheDir))).filter(n => n.startsWith('run-'))).toEqual([])
  })
})

describe('the roots file is written beside the emit, and before the run ends', () => {
  const runFiles = async (cacheDir: string) => (await readdir(roots(cacheDir)).catch(() => [] as string[])).filter(n => n.startsWith('run-'))
  const keysIn = async (cacheDir: string) => {
    const [file] = await runFiles(cacheDir)
    return file ? (JSON.parse(await readFile(join(roots(cacheDir), file), 'utf8')) as { keys: string[] }).keys : []
  }

  /** An engine over a fresh project whose roots file write waits until `release()`, and its requests. */
  const heldWrite = async (name: string) => {
    const cacheDir = await project(name)
    const engine = createEngine(resolveOptions({ apiKey: SENTINEL, baseURL: fake.baseURL, cacheDir, width: 256, height: 256 }, root!, { env: {} }))
    const { requests } = await engine.scan()
    const record = Roots.prototype.record
    let release!: () => void
    const held = new Promise<void>(resolve => (release = resolve))
    const write = vi.spyOn(Roots.prototype, 'record').mockImplementation(async function (this: Roots, ...args) {
      await held
      return record.apply(this, args)
    })
    return { cacheDir, engine, requests, write, release }
  }

  it('generate() does not wait for it (the build emits meanwhile); flush() does', async () => {
    // The write waits until generate() has returned: had generate() awaited it, neither would ever settle.
    const { cacheDir, engine, requests, write, release } = await heldWrite('roots-flush')
    try {
      const result = await engine.generate(requests)
      expect(result.summary.generated).toBe(3)
      expect(write).toHaveBeenCalledTimes(1)
      expect(await runFiles(cacheDir)).toEqual([])
      release()
      await engine.flush()
      expect((await keysIn(cacheDir)).sort()).toEqual([...result.hits.keys()].sort())
    } finally {
      write.mockRestore()
      await engine.close()
    }
  })

  it('close() waits for it too: a CLI run or a closing dev server ends with every key in the file', async () => {
    const { cacheDir, engine, requests, write, release } = await heldWrite('roots-close')
    try {
      const result = await engine.generate(requests)
      let closed = false
      const closing = engine.close().then(() => void (closed = true))
      // However many turns the event loop takes, close() is still waiting for the held write.
      for (let i = 0; i < 20; i++) await new Promise(resolve => setImmediate(resolve))
      expect(closed).toBe(false)
      expect(await runFiles(cacheDir)).toEqual([])
      release()
      await closing
      expect((await keysIn(cacheDir)).sort()).toEqual([...result.hits.keys()].sort())
    } finally {
      release()
      write.mockRestore()
    }
  })

  it('a vite build ends only once the file lists every key it used, however slow the disk', async () => {
    const cacheDir = await project('roots-build')
    const record = Roots.prototype.record
    // A disk that takes its time with this one file: the build must still not end before it is there.
    const slow = vi.spyOn(Roots.prototype, 'record').mockImplementation(async function (this: Roots, ...args) {
      await new Promise(resolve => setTimeout(resolve, 1500))
      return record.apply(this, args)
    })
    try {
      await viteBuild(root!, { apiKey: SENTINEL, baseURL: fake.baseURL })
      expect(slow).toHaveBeenCalled()
      expect((await keysIn(cacheDir)).sort()).toEqual(recordFiles(cacheDir).map(f => f.slice(3, -5)).sort())
      expect(await keysIn(cacheDir)).toHaveLength(3)
    } finally {
      slow.mockRestore()
    }
  })
})

describe('prune refuses to empty the cache by mistake', () => {
  it('no script found (an --include typo) or every entry going: refused without --force; --dry-run lists prompt, size and bytes', async () => {
    const cacheDir = await project('refuse')
    expect((await cli(['generate', ...SIZE])).code).toBe(0)
    await rm(roots(cacheDir), { recursive: true })

    const typo = await cli(['prune', ...SIZE, '--include', 'scirpts/**'])
    expect(typo.code).toBe(1)
    expect(typo.stderr).toContain('prune refused: no script was found (include: scirpts/**). Check --include and --root, or pass --force to delete 3 entries anyway')
    expect(recordFiles(cacheDir)).toHaveLength(3)

    await writeScripts(root!, { 'a.script.json': scriptWith(3, 'all new prompts') })
    const all = await cli(['prune', ...SIZE])
    expect(all.code).toBe(1)
    expect(all.stderr).toContain('prune refused: every entry in the cache (3) would be deleted')
    expect(recordFiles(cacheDir)).toHaveLength(3)

    const dry = await cli(['prune', ...SIZE, '--force', '--dry-run'])
    expect(dry.code).toBe(0)
    const lines = dry.stdout.trim().split('\n')
    expect(lines).toHaveLength(4)
    for (const line of lines.slice(0, 3)) expect(line).toMatch(/^would remove {2}[0-9a-f]{12} {2}256×256 {2}[\d.]+ KB {2}"refuse prompt number \d: a lighthouse at dusk"$/)
    expect(lines[3]).toBe('3 unused entries found')
    expect(recordFiles(cacheDir)).toHaveLength(3)

    const forced = await cli(['prune', ...SIZE, '--force'])
    expect(forced.code, forced.stderr).toBe(0)
    expect(recordFiles(cacheDir)).toEqual([])
  })
})
