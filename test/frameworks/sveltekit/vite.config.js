// As the README says: SvelteKit's vite.config, the plugin next to sveltekit().
import { sveltekit } from '@sveltejs/kit/vite'
import flux from 'unplugin-flux-assets/vite'
import { defineConfig } from 'vite'

export default defineConfig({
  plugins: [flux({ width: 256, height: 256 }), sveltekit()],
})
