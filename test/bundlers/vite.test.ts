import { readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import type { ViteDevServer } from 'vite'
import { describe, expect, it } from 'vitest'
import { FileStore } from '../../src/core/store'
import type { FluxAssetsOptions } from '../../src/core/types'
import flux from '../../src/vite'
import { type Adapter, type Built, bundlerSuite, checkBuild, checkWatchEdit, createProject, listFiles, nextWatchBuild, type Project, runBundle, UNIQUE, NAMES } from './helpers'
import { VITES } from './vites'

for (const { label, vite: V } of VITES) {
  interface ViteExtra {
    base?: string
    ssr?: boolean
    watch?: boolean
  }

  /** `vite build` through the JS API, with no config file; the plugin finds its root through Vite. */
  async function viteBuild(p: Project, options: FluxAssetsOptions, outDir: string, extra: ViteExtra = {}) {
    return V.build({
      root: p.dir,
      base: extra.base,
      configFile: false,
      logLevel: 'silent',
      // The bundle is run in Node by the checks: no browser-only preload polyfill.
      build: { outDir, modulePreload: { polyfill: false }, ...(extra.ssr ? { ssr: 'src/main.js' } : {}), ...(extra.watch ? { watch: {} } : {}) },
      plugins: [flux({ ...options, root: undefined })],
    })
  }

  async function built(outDir: string, extra: ViteExtra = {}): Promise<Built> {
    const bundle = extra.ssr ? 'main.js' : (await listFiles(outDir)).find(f => /^assets\/index-.*\.js$/.test(f))!
    const base = extra.base ?? '/'
    return {
      outDir,
      bundle: join(outDir, bundle),
      kind: 'esm',
      // A relative base resolves from the chunk (in assets/) at run time: in Node, a file URL.
      urlOf: file => (base.startsWith('/') ? `${base}${file}` : pathToFileURL(join(outDir, file)).href),
      names: NAMES.rollup,
    }
  }

  const vite: Adapter = {
    name: label.replace(' ', ''),
    build: async (p, options, outDir) => (await viteBuild(p, options, outDir), built(outDir)),
  }

  describe(`${label} build (${V.version})`, () => {
    bundlerSuite(vite)

    it('honours an absolute base and a relative base in ?flux URLs', async () => {
      const p = await createProject('vite-base')
      for (const [base, out] of [['/sub/', 'dist-sub'], ['./', 'dist-rel']]) {
        await viteBuild(p, p.options(), p.path(out), { base })
        await checkBuild(p, await built(p.path(out), { base }))
      }
      expect(p.fake.stats.generations).toBe(UNIQUE)
    })

    // Vite 8 resolves each `import.meta.ROLLUP_FILE_URL_` occurrence through its JS resolveFileUrl hook, one call
    // across the Rust boundary each: a module names each image once however many fields use it (#16: four per image;
    // once, a warm 300-image build went 666 -> 603 ms in 8 alternating pairs). Vite 6 and 7 replace `__VITE_ASSET__` strings in renderChunk instead.
    it.runIf(label === 'vite 8')('resolves each image URL once per module, however many fields name it', async () => {
      const p = await createProject('vite-url-once')
      const calls: Array<{ moduleId: string; referenceId: string }> = []
      const counter = { name: 'count-file-urls', enforce: 'pre' as const, resolveFileUrl: (a: { moduleId: string; referenceId: string }) => void calls.push(a) }
      await V.build({
        root: p.dir,
        configFile: false,
        logLevel: 'silent',
        build: { outDir: p.path('dist'), modulePreload: { polyfill: false } },
        plugins: [counter, flux({ ...p.options(), root: undefined })],
      })
      await checkBuild(p, await built(p.path('dist')))
      const perModule = new Map<string, number>()
      for (const c of calls) perModule.set(`${c.moduleId} ${c.referenceId}`, (perModule.get(`${c.moduleId} ${c.referenceId}`) ?? 0) + 1)
      // virtual:flux-assets and each `?flux` module name every one of their images: in url, src, variants, srcset.
      expect(new Set(calls.filter(c => c.moduleId.includes('flux-assets')).map(c => c.referenceId)).size).toBeGreaterThanOrEqual(UNIQUE)
      expect([...perModule].filter(([, n]) => n > 1)).toEqual([])
    })

    it('SSR and client builds plus a second plugin instance, all at once, pay each prompt once', async () => {
      const p = await createProject('vite-ssr', { latencyMs: 150 })
      await Promise.all([
        viteBuild(p, p.options(), p.path('dist')),
        viteBuild(p, p.options(), p.path('dist-b')),
        viteBuild(p, p.options(), p.path('dist-ssr'), { ssr: true }),
      ])
      expect(p.fake.stats.generations).toBe(UNIQUE)
      const client = await checkBuild(p, await built(p.path('dist')))
      expect(await checkBuild(p, await built(p.path('dist-b')))).toEqual(client)
      // The server renders the same URLs the client ships.
      const ssr = await runBundle(p.path('dist-ssr', 'main.js'), 'esm')
      const urls = (app: any) => JSON.stringify(app.scripts)
      expect(urls(ssr)).toBe(urls(await runBundle((await built(p.path('dist'))).bundle, 'esm')))
    })

    it('build --watch: editing one prompt generates only that image and rebuilds the bundle', async () => {
      const p = await createProject('vite-watch')
      const watcher = (await viteBuild(p, p.options(), p.path('dist'), { watch: true })) as unknown as Parameters<typeof nextWatchBuild>[0] & { close(): Promise<void> }
      try {
        await nextWatchBuild(watcher)
        await checkWatchEdit(p, () => built(p.path('dist')), () => nextWatchBuild(watcher), { script: 'src/scenes/outro.script.json', id: 'skyline', prompt: 'A city skyline at night' })
      } finally {
        await watcher.close()
      }
    })
  })

  describe(`${label} dev server`, () => {
    const start = async (p: Project, base = '/') => {
      const server = await V.createServer({
        root: p.dir,
        base,
        configFile: false,
        logLevel: 'silent',
        server: { port: 0, host: '127.0.0.1', strictPort: false },
        plugins: [flux(p.options({ root: undefined }))],
      })
      await server.listen()
      return server
    }
    const origin = (server: ViteDevServer) => server.resolvedUrls!.local[0]!.replace(/\/sub\/$|\/$/, '')

    /** Every `?flux` asset of the intro script as the dev server gives it, with its served bytes. */
    async function introAssets(server: ViteDevServer, base: string) {
      const mod = (await server.ssrLoadModule('/src/scenes/intro.script.json?flux')) as { default: any }
      const assets = mod.default.visual_track.flatMap((s: any) => Object.values(s.assets ?? {})) as any[]
      return Promise.all(
        assets.map(async a => {
          const match = new RegExp(`^${base}@flux-assets/([0-9a-f]{64})\\.(jpg|png)$`).exec(a.url)
          expect(match, `${a.url} is a dev URL under ${base}`).not.toBeNull()
          const res = await fetch(`${origin(server)}${a.url}`)
          expect(res.status).toBe(200)
          return { ...a, key: match![1]!, ext: match![2]!, type: res.headers.get('content-type'), bytes: Buffer.from(await res.arrayBuffer()) }
        }),
      )
    }

    it('serves ?flux images from the cache under <base>@flux-assets/, also after a restart with no memory state', async () => {
      const p = await createProject('vite-dev')
      const cache = new FileStore(p.path('.flux-cache'))
      let server = await start(p, '/sub/')
      let assets: Awaited<ReturnType<typeof introAssets>>
      try {
        // What a browser fetches: main.js, then the `?flux` module at the URL main.js imports it from.
        const main = await (await fetch(`${origin(server)}/sub/src/main.js`)).text()
        const imported = /from "([^"]*intro\.script\.json[^"]*flux[^"]*)"/.exec(main)![1]!
        const code = await (await fetch(`${origin(server)}${imported}`)).text()
        // Each original as `url` and `src` (and in `variants` and `srcset`): three images.
        expect(new Set(code.match(/"\/sub\/@flux-assets\/[0-9a-f]{64}\.(jpg|png)"/g))).toHaveProperty('size', 3)
        assets = await introAssets(server, '/sub/')
        expect(assets.map(a => a.prompt).sort()).toEqual(['A businessman in a suit', 'A glass office at dawn', 'A minimal fox logo'])
        for (const a of assets) {
          const hit = (await cache.get(a.key))!
          expect(hit.record.prompt).toBe(a.prompt)
          expect(a.bytes.equals(await readFile(hit.file))).toBe(true)
          expect(a.type).toBe(a.ext === 'png' ? 'image/png' : 'image/jpeg')
        }
        // main.js imports virtual:flux-assets, which lists (so generates) every script's images: each once.
        expect(p.fake.stats.generations).toBe(UNIQUE)
        expect((await fetch(`${origin(server)}/sub/@flux-assets/${'0'.repeat(64)}.jpg`)).status).toBe(404)
      } finally {
        await server.close()
      }
      // A new server on the same cache: the old URLs serve before any module is loaded, and nothing is regenerated.
      server = await start(p, '/sub/')
      try {
        for (const a of assets) {
          const res = await fetch(`${origin(server)}${a.url}`)
          expect(res.status).toBe(200)
          expect(Buffer.from(await res.arrayBuffer()).equals(a.bytes)).toBe(true)
        }
        expect((await introAssets(server, '/sub/')).map(a => a.url)).toEqual(assets.map(a => a.url))
        expect(p.fake.stats.generations).toBe(UNIQUE)
      } finally {
        await server.close()
      }
    })

    it('serves the WebP variants and blur a build ships, from the cache, making a missing one on request', async () => {
      const p = await createProject('vite-dev-variants')
      const server = await start(p)
      try {
        const mod = (await server.ssrLoadModule('/src/scenes/intro.script.json?flux')) as { default: any }
        const office = mod.default.visual_track[0].assets.office
        const webp = office.variants[0]
        expect(webp).toEqual({ format: 'webp', width: 256, height: 256, url: `/@flux-assets/${office.url.slice(14, 78)}.256w-q75.webp`, bytes: expect.any(Number) })
        expect(office.sources).toEqual([{ type: 'image/webp', srcset: `${webp.url} 256w` }])
        expect(office.blur.dataURL).toMatch(/^data:image\/webp;base64,/)
        const get = async (url: string) => {
          const res = await fetch(`${origin(server)}${url}`)
          return { status: res.status, type: res.headers.get('content-type'), bytes: Buffer.from(await res.arrayBuffer()) }
        }
        const served = await get(webp.url)
        expect(served).toMatchObject({ status: 200, type: 'image/webp' })
        expect(served.bytes.length).toBe(webp.bytes)
        // Variants gone from the cache (a prune, a new machine): the URL makes its variant again, with no API call.
        const cache = new FileStore(p.path('.flux-cache'))
        const shard = join(cache.root, office.url.slice(14, 16))
        const isVariant = (f: string) => f.includes('~')
        for (const f of (await listFiles(shard)).filter(isVariant)) await rm(join(shard, f))
        const calls = p.fake.stats.generationRequests
        const again = await get(webp.url)
        expect(again).toMatchObject({ status: 200, type: 'image/webp' })
        expect(again.bytes.equals(served.bytes)).toBe(true)
        expect((await listFiles(shard)).filter(isVariant).length).toBeGreaterThan(0)
        // Another width than the script's (a URL edited by hand) is made too, never wider than the image.
        const wide = await get(webp.url.replace('.256w-', '.4000w-'))
        expect(wide.status).toBe(200)
        expect(p.fake.stats.generationRequests).toBe(calls)
        expect((await get(`/@flux-assets/${'0'.repeat(64)}.256w-q75.webp`)).status).toBe(404)
      } finally {
        await server.close()
      }
    })

    it('editing a script shows the new prompt on the next transform and generates only it', async () => {
      const p = await createProject('vite-dev-edit')
      const server = await start(p)
      try {
        const first = (await server.transformRequest('/src/scenes/intro.script.json?flux'))!.code
        expect(first).toContain('A glass office at dawn')
        // Loading one `?flux` module generates that script's images only.
        expect(p.fake.stats.generations).toBe(3)
        expect((await server.transformRequest('virtual:flux-assets'))!.code).toContain('A glass office at dawn')
        expect(p.fake.stats.generations).toBe(UNIQUE)
        await p.editScript('src/scenes/intro.script.json', s => (s.visual_track[0].assets.office = 'A glass office at night'))
        // The file watcher invalidates the modules that use the script; wait for it (bounded by the test timeout).
        const next = async (url: string) => {
          for (;;) {
            const { code } = (await server.transformRequest(url))!
            if (code.includes('A glass office at night')) return code
            await new Promise(r => setTimeout(r, 50))
          }
        }
        expect(await next('/src/scenes/intro.script.json?flux')).not.toContain('A glass office at dawn')
        expect(await next('virtual:flux-assets')).not.toContain('A glass office at dawn')
        expect(p.fake.stats.generations).toBe(UNIQUE + 1)
        const assets = await introAssets(server, '/')
        expect(assets.find(a => a.id === 'office')!.prompt).toBe('A glass office at night')
      } finally {
        await server.close()
      }
    })

    it('an asset removed from a script while the dev server runs leaves virtual:flux-assets and its ?flux module', async () => {
      const p = await createProject('vite-dev-remove')
      const server = await start(p)
      try {
        expect((await server.transformRequest('virtual:flux-assets'))!.code).toContain('A city skyline at sunset')
        expect((await server.transformRequest('/src/scenes/outro.script.json?flux'))!.code).toContain('A city skyline at sunset')
        // One edit removes `skyline` and adds `harbour`: the new prompt shows the server has seen the edit.
        await p.editScript('src/scenes/outro.script.json', s => {
          delete s.visual_track[0].assets.skyline
          s.visual_track[0].assets.harbour = 'A harbour at night'
        })
        const next = async (url: string) => {
          for (;;) {
            const { code } = (await server.transformRequest(url))!
            if (code.includes('A harbour at night')) return code
            await new Promise(r => setTimeout(r, 50))
          }
        }
        expect(await next('virtual:flux-assets')).not.toContain('A city skyline at sunset')
        expect(await next('/src/scenes/outro.script.json?flux')).not.toContain('A city skyline at sunset')
        const mod = (await server.ssrLoadModule('virtual:flux-assets')) as { default: Record<string, Array<{ id: string }>> }
        expect(mod.default['src/scenes/outro.script.json']!.map(e => e.id).sort()).toEqual(['avatar', 'harbour'])
      } finally {
        await server.close()
      }
    })

    it('virtual:flux-assets lists every script in dev, not only the ones loaded so far', async () => {
      const p = await createProject('vite-dev-virtual')
      const server = await start(p)
      try {
        const mod = (await server.ssrLoadModule('virtual:flux-assets')) as { default: Record<string, any[]> }
        expect(Object.keys(mod.default).sort()).toEqual(['content/credits.script.json', 'src/scenes/intro.script.json', 'src/scenes/outro.script.json'])
        for (const entries of Object.values(mod.default)) for (const e of entries) expect(e.url).toMatch(/^\/@flux-assets\/[0-9a-f]{64}\.(jpg|png)$/)
        expect(p.fake.stats.generations).toBe(UNIQUE)
      } finally {
        await server.close()
      }
    })
  })
}
