// As the README says: Astro 5 runs Vite 6; the plugin goes in `vite.plugins`.
import { defineConfig } from 'astro/config'
import flux from 'unplugin-flux-assets/vite'

export default defineConfig({
  vite: { plugins: [flux({ width: 256, height: 256 })] },
})
