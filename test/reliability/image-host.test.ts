// Issue 4, point 6: in url mode the image host never gets the Authorization header; http:// URLs on a foreign origin,
// redirects and bodies over the size cap are refused with a clear message, and nothing is cached.
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { generateAssets } from '../../src/core/engine'
import type { FluxAssetsOptions } from '../../src/core/types'
import { startFakeTogether, type FakeTogether, type FakeTogetherOptions } from '../fake-together.mjs'
import { expectedKeys, fakeEnv, listFiles, makeTemp, recordingLogger, removeTemp, runCli, SENTINEL, SIZE, scriptWith, validImages, writeScripts } from './helpers'

let fake: FakeTogether | undefined
let root: string | undefined
afterEach(async () => {
  await fake?.close()
  await removeTemp(root)
  fake = root = undefined
})

async function run(fakeOptions: FakeTogetherOptions, options: FluxAssetsOptions = {}) {
  fake = await startFakeTogether(fakeOptions)
  root = await makeTemp('image-host')
  await writeScripts(root, { 'a.script.json': scriptWith(2, 'host') })
  const logger = recordingLogger()
  const result = await generateAssets({
    root,
    apiKey: SENTINEL,
    baseURL: fake.baseURL,
    responseFormat: 'url',
    width: 256,
    height: 256,
    retries: 2,
    logger,
    ...options,
  })
  return { result, logger, cacheDir: join(root, '.flux-cache') }
}

/** Refused: each asset a placeholder saying why, paid once (not retried), and not one file left in the cache. */
function expectRefused({ result, cacheDir }: Awaited<ReturnType<typeof run>>, message: RegExp) {
  expect(result.assets).toHaveLength(2)
  for (const a of result.assets) {
    expect(a.placeholder).toBe(true)
    expect(a.error).toMatch(message)
  }
  expect(result.summary).toMatchObject({ generated: 0, failed: 2 })
  expect(fake!.stats.generations).toBe(2)
  expect(listFiles(cacheDir)).toEqual([])
}

describe('image host (url mode)', () => {
  it('downloads carry a User-Agent and never the Authorization header (CLI)', async () => {
    fake = await startFakeTogether({ imageBytes: 200_000 })
    root = await makeTemp('image-host-cli')
    await writeScripts(root, { 'a.script.json': scriptWith(6, 'ua') })
    const cli = await runCli(['generate', ...SIZE, '--response-format', 'url', '--strict'], { cwd: root, env: fakeEnv(fake.baseURL) })
    expect(cli.code, cli.stderr).toBe(0)
    expect(fake.stats.downloads).toBe(6)
    expect(fake.stats.downloadsWithAuth).toBe(0)
    expect(fake.stats.downloadsWithoutUA).toBe(0)
    const downloads = fake.log.filter(e => e.method === 'GET' && e.path !== '/v1/models')
    expect(downloads).toHaveLength(6)
    for (const d of downloads) expect(JSON.stringify(d.headers)).not.toContain(SENTINEL)
    expect(await validImages(join(root, '.flux-cache'), await expectedKeys(root))).toBe(6)
  })

  it('refuses an http:// URL on another origin (reachable, but not the API origin) without fetching it', async () => {
    // `localhost` reaches the same fake, so a client that wrongly allowed it would succeed: the refusal is the test.
    fake = await startFakeTogether({})
    fake.set({ urlBase: `${fake.origin.replace('127.0.0.1', 'localhost')}/shrt/` })
    root = await makeTemp('image-host-foreign')
    await writeScripts(root, { 'a.script.json': scriptWith(2, 'host') })
    const result = await generateAssets({ root, apiKey: SENTINEL, baseURL: fake.baseURL, responseFormat: 'url', width: 256, height: 256, retries: 2, logger: recordingLogger() })
    expectRefused({ result, logger: recordingLogger(), cacheDir: join(root, '.flux-cache') }, /refusing to download http:\/\/localhost:\d+: image URLs must be https or on the API's own origin/)
    expect(fake.stats.downloads).toBe(0)
  })

  it('refuses a redirect instead of following it', async () => {
    const outcome = await run({ redirectDownloads: true })
    expectRefused(outcome, /the image URL redirected \(302\); redirects are not followed/)
    // Only the first hop was requested.
    expect(fake!.log.filter(e => e.method === 'GET' && e.path !== '/v1/models').every(e => e.path.startsWith('/shrt/'))).toBe(true)
  })

  it('refuses a body over the size cap announced by Content-Length', async () => {
    const outcome = await run({ imageBytes: 300_000 }, { maxImageBytes: 100_000 })
    expectRefused(outcome, /larger than the size cap \(300\d{3} bytes; raise maxImageBytes\)/)
  })

  it('refuses a body over the size cap streamed without Content-Length, while streaming', async () => {
    const outcome = await run({ imageBytes: 300_000, chunkedDownloads: true }, { maxImageBytes: 100_000 })
    expectRefused(outcome, /larger than the size cap \(\d+ bytes; raise maxImageBytes\)/)
    // Stopped reading early: it never held more than the cap plus one chunk.
    const size = Number(/size cap \((\d+) bytes/.exec(outcome.result.assets[0]!.error!)![1])
    expect(size).toBeLessThan(100_000 + 65_536 + 1)
  })

  it('base64 mode: an image over the size cap is refused by its decoded size, inside a JSON body under the body cap', async () => {
    // maxImageBytes 100,000: the JSON body cap is 100,000 × 1.4 + 64 KiB = 205,536 bytes. A 120 KB image is 160 KB
    // of base64: the body passes its cap, the image must not pass its own.
    const outcome = await run({ imageBytes: 120_000 }, { responseFormat: 'base64', maxImageBytes: 100_000 })
    expectRefused(outcome, /^the image is larger than the size cap \(12\d{4} bytes; raise maxImageBytes\)$/)
  })

  it('base64 mode: a JSON body over its own cap is refused while streaming, before any decoding', async () => {
    const outcome = await run({ imageBytes: 300_000 }, { responseFormat: 'base64', maxImageBytes: 100_000 })
    expectRefused(outcome, /^the API response is larger than 205536 bytes$/)
  })
})
