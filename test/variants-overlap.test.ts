// The variants of an image are made while other images are still being generated (#14): a build session starts them
// as soon as an image's verified entry exists. What is checked is the order of events (an encode seen before the last
// generation request reaches the fake), never elapsed time; and that a build that fails, or is cancelled, or whose
// variants fail, leaves nothing running and nothing unhandled.
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { BuildOutput } from '../src/core/emit'
import { BuildSession } from '../src/core/session'
import type { FluxAssetsOptions } from '../src/core/types'
import { startFakeTogether, type FakeTogether } from './fake-together.mjs'
import { engineFor, fakeOptions, removeDir, scene, silentLogger, SMALL, tempDir, writeScripts } from './core-helpers'
import { makePhoto } from './photo.mjs'

let fake: FakeTogether
let root: string
beforeEach(async () => {
  fake = await startFakeTogether()
  root = await tempDir('overlap')
})
afterEach(async () => {
  await fake.close()
  await removeDir(root)
})

const output = (): BuildOutput => ({ assetsDir: 'assets', emitFile: () => undefined, url: image => JSON.stringify(image.fileName) })

/** A session over root that calls `onEncode` for every variant or blur it encodes. */
function sessionOf(user: FluxAssetsOptions, onEncode: () => void): BuildSession {
  const session = new BuildSession({ root, ...SMALL, ...fakeOptions(fake), logger: silentLogger, ...user }, undefined, { onEncode })
  session.configure(root)
  return session
}

/** Puts a photo-like image in the cache for each of these prompts (as the build will key them). */
async function prefill(prompts: string[], size: { width: number; height: number } = SMALL): Promise<void> {
  await writeScripts(root, { 'cached.script.json': scene(Object.fromEntries(prompts.map((p, i) => [`c${i}`, p]))) })
  const engine = engineFor(root, { ...size })
  for (const r of (await engine.scan()).requests) await engine.store.put(r.key, await makePhoto(r.prompt, { ...r.settings, format: r.settings.outputFormat }), { prompt: r.prompt, settings: r.settings })
  await engine.close()
}

describe('variants while other images are generated', () => {
  it('the first image\'s variants are encoded before the last image\'s request reaches the service (concurrency 1)', async () => {
    const prompts = ['overlap one', 'overlap two', 'overlap three', 'overlap four']
    await writeScripts(root, { 'a.script.json': scene(Object.fromEntries(prompts.map((p, i) => [`a${i}`, p]))) })
    // Each answer takes a while, so the requests are strictly one after another; the order is what is checked.
    fake.set({ latencyMs: 400 })
    const requestsAtEncode: number[] = []
    const session = sessionOf({ concurrency: 1 }, () => void requestsAtEncode.push(fake.stats.generationRequests))
    try {
      await session.startBuild(output())
      expect(fake.stats.generations).toBe(4)
      // 4 WebPs and 4 blurs, each once.
      expect(requestsAtEncode).toHaveLength(8)
      // Without the overlap every encode waits for the fourth answer: the fake has then seen all 4 requests.
      expect(requestsAtEncode[0]).toBeLessThan(prompts.length)
    } finally {
      await session.close()
    }
  })

  it('a variant that fails while others are generated fails the build at emit, never as an unhandled rejection', async () => {
    await writeScripts(root, { 'a.script.json': scene({ a: 'failing one', b: 'failing two', c: 'failing three' }) })
    fake.set({ latencyMs: 200 })
    const unhandled: unknown[] = []
    const onUnhandled = (reason: unknown) => void unhandled.push(reason)
    process.on('unhandledRejection', onUnhandled)
    let encodes = 0
    const session = sessionOf({ concurrency: 1 }, () => {
      encodes++
      throw new Error('encoder broke')
    })
    try {
      await expect(session.startBuild(output())).rejects.toThrow('encoder broke')
      // The failure stopped no generation: every image was made (and stays cached), and the failure came from an
      // encode while they were (the first one, before the third answer).
      expect(fake.stats.generations).toBe(3)
      expect(encodes).toBeGreaterThan(1)
      await new Promise(resolve => setImmediate(resolve))
      expect(unhandled).toEqual([])
      expect(session.variants.active).toBe(0)
    } finally {
      process.off('unhandledRejection', onUnhandled)
      await session.close()
    }
  })

  it('a cancelled build stops the variants not yet started and ends after the rest; the next build makes what is left', async () => {
    // Four cached photos (their 8 encodes start right after plan) and one image the service never answers in time.
    await prefill(['cached one', 'cached two', 'cached three', 'cached four'], { width: 1024, height: 768 })
    await writeScripts(root, { 'new.script.json': scene({ n: 'never answered' }) })
    fake.set({ latencyMs: 60_000 })
    let encodes = 0
    let session!: BuildSession
    session = sessionOf({ width: 1024, height: 768 }, () => {
      // The first encode cancels the build (watch mode closed), mid-overlap.
      if (encodes++ === 0) session.cancel('the watcher was closed')
    })
    try {
      await expect(session.startBuild(output())).rejects.toMatchObject({ code: 'FLUX_ABORTED' })
      // Nothing of the build runs on past its end, and what was still waiting for its turn was never made.
      expect(session.variants.active).toBe(0)
      const atEnd = encodes
      expect(atEnd).toBeLessThan(8)
      // The next build (the watcher restarted) makes only what the first did not, and ships every variant.
      fake.set({ latencyMs: 0 })
      await session.startBuild(output())
      expect(encodes - atEnd).toBe(8 + 2 - atEnd)
    } finally {
      await session.close()
    }
  })

  it('a budget stop encodes nothing and leaves nothing running', async () => {
    await prefill(['budget one', 'budget two', 'budget three'], { width: 1024, height: 768 })
    await writeScripts(root, { 'new.script.json': scene({ n: 'over budget' }) })
    let encodes = 0
    const session = sessionOf({ width: 1024, height: 768, maxNewImages: 0 }, () => void encodes++)
    try {
      await expect(session.startBuild(output())).rejects.toThrow('maxNewImages')
      expect(session.variants.active).toBe(0)
      expect(encodes).toBe(0)
      expect(fake.stats.generationRequests).toBe(0)
    } finally {
      await session.close()
    }
  })
})
