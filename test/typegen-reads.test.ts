// Typed scripts without reading the scripts twice (#16): a full scan hands each parsed script's type to typegen, and
// in dev a `?flux` load reads again only the scripts whose size or mtime changed. Every read of a script file is
// counted (fs callbacks and fs/promises alike), so typegen going back to the files shows up here.
import fs, { promises as fsp } from 'node:fs'
import { readFile, utimes } from 'node:fs/promises'
import { syncBuiltinESMExports } from 'node:module'
import { join } from 'node:path'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { BuildSession } from '../src/core/session'
import { TYPES_FILE } from '../src/core/typegen'
import { removeDir, scene, silentLogger, SMALL, tempDir, writeScripts } from './core-helpers'

let root: string | undefined
afterEach(async () => {
  vi.restoreAllMocks()
  syncBuiltinESMExports()
  await removeDir(root)
  root = undefined
})

/** Counts every open or read of a `.script.json` file, by file name, from now on. */
function countReads(): Map<string, number> {
  const reads = new Map<string, number>()
  const count = (path: unknown) => {
    const name = String(path).split(/[\\/]/).at(-1)!
    if (name.endsWith('.script.json')) reads.set(name, (reads.get(name) ?? 0) + 1)
  }
  for (const [target, name] of [[fs, 'open'], [fs, 'readFile'], [fs, 'readFileSync'], [fs, 'openSync'], [fsp, 'open'], [fsp, 'readFile']] as const) {
    const real = (target as unknown as Record<string, (...args: unknown[]) => unknown>)[name]!
    const spyOn = vi.spyOn as unknown as (object: object, method: string) => { mockImplementation(fn: (...args: unknown[]) => unknown): void }
    spyOn(target, name).mockImplementation((path: unknown, ...rest: unknown[]) => (count(path), real.call(target, path, ...rest)))
  }
  // Named imports (`import { readFile } from 'node:fs/promises'`) see the counting functions too.
  syncBuiltinESMExports()
  return reads
}

describe('typed scripts: what typegen reads', () => {
  it('a full scan types every script from what it parsed: each script is read once', async () => {
    root = await tempDir('typegen-reads')
    await writeScripts(root, { 'src/intro.script.json': scene({ avatar: 'A fox' }), 'src/outro.script.json': scene({ end: 'A kite' }), 'src/c/extra.script.json': scene({ x: 'A teapot' }) })
    const session = new BuildSession({ root, ...SMALL, offline: true, logger: silentLogger })
    session.configure(root, join(root, 'dist'))
    const reads = countReads()
    await session.generateAll()
    expect(Object.fromEntries(reads)).toEqual({ 'intro.script.json': 1, 'outro.script.json': 1, 'extra.script.json': 1 })
    const types = await readFile(join(root, TYPES_FILE), 'utf8')
    for (const id of ['avatar', 'end', 'x']) expect(types).toContain(`"${id}": FluxAsset`)
  })

  it('in dev, a ?flux load re-reads only the scripts that changed, and the declarations follow the edit', async () => {
    root = await tempDir('typegen-dev')
    await writeScripts(root, { 'src/intro.script.json': scene({ avatar: 'A fox' }), 'src/outro.script.json': scene({ end: 'A kite' }), 'src/c/extra.script.json': scene({ x: 'A teapot' }) })
    const session = new BuildSession({ root, ...SMALL, offline: true, logger: silentLogger })
    session.configure(root, undefined, true)
    await session.generateAll()
    const intro = join(root, 'src/intro.script.json')
    await writeScripts(root, { 'src/intro.script.json': scene({ avatar: 'A fox', hero: 'A hero shot' }) })
    // Still for longer than the dev settle time, so the load does not wait for the editor to stop writing.
    const past = new Date(Date.now() - 10_000)
    await utimes(intro, past, past)
    const reads = countReads()
    await session.recordsFor(intro)
    expect(reads.get('outro.script.json') ?? 0).toBe(0)
    expect(reads.get('extra.script.json') ?? 0).toBe(0)
    expect(await readFile(join(root, TYPES_FILE), 'utf8')).toContain('"hero": FluxAsset')
    // Nothing changed since: a second load reads no other script and leaves the file as it is.
    const before = await fsp.stat(join(root, TYPES_FILE))
    reads.clear()
    await session.recordsFor(intro)
    expect(reads.get('outro.script.json') ?? 0).toBe(0)
    expect((await fsp.stat(join(root, TYPES_FILE))).mtimeMs).toBe(before.mtimeMs)
  })
})
