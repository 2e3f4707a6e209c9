// The build session's emitting, with no bundler: a BuildOutput that counts every emitFile call, so "each image is
// emitted once per build" is something a test sees, whatever order the hooks ask in (startBuild, ?flux, virtual).
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { MANIFEST_FILE } from '../src/core/manifest'
import type { BuildOutput } from '../src/core/emit'
import type { FluxAssetsOptions, RunSummary } from '../src/core/types'
import { BuildSession } from '../src/core/session'
import { startFakeTogether, type FakeTogether } from './fake-together.mjs'
import { fakeOptions, removeDir, scene, silentLogger, SMALL, tempDir, writeScripts } from './core-helpers'

let fake: FakeTogether
let root: string
beforeEach(async () => {
  fake = await startFakeTogether()
  root = await tempDir('emit')
})
afterEach(async () => {
  await fake.close()
  await removeDir(root)
})

function countingOutput(): BuildOutput & { emitted: string[] } {
  const emitted: string[] = []
  return { emitted, assetsDir: 'assets', emitFile: ({ fileName }) => void emitted.push(fileName), url: image => JSON.stringify(image.fileName) }
}

describe('BuildSession emitting', () => {
  it('emits each unique image once per build, however many assets, scripts and modules ask for it', async () => {
    // Three unique prompts over four occurrences in two scripts.
    await writeScripts(root, {
      'a.script.json': scene({ hero: 'a shared prompt', side: 'only in a' }),
      'b.script.json': scene({ again: 'a shared prompt', other: 'only in b' }),
    })
    const session = new BuildSession({ root, ...SMALL, ...fakeOptions(fake), logger: silentLogger })
    session.configure(root)
    try {
      const out = countingOutput()
      await session.startBuild(out)
      // The modules of both scripts and the virtual module, concurrently and twice: nothing more is emitted.
      await Promise.all([
        session.fluxModule(`${root}/a.script.json`, out),
        session.fluxModule(`${root}/b.script.json`, out),
        session.virtualModule(out),
        session.fluxModule(`${root}/a.script.json`, out),
      ])
      // Each image and its WebP (the default formats), once each.
      const images = out.emitted.filter(f => f !== MANIFEST_FILE)
      expect(images).toHaveLength(6)
      expect(new Set(images).size).toBe(6)
      expect(images.filter(f => f.endsWith('.webp'))).toHaveLength(3)
      expect(out.emitted.filter(f => f === MANIFEST_FILE)).toHaveLength(1)

      // A second build emits its own images again, once each.
      const next = countingOutput()
      await session.startBuild(next)
      await session.fluxModule(`${root}/a.script.json`, next)
      expect(next.emitted.filter(f => f !== MANIFEST_FILE).sort()).toEqual([...images].sort())
      expect(fake.stats.generations).toBe(3)
    } finally {
      await session.close()
    }
  })

  it('virtual:flux-assets is one JSON string beside the URL code: the same pictures as the ?flux modules, no object literal per entry', async () => {
    // A prompt that reads like the module's own URL marker stays a prompt; quotes, a backslash and a line separator too.
    const odd = 'a prompt that says {"$js": 0},\u2028it\'s \\ odd'
    await writeScripts(root, { 'a.script.json': scene({ hero: 'a shared prompt', odd }), 'b.script.json': scene({ again: 'a shared prompt' }) })
    const session = new BuildSession({ root, ...SMALL, ...fakeOptions(fake), logger: silentLogger })
    session.configure(root)
    try {
      const out = countingOutput()
      await session.startBuild(out)
      const code = await session.virtualModule(out)
      // The entries are data to the bundler: one string literal, whatever the number of images.
      const literal = /JSON\.parse\(("(?:[^"\\]|\\.)*")/.exec(code)?.[1]
      expect(literal, code).toBeDefined()
      const around = code.replace(literal!, '')
      for (const text of ['a shared prompt', '"pointer"', '"prompt"', '"srcset"']) expect(around).not.toContain(text)

      type Picture = { id: string; prompt: string; url: string; src: string; srcset: object; sources: object; variants: object; blur: object }
      const run = async (source: string) => ((await import(`data:text/javascript,${encodeURIComponent(source)}`)) as { default: unknown }).default
      const scripts = (await run(code)) as Record<string, Picture[]>
      const fromModules: Picture[] = []
      for (const script of ['a', 'b']) {
        const module = (await run(await session.fluxModule(`${root}/${script}.script.json`, out))) as { visual_track: Array<{ assets: Record<string, Picture> }> }
        fromModules.push(...Object.values(module.visual_track[0]!.assets))
      }
      const pick = ({ id, prompt, url, src, srcset, sources, variants, blur }: Picture) => ({ id, prompt, url, src, srcset, sources, variants, blur })
      expect(Object.values(scripts).flat().map(pick)).toEqual(fromModules.map(pick))
      expect(Object.values(scripts).flat().map(e => e.prompt)).toEqual(['a shared prompt', odd, 'a shared prompt'])
      expect(Object.values(scripts).flat()[0]!.url).toMatch(/^assets\/hero-[0-9a-f]{8}\.jpg$/)
    } finally {
      await session.close()
    }
  })

  it('virtual:flux-assets gives each entry its model and cost, and the build\'s summary (unique images, not uses)', async () => {
    await writeScripts(root, {
      'a.script.json': scene({ hero: 'a shared prompt', side: 'only in a' }),
      'b.script.json': scene({ again: 'a shared prompt', other: 'only in b' }),
    })
    const load = async (code: string) => (await import(`data:text/javascript,${encodeURIComponent(code)}`)) as { default: Record<string, Array<{ id: string; model: string; cost: number | null; placeholder: boolean }>>; summary: RunSummary | null }
    const build = async (user: FluxAssetsOptions) => {
      const session = new BuildSession({ root, ...SMALL, logger: silentLogger, ...user })
      session.configure(root)
      try {
        const out = countingOutput()
        await session.startBuild(out)
        return await load(await session.virtualModule(out))
      } finally {
        await session.close()
      }
    }

    const first = await build(fakeOptions(fake))
    const entries = Object.values(first.default).flat()
    expect(entries.map(e => e.model)).toEqual(Array(4).fill('black-forest-labs/FLUX.2-dev'))
    const cost = entries[0]!.cost!
    expect(cost).toBeGreaterThan(0)
    expect(entries.map(e => e.cost)).toEqual(Array(4).fill(cost))
    expect(first.summary).toMatchObject({ assets: 4, unique: 3, generated: 3, cached: 0, placeholders: 0 })
    expect(first.summary!.estimatedCost).toBeCloseTo(3 * cost, 10)

    // Cached: the entry keeps what the image cost when it was made; the build spent nothing.
    const second = await build(fakeOptions(fake))
    expect(Object.values(second.default).flat().map(e => e.cost)).toEqual(Array(4).fill(cost))
    expect(second.summary).toMatchObject({ generated: 0, cached: 3, placeholders: 0, estimatedCost: 0 })

    // Placeholders (another model, never generated): no cost, and the summary counts images, not uses.
    const none = await build({ model: 'black-forest-labs/FLUX.2-pro', offline: true })
    expect(Object.values(none.default).flat().map(e => [e.model, e.cost, e.placeholder])).toEqual(Array(4).fill(['black-forest-labs/FLUX.2-pro', null, true]))
    expect(none.summary).toMatchObject({ assets: 4, unique: 3, generated: 0, placeholders: 3 })
  })
})
