import webpack from 'webpack'
import { describe, it } from 'vitest'
import flux from '../../src/webpack'
import { bundlerSuite, checkWatchEdit, createProject } from './helpers'
import { startWatch, webpackLikeAdapter } from './webpack-like'

// `output.publicPath: '/static/'`: every `?flux` URL must carry it; names are ours (`assets/<slug>-<hash8>.<ext>`).
const create = (config: any) => webpack(config) as any

describe('webpack', () => {
  bundlerSuite(webpackLikeAdapter('webpack', create, flux))

  it('webpack --watch: editing one prompt regenerates only that image and rebuilds', async () => {
    const p = await createProject('webpack-watch')
    const watch = startWatch(create, flux, p, p.options(), p.path('dist'))
    try {
      await watch.next()
      // A script only virtual:flux-assets lists: that module must be rebuilt too.
      const change = { script: 'content/credits.script.json', id: 'credits', prompt: 'Film credits on a blue background' }
      await checkWatchEdit(p, watch.built, watch.next, change)
    } finally {
      await watch.close()
    }
  })
})
