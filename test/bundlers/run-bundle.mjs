// Runs a built fixture bundle in a fresh Node process and prints what it put on `globalThis.__FLUX_APP__`.
// Usage: node run-bundle.mjs <file> <esm|script>. A child process keeps each bundle's globals and module cache apart.
import { readFileSync } from 'node:fs'
import { pathToFileURL } from 'node:url'
import vm from 'node:vm'

const [file, kind] = process.argv.slice(2)
if (!file || (kind !== 'esm' && kind !== 'script')) throw new Error('usage: run-bundle.mjs <file> <esm|script>')
if (kind === 'esm') await import(pathToFileURL(file).href)
else vm.runInThisContext(readFileSync(file, 'utf8'), { filename: file })
process.stdout.write(JSON.stringify(/** @type {any} */ (globalThis).__FLUX_APP__ ?? null))
