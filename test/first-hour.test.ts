// Issue #13, the first hour of a new user: a misspelled option is an error, an account-level failure fails the build
// in every bundler (and is placeholders in the dev server, said in the terminal and the browser console), a bad script
// reaches the terminal as its message alone, the dev server says what it paid for and waits for an edit to settle.
import { execFile } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { build as esbuild } from 'esbuild'
import { rollup } from 'rollup'
import { afterEach, describe, expect, it } from 'vitest'
import webpack from 'webpack'
import { resolveOptions } from '../src/core/options'
import fluxEsbuild from '../src/esbuild'
import fluxRollup from '../src/rollup'
import fluxVite from '../src/vite'
import fluxWebpack from '../src/webpack'
import type { FluxAssetsOptions } from '../src/core/types'
import { startFakeTogether, type FakeTogether } from './fake-together.mjs'
import { makeTemp, recordingLogger, removeTemp, REPO, SENTINEL, STACK_LINE, writeScripts } from './reliability/helpers'

let fake: FakeTogether | undefined
let root: string | undefined
afterEach(async () => {
  await fake?.close()
  await removeTemp(root)
  fake = root = undefined
})

/** A project with one script of two prompts imported by main.js (as `?flux`) and index.html. */
async function project(label: string, fakeOptions: Parameters<typeof startFakeTogether>[0] = {}) {
  fake = await startFakeTogether(fakeOptions)
  root = await makeTemp(`first-${label}`)
  await writeScripts(root, { 'a.script.json': { visual_track: [{ assets: { one: 'first hour one', two: 'first hour two' } }] } })
  await writeFile(join(root, 'main.js'), "import s from './a.script.json?flux'\nglobalThis.s = s\n")
  await writeFile(join(root, 'index.html'), '<script type="module" src="./main.js"></script>\n')
  return { fake, root }
}

const options = (extra: FluxAssetsOptions = {}): FluxAssetsOptions => ({ apiKey: SENTINEL, baseURL: fake!.baseURL, width: 256, height: 256, logger: recordingLogger(), ...extra })

describe('a misspelled option', () => {
  it('is an error at start-up naming the valid names and the closest one', () => {
    expect(() => resolveOptions({ apikey: 'x', baseurl: 'y' } as FluxAssetsOptions, '/tmp', { env: {} })).toThrow(
      /^flux-assets: unknown option "apikey" \(did you mean "apiKey"\?\); unknown option "baseurl" \(did you mean "baseURL"\?\)\. Valid options: root, include, .*, onProgress, formats, widths, quality, blur\.$/,
    )
    expect(() => resolveOptions({ concurency: 2 } as FluxAssetsOptions, '/tmp', { env: {} })).toThrow(/unknown option "concurency" \(did you mean "concurrency"\?\)/)
    expect(() => resolveOptions({ zzz: 1 } as FluxAssetsOptions, '/tmp', { env: {} })).toThrow(/^flux-assets: unknown option "zzz"\. Valid options:/)
  })

  it('fails a vite build before anything is generated', async () => {
    const { fake, root } = await project('typo')
    const { build } = await import('vite')
    const error = await build({ root, configFile: false, logLevel: 'silent', plugins: [fluxVite({ ...options(), apikey: SENTINEL } as FluxAssetsOptions)] }).catch((e: unknown) => e)
    expect(String((error as Error).message)).toContain('unknown option "apikey" (did you mean "apiKey"?)')
    expect(fake.stats.requests).toBe(0)
  })
})

