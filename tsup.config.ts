import { defineConfig } from 'tsup'

export default defineConfig({
  // Every top-level src/*.ts is an entry: index, one per bundler, and the CLI.
  entry: ['src/*.ts'],
  format: ['esm', 'cjs'],
  target: 'node20',
  dts: true,
  clean: true,
  splitting: true,
  shims: true,
})
