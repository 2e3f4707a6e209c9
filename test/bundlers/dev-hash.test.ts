// #16: a dev server serves an image it already verified in this process without hashing its bytes again, and an
// image damaged on disk since is hashed again and no longer served. Real Vite dev server, in-process; the hashes of
// image bytes are counted through the one sha256 the store uses (key.ts), wrapped here and otherwise unchanged.
import { readFile, stat, utimes, writeFile } from 'node:fs/promises'
import type { ViteDevServer } from 'vite'
import { createServer } from 'vite'
import { describe, expect, it, vi } from 'vitest'
import { FileStore } from '../../src/core/store'
import flux from '../../src/vite'
import { createProject, type Project, UNIQUE } from './helpers'

/** sha256 calls over bytes (keys hash strings), by their length. */
const hashed = vi.hoisted(() => [] as number[])
vi.mock('../../src/core/key', async importOriginal => {
  const original = await importOriginal<typeof import('../../src/core/key')>()
  return { ...original, sha256: (data: string | Uint8Array) => (typeof data !== 'string' && hashed.push(data.length), original.sha256(data)) }
})

async function start(p: Project): Promise<ViteDevServer> {
  const server = await createServer({
    root: p.dir,
    configFile: false,
    logLevel: 'silent',
    server: { port: 0, host: '127.0.0.1', strictPort: false },
    // formats: [] — the originals alone: no variant is made (and hashed) on the way.
    plugins: [flux(p.options({ root: undefined, formats: [] }))],
  })
  await server.listen()
  return server
}

describe('dev server: an image verified in this process is not hashed again', () => {
  it('serves one image N times with one hash, and a file damaged since (same size, mtime put back) is hashed again and refused', async () => {
    const p = await createProject('vite-dev-hash')
    const server = await start(p)
    try {
      const origin = server.resolvedUrls!.local[0]!.replace(/\/$/, '')
      // virtual:flux-assets (once to generate every image, then again: all cached) looks each entry up once (plan),
      // not again for each URL it writes.
      await server.ssrLoadModule('virtual:flux-assets')
      await server.moduleGraph.invalidateAll()
      const listed = vi.spyOn(FileStore.prototype, 'get')
      await server.ssrLoadModule('virtual:flux-assets')
      expect(listed).toHaveBeenCalledTimes(UNIQUE)
      listed.mockRestore()
      const mod = (await server.ssrLoadModule('/src/scenes/intro.script.json?flux')) as { default: any }
      const url: string = mod.default.visual_track[0].assets.office.url
      const key = /@flux-assets\/([0-9a-f]{64})\./.exec(url)![1]!
      const hit = (await new FileStore(p.path('.flux-cache')).get(key))!
      const size = hit.record.size
      const original = await readFile(hit.file)
      const of = () => hashed.filter(n => n === size).length

      const before = of()
      // The entry the module load found is the one served: no lookup (record read + stat) per request.
      const lookups = vi.spyOn(FileStore.prototype, 'get')
      const N = 12
      for (let i = 0; i < N; i++) {
        const res = await fetch(`${origin}${url}`)
        expect(res.status).toBe(200)
        expect(Buffer.from(await res.arrayBuffer()).equals(original)).toBe(true)
      }
      expect(of() - before).toBe(1)
      expect(lookups).not.toHaveBeenCalled()
      lookups.mockRestore()
      // The module again (a reload): its URLs come from the verified entry, nothing hashed.
      await server.moduleGraph.invalidateAll()
      await server.ssrLoadModule('/src/scenes/intro.script.json?flux')
      expect(of() - before).toBe(1)

      // Damaged in place, same size, its mtime put back: only the ctime says it changed.
      const { atime, mtime } = await stat(hit.file)
      const damaged = Buffer.from(original)
      damaged[damaged.length >> 1]! ^= 0xff
      await writeFile(hit.file, damaged)
      await utimes(hit.file, atime, mtime)
      const res = await fetch(`${origin}${url}`)
      expect(res.status).toBe(404)
      expect(of() - before).toBe(2)
      expect((await fetch(`${origin}${url}`)).status).toBe(404)
    } finally {
      await server.close()
    }
  })
})