describe('an account-level failure (401) fails the build in every bundler', () => {
  const rejected = { apiKeys: ['another-key'] }

  it('vite', async () => {
    const { fake, root } = await project('401-vite', rejected)
    const { build } = await import('vite')
    const error = await build({ root, configFile: false, logLevel: 'silent', plugins: [fluxVite(options())] }).catch((e: unknown) => e)
    expect((error as Error).message).toContain('API key rejected (401)')
    // Both were in flight when the first 401 came; nothing after it.
    expect(fake.stats.generationRequests).toBeLessThanOrEqual(2)
    // apiFailure 'placeholder': the same build ships placeholders.
    await build({ root, configFile: false, logLevel: 'silent', plugins: [fluxVite(options({ apiFailure: 'placeholder' }))] })
  })

  it('rollup', async () => {
    const { root } = await project('401-rollup', rejected)
    const error = await rollup({ input: join(root, 'main.js'), plugins: [fluxRollup(options())], onwarn: () => {} }).catch((e: unknown) => e)
    expect((error as Error).message).toContain('API key rejected (401)')
  })

  it('esbuild', async () => {
    const { root } = await project('401-esbuild', rejected)
    const error = await esbuild({ entryPoints: [join(root, 'main.js')], bundle: true, outdir: join(root, 'dist'), write: true, logLevel: 'silent', plugins: [fluxEsbuild(options())] }).catch((e: unknown) => e)
    expect((error as Error).message).toContain('API key rejected (401)')
  })

  it('webpack', async () => {
    const { root } = await project('401-webpack', rejected)
    // A failing buildStart is a fatal error in webpack: the callback's error, or the stats' errors.
    const message = await new Promise<string>(resolve =>
      webpack({ mode: 'production', context: root, entry: './main.js', output: { path: join(root, 'dist') }, plugins: [fluxWebpack(options())] }, (error, stats) =>
        resolve(error ? error.message : stats!.toJson({ all: false, errors: true }).errors!.map(e => e.message).join('\n')),
      ),
    )
    expect(message).toContain('API key rejected (401)')
  })

  it('the dev server keeps going: placeholders, the reason in the terminal once and in the browser console', async () => {
    const { root } = await project('401-dev', rejected)
    const logger = recordingLogger()
    const { createServer } = await import('vite')
    const server = await createServer({ root, configFile: false, logLevel: 'silent', server: { port: 0 }, plugins: [fluxVite(options({ logger }))] })
    try {
      const code = (await server.transformRequest('/a.script.json?flux'))!.code
      expect(code).toContain('console.warn("[flux-assets] placeholder: API key rejected (401)')
      expect(code).toContain('data:image/svg+xml')
      expect(logger.lines.filter(l => l.includes('API key rejected (401)'))).toEqual([expect.stringMatching(/: 2 images are placeholders$/)])
    } finally {
      await server.close()
    }
  })
})

describe('messages a person can read', () => {
  it('a bad script fails `vite build` (Vite 7, Rollup) with its message alone: no stack trace, no error code', async () => {
    const { root } = await project('stack')
    await writeScripts(root, { 'a.script.json': { visual_track: [{ assets: { one: 3 } }] } })
    await writeFile(join(root, 'vite.config.mjs'), `import flux from ${JSON.stringify(join(REPO, 'dist/vite.js'))}\nexport default { plugins: [flux({ width: 256, height: 256 })] }\n`)
    const run = await promisify(execFile)(process.execPath, [join(REPO, 'node_modules/vite7/bin/vite.js'), 'build'], { cwd: root, env: { PATH: process.env.PATH } }).catch((e: { stdout: string; stderr: string }) => e)
    const output = `${run.stdout}\n${run.stderr}`
    expect(output).toContain('a.script.json: /visual_track/0/assets/one: expected a prompt string or { prompt }, got the number 3')
    expect(output.match(/got the number 3/g)).toHaveLength(1)
    expect(output).not.toMatch(STACK_LINE)
    expect(output).not.toContain('FLUX_SCRIPT_INVALID')
  })

  it('the dev server logs what it generated and its cost', async () => {
    const { root } = await project('dev-log')
    const logger = recordingLogger()
    const { createServer } = await import('vite')
    const server = await createServer({ root, configFile: false, logLevel: 'silent', server: { port: 0 }, plugins: [fluxVite(options({ logger }))] })
    try {
      await server.transformRequest('/a.script.json?flux')
      expect(logger.lines).toContainEqual(expect.stringMatching(/^a\.script\.json: 2 assets · 2 generated · 0 cached · 0 placeholders · \d+\.\d s · est\. \$0\.031$/))
    } finally {
      await server.close()
    }
  })

  it('the dev server pays only for the prompt an editor finished saving, not every keystroke', async () => {
    const { fake, root } = await project('debounce')
    const { createServer } = await import('vite')
    const server = await createServer({ root, configFile: false, logLevel: 'silent', server: { port: 0 }, plugins: [fluxVite(options())] })
    try {
      await server.transformRequest('/a.script.json?flux')
      expect(fake.stats.generations).toBe(2)
      // An editor autosaving while "A lighthouse" is typed, a save every 50 ms (well inside the 400 ms settle window),
      // while the page keeps asking for the module, as HMR does after each save.
      const typed = 'A lighthouse'
      const typing = (async () => {
        for (let i = 1; i <= typed.length; i++) {
          await writeScripts(root, { 'a.script.json': { visual_track: [{ assets: { one: 'first hour one', two: typed.slice(0, i) } }] } })
          await new Promise(r => setTimeout(r, 50))
        }
      })()
      for (;;) {
        // A read may land mid-write (a half-written file is a script error, as in an editor): ask again.
        const code = (await server.transformRequest('/a.script.json?flux').catch(() => undefined))?.code ?? ''
        if (code.includes(`"prompt": "${typed}"`)) break
        await new Promise(r => setTimeout(r, 50))
      }
      await typing
      const prompts = fake.log.filter(e => e.method === 'POST').map(e => (e.body as { prompt: string }).prompt)
      expect(prompts.slice(2)).toEqual([typed])
    } finally {
      await server.close()
    }
  })
})
