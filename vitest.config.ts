import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Scratch projects written by tests (and by people poking around) are not tests.
    exclude: ['**/node_modules/**', 'test/.tmp/**', 'bench/.tmp/**', 'test/frameworks/**'],
    // Real bundler builds and child processes: generous, and never a timing assertion.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // 2-core machines: two test files at a time keeps builds from starving each other.
    maxWorkers: 2,
    // Removes test/.tmp after the run.
    globalSetup: ['test/global-setup.ts'],
    // No catalog kept from one test to the next (a fake may get an earlier fake's port).
    setupFiles: ['test/setup-each.ts'],
  },
})
