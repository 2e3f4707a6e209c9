import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { type Plugin, rollup, watch } from 'rollup'
import { describe, expect, it } from 'vitest'
import type { FluxAssetsOptions } from '../../src/core/types'
import flux from '../../src/rollup'
import { type Adapter, type Built, bundlerSuite, checkWatchEdit, createProject, nextWatchBuild, type Project, NAMES, readManifest, runBundle } from './helpers'

/** Rollup needs a plugin for plain `.json` imports: the smallest one, which must see the script untouched. */
const json: Plugin = {
  name: 'plain-json',
  transform: (code, id) => (id.endsWith('.json') ? { code: `export default ${code}`, map: null } : null),
}

const config = (p: Project, options: FluxAssetsOptions, outDir: string) => ({
  input: p.path('src/main.js'),
  plugins: [flux(options), json],
  output: { dir: outDir, format: 'es' as const, entryFileNames: 'main.js' },
})

function built(outDir: string): Built {
  // ESM: `import.meta.ROLLUP_FILE_URL_…` resolves against the chunk; in Node, a file URL.
  return { outDir, bundle: join(outDir, 'main.js'), kind: 'esm', urlOf: file => pathToFileURL(join(outDir, file)).href, names: NAMES.rollup }
}

const adapter: Adapter = {
  name: 'rollup',
  async build(p, options, outDir) {
    const { output, ...input } = config(p, options, outDir)
    const bundle = await rollup({ ...input, onwarn: () => {} })
    try {
      await bundle.write(output)
    } finally {
      await bundle.close()
    }
    return built(outDir)
  },
}

describe('rollup', () => {
  bundlerSuite(adapter)

  it('watch: editing a script no module imports (only the manifest lists it) regenerates just that image', async () => {
    const p = await createProject('rollup-watch')
    const watcher = watch({ ...config(p, p.options(), p.path('dist')), onwarn: () => {} })
    try {
      await nextWatchBuild(watcher)
      const change = { script: 'content/credits.script.json', id: 'credits', prompt: 'Film credits on a blue background' }
      await checkWatchEdit(p, async () => built(p.path('dist')), () => nextWatchBuild(watcher), change)
    } finally {
      await watcher.close()
    }
  })

  it('watch: an asset removed from a script leaves the manifest and virtual:flux-assets of the next build', async () => {
    const p = await createProject('rollup-watch-remove')
    const watcher = watch({ ...config(p, p.options(), p.path('dist')), onwarn: () => {} })
    try {
      await nextWatchBuild(watcher)
      expect((await readManifest(p.path('dist'))).entries.map(e => e.id)).toContain('skyline')
      const rebuilt = nextWatchBuild(watcher)
      // One edit removes `skyline` and adds `harbour`: the new asset shows the rebuild has seen the edit.
      await p.editScript('src/scenes/outro.script.json', s => {
        delete s.visual_track[0].assets.skyline
        s.visual_track[0].assets.harbour = 'A harbour at night'
      })
      await rebuilt
      const after = await readManifest(p.path('dist'))
      expect(after.entries.map(e => e.id)).toContain('harbour')
      expect(after.entries.filter(e => e.script === 'src/scenes/outro.script.json').map(e => e.id).sort()).toEqual(['avatar', 'harbour'])
      const app = await runBundle(p.path('dist/main.js'), 'esm')
      const outro = app.scripts['src/scenes/outro.script.json'].map((e: { id: string }) => e.id).sort()
      expect(outro).toEqual(['avatar', 'harbour'])
    } finally {
      await watcher.close()
    }
  })
})
