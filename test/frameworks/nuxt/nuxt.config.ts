// As the README says: Nuxt 4 runs Vite 7; the plugin goes in `vite.plugins`.
import flux from 'unplugin-flux-assets/vite'

export default defineNuxtConfig({
  compatibilityDate: '2025-07-15',
  devtools: { enabled: false },
  telemetry: false,
  vite: { plugins: [flux({ width: 256, height: 256 })] },
})
