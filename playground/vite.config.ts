import { defineConfig } from 'vite'
// Resolved through this package's own `exports` to dist/vite.js, exactly as an app that installed it would.
import flux from 'unplugin-flux-assets/vite'

// The key comes from TOGETHER_API_KEY (or playground/.env); without one the build ships placeholders.
// Images are cached in playground/.flux-cache: a second build makes no API call.
export default defineConfig({
  plugins: [flux()],
})
