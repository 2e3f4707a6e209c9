// The provider (and its HTTP client) loads, and the free catalog request goes out, as soon as plan finds the first
// key to generate, while the other keys are still being looked up; the catalog still answers before any paid call,
// and nothing starts when the policy would not generate that image. A cache with nothing in it loads the provider's
// module while the scripts are scanned. No timing here: what is asserted is the order.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { BudgetError } from '../src/core/errors'
import { plan } from '../src/core/plan'
import { together } from '../src/core/providers'
import { FileStore } from '../src/core/store'
import type { AssetRequest, CacheHit } from '../src/core/types'
import { startFakeTogether, type FakeTogether } from './fake-together.mjs'
import { engineFor, fakeOptions, removeDir, runEngine, scene, tempDir, writeScripts } from './core-helpers'

let fake: FakeTogether
let root: string
beforeEach(async () => {
  fake = await startFakeTogether()
  root = await tempDir('early')
})
afterEach(async () => {
  vi.restoreAllMocks()
  await fake.close()
  await removeDir(root)
})

const assets = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`a${i}`, `early prompt ${i}: a harbour at dawn`]))

describe('plan: onMissing', () => {
  it('hears of the first missing key once, while later lookups are still pending', async () => {
    const request = (key: string) => ({ key }) as AssetRequest
    const pending: Array<() => void> = []
    const store = {
      // The first key is missing at once; every other lookup waits until the test lets it go.
      get: (key: string) => (key === 'k0' ? Promise.resolve(undefined) : new Promise<CacheHit | undefined>(done => pending.push(() => done(undefined)))),
    }
    const heard: string[] = []
    const planned = plan(['k0', 'k1', 'k2', 'k0'].map(request), store, r => heard.push(r.key))
    await vi.waitFor(() => expect(heard).toEqual(['k0']))
    expect(pending).toHaveLength(2)
    for (const go of pending) go()
    expect((await planned).missing.map(r => r.key)).toEqual(['k0', 'k1', 'k2'])
    expect(heard).toEqual(['k0'])
  })
})

describe('engine: the provider starts at the first missing key', () => {
  it('the catalog is requested while plan is still looking keys up, and answered before the first generation', async () => {
    await writeScripts(root, { 'a.script.json': scene(assets(4)) })
    const get = FileStore.prototype.get
    let lookups = 0
    // Every lookup after the first waits for the catalog request: plan cannot finish before the provider started.
    vi.spyOn(FileStore.prototype, 'get').mockImplementation(async function (this: FileStore, key: string) {
      if (lookups++ > 0) await vi.waitFor(() => expect(fake.stats.catalogReads).toBe(1), { timeout: 20_000, interval: 10 })
      return get.call(this, key)
    })
    const { summary } = await runEngine(root, fakeOptions(fake))
    expect(summary.generated).toBe(4)
    expect(fake.log[0]!.path).toMatch(/^\/v1\/models/)
    expect(fake.stats.catalogReads).toBe(1)
  })

  it('nothing is loaded or requested when the policy would not generate the first missing image', async () => {
    await writeScripts(root, { 'a.script.json': scene(assets(2)) })
    await expect(runEngine(root, fakeOptions(fake, { maxNewImages: 0 }))).rejects.toThrow(BudgetError)
    const offline = await runEngine(root, fakeOptions(fake, { offline: true }))
    expect(offline.summary.placeholders).toBe(2)
    expect(fake.log).toEqual([])
  })
})

describe('engine: an empty cache loads the provider while the scripts are scanned', () => {
  it('a cache with nothing in it loads the provider in scan(), and sends nothing; one with an entry loads nothing there', async () => {
    const load = vi.spyOn(together, 'load')
    await writeScripts(root, { 'a.script.json': scene(assets(2)) })
    const cold = engineFor(root, fakeOptions(fake))
    try {
      await cold.scan()
      // Loaded during the scan; the catalog (a request) still waits for plan and the policy.
      expect(load).toHaveBeenCalledTimes(1)
      expect(fake.log).toEqual([])
      const { requests } = await cold.scan()
      expect((await cold.generate(requests)).summary.generated).toBe(2)
      // The preloaded provider is the one generate used: loaded once.
      expect(load).toHaveBeenCalledTimes(1)
    } finally {
      await cold.close()
    }

    // One entry in the cache: a new prompt loads the provider at plan's first missing key, not in the scan.
    load.mockClear()
    await writeScripts(root, { 'b.script.json': scene({ extra: 'early prompt: one more harbour' }) })
    const warm = engineFor(root, fakeOptions(fake))
    try {
      const { requests } = await warm.scan()
      expect(load).not.toHaveBeenCalled()
      expect((await warm.generate(requests)).summary.generated).toBe(1)
      expect(load).toHaveBeenCalledTimes(1)
    } finally {
      await warm.close()
    }
  })

  it('nothing is preloaded when no image could be generated: offline, no key, maxNewImages 0', async () => {
    const load = vi.spyOn(together, 'load')
    await writeScripts(root, { 'a.script.json': scene(assets(1)) })
    for (const [user, env] of [[fakeOptions(fake, { offline: true }), {}], [{ baseURL: fake.baseURL }, {}], [fakeOptions(fake, { maxNewImages: 0 }), {}]] as const) {
      const engine = engineFor(root, user, env)
      try {
        await engine.scan()
      } finally {
        await engine.close()
      }
    }
    expect(load).not.toHaveBeenCalled()
  })
})
