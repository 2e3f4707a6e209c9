// `vite build --app`: one command builds the client and the SSR environment. Each environment is built by its own
// plugin instance (a config file is loaded once per environment) or, with inline plugins, by one shared instance.
// Either way: each prompt is paid once, the summary line is printed once, and the server renders the client's URLs.
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { InlineConfig } from 'vite'
import { describe, expect, it } from 'vitest'
import type { FluxAssetsOptions } from '../../src/core/types'
import flux from '../../src/vite'
import { checkBuild, createProject, listFiles, type Project, runBundle, UNIQUE, NAMES } from './helpers'
import { VITES } from './vites'

const SRC_VITE = fileURLToPath(new URL('../../src/vite.ts', import.meta.url))
const SUMMARY = /\d+ generated · \d+ cached/

function appConfig(p: Project): InlineConfig {
  return {
    root: p.dir,
    logLevel: 'silent',
    builder: {},
    build: { outDir: 'dist', modulePreload: { polyfill: false } },
    environments: { ssr: { build: { outDir: 'dist-ssr', rollupOptions: { input: p.path('src/main.js') } } } },
  }
}

/** The plugin from a config file, as an app has it: Vite loads the file again for every environment. */
async function withConfigFile(p: Project, options: FluxAssetsOptions): Promise<InlineConfig> {
  ;(globalThis as any).__FLUX_APP_TEST_OPTIONS__ = { ...options, root: undefined }
  await writeFile(p.path('vite.config.mjs'), `import flux from ${JSON.stringify(SRC_VITE)}\nexport default { plugins: [flux(globalThis.__FLUX_APP_TEST_OPTIONS__)] }\n`)
  return { ...appConfig(p), configFile: p.path('vite.config.mjs') }
}

const inline = (p: Project, options: FluxAssetsOptions): InlineConfig => ({ ...appConfig(p), configFile: false, plugins: [flux({ ...options, root: undefined })] })

async function buildApp(createBuilder: (typeof VITES)[number]['vite']['createBuilder'], config: InlineConfig) {
  const builder = await createBuilder(config)
  await builder.buildApp()
}

async function check(p: Project) {
  const outDir = p.path('dist')
  const bundle = join(outDir, (await listFiles(outDir)).find(f => /^assets\/index-.*\.js$/.test(f))!)
  await checkBuild(p, { outDir, bundle, kind: 'esm', urlOf: file => `/${file}`, names: NAMES.rollup })
  const ssr = await runBundle(p.path('dist-ssr', 'main.js'), 'esm')
  expect(JSON.stringify(ssr.scripts)).toBe(JSON.stringify((await runBundle(bundle, 'esm')).scripts))
}

for (const { label, vite: V } of VITES) {
  describe(`${label} build --app (client + SSR environments)`, () => {
    for (const [label, config] of [
      ['config file (one plugin instance per environment)', withConfigFile],
      ['inline plugin (one instance for both environments)', async (p: Project, o: FluxAssetsOptions) => inline(p, o)],
    ] as const) {
      it(`${label}: pays each prompt once and prints the summary line once per build`, async () => {
        const p = await createProject('vite-app', { latencyMs: 50 })
        await buildApp(V.createBuilder, await config(p, p.options()))
        expect(p.fake.stats.generations).toBe(UNIQUE)
        expect(p.logs.infos.filter(m => SUMMARY.test(m))).toEqual([expect.stringContaining(`${UNIQUE} generated · 0 cached`)])
        await check(p)

        // Again, all cached: still one line (the client's), no call.
        p.logs.infos.length = 0
        const requests = p.fake.stats.generationRequests
        await buildApp(V.createBuilder, await config(p, p.options()))
        expect(p.fake.stats.generationRequests).toBe(requests)
        expect(p.logs.infos.filter(m => SUMMARY.test(m))).toEqual([expect.stringContaining(`0 generated · ${UNIQUE} cached`)])
        await check(p)
        expect(p.logs.errors).toEqual([])
      })
    }

    it('an SSR environment that has to generate says so (its line is news, not an echo)', async () => {
      const p = await createProject('vite-app-ssr-first')
      const config = inline(p, p.options())
      // Only the SSR environment is built: it is the one that pays.
      const builder = await V.createBuilder({ ...config, builder: { buildApp: async b => void (await b.build(b.environments.ssr!)) } })
      await builder.buildApp()
      expect(p.fake.stats.generations).toBe(UNIQUE)
      expect(p.logs.infos.filter(m => SUMMARY.test(m))).toEqual([expect.stringContaining(`${UNIQUE} generated · 0 cached`)])
    })
  })
}
