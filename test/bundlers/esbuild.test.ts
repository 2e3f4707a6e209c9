import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { join, relative } from 'node:path'
import { type BuildOptions, build, context } from 'esbuild'
import { describe, expect, it } from 'vitest'
import type { FluxAssetsOptions } from '../../src/core/types'
import flux from '../../src/esbuild'
import { type Adapter, type Built, buildError, bundlerSuite, checkBuild, createProject, listFiles, type Project, readManifest, UNIQUE, NAMES } from './helpers'

/** esbuild writes the images itself (unplugin's emitFile): they must land in `outdir`, next to the bundle. */
const config = (p: Project, options: FluxAssetsOptions, outDir: string, extra: BuildOptions = {}): BuildOptions => ({
  absWorkingDir: p.dir,
  entryPoints: { main: 'src/main.js' },
  bundle: true,
  format: 'esm',
  outdir: relative(p.dir, outDir),
  logLevel: 'silent',
  plugins: [flux(options)],
  ...extra,
})

function built(outDir: string, publicPath?: string): Built {
  // Without publicPath, a URL relative to the output folder (like esbuild's own file loader); with it, under it.
  return { outDir, bundle: join(outDir, 'main.js'), kind: 'esm', urlOf: file => (publicPath ? `${publicPath}${file}` : `./${file}`), names: NAMES.esbuild }
}

const adapter: Adapter = {
  name: 'esbuild',
  async build(p, options, outDir) {
    await build(config(p, options, outDir))
    return built(outDir)
  },
}

describe('esbuild', () => {
  bundlerSuite(adapter)

  it('a relative outdir is resolved against absWorkingDir, not the process cwd; publicPath prefixes every URL', async () => {
    const p = await createProject('esbuild-public')
    expect(process.cwd()).not.toBe(p.dir)
    await build(config(p, p.options(), p.path('out/web'), { publicPath: 'https://cdn.example.com/app/' }))
    await checkBuild(p, built(p.path('out/web'), 'https://cdn.example.com/app/'))
    // Nothing written relative to the process cwd.
    expect(existsSync(join(process.cwd(), 'out/web'))).toBe(false)
  })

  it('without outdir (only outfile) fails at once with a message saying what to use, before any API call', async () => {
    const p = await createProject('esbuild-outfile')
    const { outdir: _, ...rest } = config(p, p.options(), p.path('dist'))
    const message = await buildError(build({ ...rest, outfile: 'dist/main.js' }))
    expect(message).toContain('esbuild needs the `outdir` option to emit images')
    expect(message).toContain('use `outdir`')
    expect(p.fake.stats.generationRequests).toBe(0)
    expect(existsSync(p.path('dist/main.js'))).toBe(false)
  })

  it('write: false still writes the images and the manifest to outdir; the in-memory bundle points at them', async () => {
    const p = await createProject('esbuild-nowrite')
    const result = await build({ ...config(p, p.options(), p.path('dist')), write: false })
    const files = await listFiles(p.path('dist'))
    expect(files).toContain('flux-assets.json')
    expect(files).not.toContain('main.js')
    const bundle = result.outputFiles!.find(f => f.path === p.path('dist', 'main.js'))!.text
    for (const entry of (await readManifest(p.path('dist'))).entries) {
      expect(files).toContain(entry.file)
      expect(bundle).toContain(`"./${entry.file}"`)
    }
  })

  it('context().rebuild(): each rebuild emits again from the cache with zero API calls; a script edit is picked up', async () => {
    const p = await createProject('esbuild-rebuild')
    const ctx = await context(config(p, p.options(), p.path('dist')))
    try {
      await ctx.rebuild()
      const first = await checkBuild(p, built(p.path('dist')))
      expect(p.fake.stats.generations).toBe(UNIQUE)
      const requests = p.fake.stats.generationRequests
      await ctx.rebuild()
      expect(p.fake.stats.generationRequests).toBe(requests)
      expect(await checkBuild(p, built(p.path('dist')))).toEqual(first)

      const change = { script: 'src/scenes/outro.script.json', id: 'skyline', prompt: 'A city skyline at night' }
      await p.editScript(change.script, s => (s.visual_track[0].assets.skyline = change.prompt))
      await ctx.rebuild()
      expect(p.fake.stats.generations).toBe(UNIQUE + 1)
      const old = first.entries.find(e => e.id === 'skyline')!.file
      // The old image and its WebP stay in outdir (esbuild does not empty it).
      const after = await checkBuild(p, built(p.path('dist')), { edited: change, leftovers: first.entries.find(e => e.id === 'skyline')!.variants.map(v => v.file) })
      expect(after.entries.find(e => e.id === 'skyline')!.file).not.toBe(old)
      expect(await readFile(p.path('dist/main.js'), 'utf8')).toContain(change.prompt)
    } finally {
      await ctx.dispose()
    }
  })
})
