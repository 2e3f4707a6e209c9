import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { rolldown, watch } from 'rolldown'
import { describe, it } from 'vitest'
import type { FluxAssetsOptions } from '../../src/core/types'
import flux from '../../src/rolldown'
import { type Adapter, type Built, bundlerSuite, checkWatchEdit, createProject, nextWatchBuild, type Project, NAMES } from './helpers'

const config = (p: Project, options: FluxAssetsOptions, outDir: string) => ({
  input: p.path('src/main.js'),
  plugins: [flux(options)],
  output: { dir: outDir, format: 'es' as const, entryFileNames: 'main.js' },
  onLog: () => {},
})

function built(outDir: string): Built {
  // ESM: `import.meta.ROLLUP_FILE_URL_…` resolves against the chunk; in Node, a file URL.
  return { outDir, bundle: join(outDir, 'main.js'), kind: 'esm', urlOf: file => pathToFileURL(join(outDir, file)).href, names: NAMES.rollup }
}

const adapter: Adapter = {
  name: 'rolldown',
  async build(p, options, outDir) {
    const { output, ...input } = config(p, options, outDir)
    const bundle = await rolldown(input)
    try {
      await bundle.write(output)
    } finally {
      await bundle.close()
    }
    return built(outDir)
  },
}

describe('rolldown', () => {
  bundlerSuite(adapter)

  it('watch: editing one prompt regenerates only that image and rebuilds', async () => {
    const p = await createProject('rolldown-watch')
    const watcher = watch(config(p, p.options(), p.path('dist')))
    try {
      await nextWatchBuild(watcher)
      const change = { script: 'src/scenes/intro.script.json', id: 'office', prompt: 'A glass office at night' }
      await checkWatchEdit(p, async () => built(p.path('dist')), () => nextWatchBuild(watcher), change)
    } finally {
      await watcher.close()
    }
  })
})
