import { rspack } from '@rspack/core'
import { describe, it } from 'vitest'
import flux from '../../src/rspack'
import { bundlerSuite, checkWatchEdit, createProject } from './helpers'
import { startWatch, webpackLikeAdapter } from './webpack-like'

// `output.publicPath: '/static/'`: every `?flux` URL must carry it; names are ours (`assets/<slug>-<hash8>.<ext>`).
const create = (config: any) => rspack(config) as any

describe('rspack', () => {
  bundlerSuite(webpackLikeAdapter('rspack', create, flux))

  it('watch: editing one prompt regenerates only that image and rebuilds', async () => {
    const p = await createProject('rspack-watch')
    const watch = startWatch(create, flux, p, p.options(), p.path('dist'))
    try {
      await watch.next()
      const change = { script: 'src/scenes/intro.script.json', id: 'office', prompt: 'A glass office at night' }
      await checkWatchEdit(p, watch.built, watch.next, change)
    } finally {
      await watch.close()
    }
  })
})
