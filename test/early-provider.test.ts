// The provider (and its HTTP client) loads, and the free catalog request goes out, as soon as plan finds the first
// key to generate, while the other keys are still being looked up; the catalog still answers before any paid call,
// and nothing starts when the policy would not generate that image. No timing here: what is asserted is the order.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { BudgetError } from '../src/core/errors'
import { plan } from '../src/core/plan'
import { FileStore } from '../src/core/store'
import type { AssetRequest, CacheHit } from '../src/core/types'
import { startFakeTogether, type FakeTogether } from './fake-together.mjs'
import { fakeOptions, removeDir, runEngine, scene, tempDir, writeScripts } from './core-helpers'

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
