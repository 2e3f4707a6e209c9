// The package as a user gets it: `npm pack` of this repository (the built dist/, no network), unpacked into a copy of
// the fixture app's node_modules, and that app built by the bundlers' own CLIs (Vite, Rollup) or a CommonJS
// `require` (webpack) from config files written the way the README shows. Catches what tests against src/ cannot:
// a file missing from `files`, a wrong `exports` path, a broken CJS entry.
import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { API_KEY, type Built, checkBuild, createProject, listFiles, type Project, NAMES, UNIQUE } from './helpers'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const TMP = fileURLToPath(new URL('../.tmp', import.meta.url))
const bin = (rel: string) => join(ROOT, 'node_modules', rel)
const run = promisify(execFile)

let packDir: string
let tarball: string
let packed: string[]

beforeAll(async () => {
  if (!existsSync(join(ROOT, 'dist/vite.js'))) throw new Error('dist/ is missing: this test packs the built package; run `npx tsup` (npm test does)')
  await mkdir(TMP, { recursive: true })
  packDir = await mkdtemp(join(TMP, 'pack-'))
  const { stdout } = await run('npm', ['pack', '--json', '--pack-destination', packDir], { cwd: ROOT })
  const [info] = JSON.parse(stdout) as Array<{ filename: string; files: Array<{ path: string }> }>
  tarball = join(packDir, info!.filename)
  packed = info!.files.map(f => f.path)
}, 60_000)

afterAll(async () => {
  if (packDir) await rm(packDir, { recursive: true, force: true })
})

/** The fixture app with the tarball installed (unpacked) in its node_modules; the bundlers come from the repo. */
async function install(label: string): Promise<Project> {
  const p = await createProject(label)
  const target = p.path('node_modules', 'unplugin-flux-assets')
  await mkdir(target, { recursive: true })
  await run('tar', ['-xzf', tarball, '-C', target, '--strip-components=1'])
  await writeFile(p.path('package.json'), JSON.stringify({ name: 'fresh-app', private: true }))
  return p
}

/** Runs a build in the app as a child process, with the key and the fake API in the environment (as the README says). */
async function build(p: Project, args: string[]): Promise<string> {
  const env = { PATH: process.env.PATH ?? '', TOGETHER_API_KEY: API_KEY, TOGETHER_BASE_URL: p.fake.baseURL }
  const { stdout, stderr } = await run(process.execPath, args, { cwd: p.dir, env })
  return `${stdout}\n${stderr}`
}

function expectOneSummary(log: string) {
  expect(log.match(/\d+ generated · \d+ cached/g)).toEqual([`${UNIQUE} generated · 0 cached`])
}

describe('the packed package in a fresh app', () => {
  it('the tarball holds dist/, client.d.ts and every exports target; no sources or tests', async () => {
    const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8'))
    const targets = Object.values(pkg.exports as Record<string, string | Record<string, string>>).flatMap(t => (typeof t === 'string' ? [t] : Object.values(t)))
    for (const target of [...targets, pkg.bin['flux-assets'], pkg.main, pkg.module, pkg.types]) expect(packed, target).toContain(target.replace(/^\.\//, ''))
    expect(packed).toContain('client.d.ts')
    expect(packed).toContain('README.md')
    expect(packed.filter(f => /^(src|test|bench|playground)\//.test(f))).toEqual([])
  })

  it('vite build (CLI) with the README config', async () => {
    const p = await install('packed-vite')
    // The README's config; no module preload polyfill, because the checks run the bundle in Node.
    await writeFile(
      p.path('vite.config.mjs'),
      `import flux from 'unplugin-flux-assets/vite'\nexport default { plugins: [flux({ width: 256, height: 256 })], build: { modulePreload: { polyfill: false } } }\n`,
    )
    const log = await build(p, [bin('vite/bin/vite.js'), 'build'])
    expectOneSummary(log)
    const outDir = p.path('dist')
    const bundle = join(outDir, (await listFiles(outDir)).find(f => /^assets\/index-.*\.js$/.test(f))!)
    await checkBuild(p, { outDir, bundle, kind: 'esm', urlOf: file => `/${file}`, names: NAMES.rollup })
    expect(p.fake.stats.generations).toBe(UNIQUE)
  })

  it('rollup -c with the README config (rollup.config.mjs)', async () => {
    const p = await install('packed-rollup')
    // Plus the smallest JSON plugin: the fixture also imports a script as plain JSON, which Rollup cannot by itself.
    await writeFile(
      p.path('rollup.config.mjs'),
      `import flux from 'unplugin-flux-assets/rollup'
const json = { name: 'json', transform: (code, id) => (id.endsWith('.json') ? { code: 'export default ' + code, map: null } : null) }
export default { input: 'src/main.js', output: { dir: 'dist', entryFileNames: 'main.js' }, plugins: [flux({ width: 256, height: 256 }), json] }
`,
    )
    const log = await build(p, [bin('rollup/dist/bin/rollup'), '-c'])
    expectOneSummary(log)
    const outDir = p.path('dist')
    const built: Built = { outDir, bundle: join(outDir, 'main.js'), kind: 'esm', urlOf: file => pathToFileURL(join(outDir, file)).href, names: NAMES.rollup }
    await checkBuild(p, built)
    expect(p.fake.stats.generations).toBe(UNIQUE)
  })

  it("webpack with the README's CommonJS config (require(...).default)", async () => {
    const p = await install('packed-webpack')
    await writeFile(
      p.path('webpack.config.js'),
      `const flux = require('unplugin-flux-assets/webpack').default
module.exports = { mode: 'production', context: __dirname, entry: './src/main.js', output: { path: __dirname + '/dist', filename: 'main.js', publicPath: '/static/' }, plugins: [flux({ width: 256, height: 256 })] }
`,
    )
    await writeFile(
      p.path('build.cjs'),
      `require(${JSON.stringify(bin('webpack'))})(require('./webpack.config.js')).run((error, stats) => {
  if (error || stats.hasErrors()) { console.error(error || stats.toString('errors-only')); process.exit(1) }
})
`,
    )
    const log = await build(p, ['build.cjs'])
    expectOneSummary(log)
    const outDir = p.path('dist')
    await checkBuild(p, { outDir, bundle: join(outDir, 'main.js'), kind: 'script', urlOf: file => `/static/${file}`, names: NAMES.webpack })
    expect(p.fake.stats.generations).toBe(UNIQUE)
  })
})
