import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { type Plugin, rollup, watch } from 'rollup'
import { describe, it } from 'vitest'
import type { FluxAssetsOptions } from '../../src/core/types'
import flux from '../../src/rollup'
import { type Adapter, type Built, bundlerSuite, checkWatchEdit, createProject, nextWatchBuild, type Project } from './helpers'

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
  return { outDir, bundle: join(outDir, 'main.js'), kind: 'esm', urlOf: file => pathToFileURL(join(outDir, file)).href }
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
})
