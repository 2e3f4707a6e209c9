// A warm build (every image cached) never loads the provider or its HTTP client: undici takes ~100 ms to import, a
// large part of a small warm build; nor does it make the placeholders' grapheme segmenter (15-23 ms of ICU data).
// Checked in a fresh process running a real `vite build` of the plugin bundled as it ships (esbuild with code
// splitting, like tsup: the provider is its own chunk, loaded by import()). The same child run cold, with images to
// generate, does load undici, and one making placeholders for non-ASCII prompts makes a segmenter: the checks can see.
import { spawn } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { build as esbuild } from 'esbuild'
import { afterEach, describe, expect, it } from 'vitest'
import { startFakeTogether, type FakeTogether } from '../fake-together.mjs'
import { childEnv, makeTemp, REPO, removeTemp, SENTINEL, scriptWith, writeApp, writeScripts } from './helpers'

const CHILD = `
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { build } from 'vite'
// Counted from before the plugin is imported: a Segmenter made at import time counts too.
let segmenters = 0
Intl.Segmenter = class extends Intl.Segmenter { constructor(...args) { super(...args); segmenters++ } }
const { default: flux } = await import('./vite.js')
const [root, baseURL, apiKey] = process.argv.slice(2)
const quiet = { info() {}, warn() {}, error() {} }
await build({
  root,
  configFile: false,
  logLevel: 'silent',
  build: { outDir: join(root, 'dist'), emptyOutDir: true, modulePreload: { polyfill: false } },
  plugins: [flux({ width: 256, height: 256, logger: quiet, apiKey, baseURL })],
})
// ESM imports of a CommonJS package (undici is one) go through the CommonJS loader's cache.
const loaded = Object.keys(createRequire(import.meta.url)('node:module')._cache)
const undici = loaded.some(f => /[\\\\/]node_modules[\\\\/]undici[\\\\/]/.test(f))
process.stdout.write(JSON.stringify({ undici, segmenter: segmenters > 0 }) + '\\n')
`

let fake: FakeTogether | undefined
let root: string | undefined
afterEach(async () => {
  await fake?.close()
  await removeTemp(root)
  fake = root = undefined
})

/** The plugin's vite entry bundled with splitting into `dir` (dependencies external, from the repo's node_modules). */
async function bundle(dir: string): Promise<void> {
  await esbuild({
    entryPoints: [join(REPO, 'src/vite.ts')],
    outdir: dir,
    bundle: true,
    splitting: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    logLevel: 'silent',
  })
  await writeFile(join(dir, 'child.mjs'), CHILD)
}

function runChild(dir: string, app: string, baseURL: string, apiKey = SENTINEL): Promise<{ undici: boolean; segmenter: boolean }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(dir, 'child.mjs'), app, baseURL, apiKey], { cwd: REPO, env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    child.stdout.on('data', d => (out += d))
    child.stderr.on('data', d => (err += d))
    child.on('error', reject)
    child.on('close', code => (code === 0 ? resolve(JSON.parse(out.trim().split('\n').at(-1)!)) : reject(new Error(`child exited ${code}: ${err}`))))
  })
}

describe('lazy provider', () => {
  it('a warm vite build with a key set imports neither undici nor the provider; a cold one does', async () => {
    fake = await startFakeTogether()
    root = await makeTemp('lazy-provider')
    // Inside the repo, so the bundle's external imports (vite, undici) resolve from its node_modules.
    const dir = join(root, 'bundle')
    await bundle(dir)
    const app = join(root, 'app')
    await writeScripts(app, { 'a.script.json': scriptWith(3, 'lazy') })
    await writeApp(app, ['a.script.json'])

    expect(await runChild(dir, app, fake.baseURL)).toEqual({ undici: true, segmenter: false })
    expect(fake.stats.generations).toBe(3)
    fake.reset()
    expect(await runChild(dir, app, fake.baseURL)).toEqual({ undici: false, segmenter: false })
    // Not one request, not even the free catalog one.
    expect(fake.log).toEqual([])
  })

  it('the grapheme segmenter is made only when a placeholder needs one: the check can see it', async () => {
    root = await makeTemp('lazy-segmenter')
    const dir = join(root, 'bundle')
    await bundle(dir)
    const app = join(root, 'app')
    // No key: placeholders, whose label is the prompt; non-ASCII text is split by graphemes.
    await writeScripts(app, { 'a.script.json': { visual_track: [{ assets: { hero: 'Un café à Montréal, le soir 🌆' } }] } })
    await writeApp(app, ['a.script.json'])
    expect(await runChild(dir, app, 'http://127.0.0.1:9', '')).toMatchObject({ segmenter: true })
  })
})
