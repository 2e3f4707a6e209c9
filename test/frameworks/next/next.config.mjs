// As the README says: Next.js with webpack (`next build --webpack`); the plugin is added to every compilation.
import flux from 'unplugin-flux-assets/webpack'

export default {
  webpack(config) {
    config.plugins.push(flux({ width: 256, height: 256 }))
    return config
  },
}
