// A Vite build of a fixture copy in a fresh Node process, with the built plugin (dist/vite.js): says whether the
// build loaded sharp's native code. A child keeps the test's own sharp (loaded by other tests) out of the answer.
// Usage: node build-child.mjs <project dir> <options JSON>
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { build } from 'vite'

const [dir, json] = process.argv.slice(2)
const { default: flux } = await import(pathToFileURL(join(import.meta.dirname, '../../dist/vite.js')).href)
await build({
  root: dir,
  configFile: false,
  logLevel: 'silent',
  build: { outDir: join(dir, 'dist-child'), modulePreload: { polyfill: false } },
  plugins: [flux({ ...JSON.parse(json), logger: { info() {}, warn() {}, error() {} } })],
})
// libvips and sharp's addon are shared objects: once sharp is imported, they are mapped into the process.
const report = /** @type {{ sharedObjects: string[] }} */ (/** @type {unknown} */ (process.report.getReport()))
process.stdout.write(JSON.stringify({ sharp: report.sharedObjects.some(f => /sharp|vips/i.test(f)) }))
