import { defineConfig } from 'vitest/config'

// npm run test:frameworks: real Astro, Nuxt, SvelteKit and Next.js production builds (test/frameworks/*/), one at a
// time (each build uses both cores). Not part of npm test.
export default defineConfig({
  test: {
    include: ['test/frameworks/*.test.ts'],
    testTimeout: 300_000,
    hookTimeout: 120_000,
    fileParallelism: false,
  },
})
