// Issue 11, points 8-11: an API that answers like an attacker. A small server of this test's own on 127.0.0.1 answers
// every generation request with what the test tells it, and the CLI runs against it as a real child process.
import { readFile } from 'node:fs/promises'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { makeJpeg, makePng } from '../fake-together.mjs'
import { fakeEnv, filesContaining, listFiles, makeTemp, recordFiles, removeTemp, runCli, SENTINEL, SIZE, scriptWith, STACK_LINE, writeScripts } from './helpers'

type Answer = (req: IncomingMessage, res: ServerResponse) => void

let server: Server | undefined
let root: string | undefined
afterEach(async () => {
  await new Promise(r => (server ? server.close(r) : r(undefined)))
  await removeTemp(root)
  server = root = undefined
})

/** Starts the hostile API; `answer` handles POST /images/generations, GET /models is a 404. Counts generation requests. */
async function hostile(answer: Answer): Promise<{ baseURL: string; stats: { requests: number } }> {
  const stats = { requests: 0 }
  server = createServer((req, res) => {
    req.resume()
    if (req.method !== 'POST') return void res.writeHead(404).end('{}')
    stats.requests++
    req.on('end', () => answer(req, res))
  })
  await new Promise<void>(r => server!.listen(0, '127.0.0.1', r))
  return { baseURL: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`, stats }
}

const json = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) =>
  res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(typeof body === 'string' ? body : JSON.stringify(body))

async function generate(baseURL: string, args: string[] = []) {
  root = await makeTemp('hostile-answer')
  await writeScripts(root, { 'a.script.json': scriptWith(1, 'hostile') })
  const run = await runCli(['generate', ...SIZE, '--json', ...args], { cwd: root, env: fakeEnv(baseURL) })
  expect(run.stderr).not.toMatch(STACK_LINE)
  return { ...run, cacheDir: join(root, '.flux-cache') }
}

describe('hostile answers', () => {
  // 8. Each variant once asked for no wait at all: ~4,500 requests in 8 s for one image, and no end.
  it.each([
    ['retry-after: 0', { 'retry-after': '0' }],
    ['retry-after: a date in the past', { 'retry-after': new Date(Date.now() - 3_600_000).toUTCString() }],
    ['retry-after-ms: 0', { 'retry-after-ms': '0' }],
  ])('a 429 with %s: a bounded number of attempts, each after a minimum wait', async (_name, headers) => {
    // After 60 requests the server gives up with a 401, so a test of the broken code ends (and fails) instead of hanging.
    const api = await hostile((_req, res) => (api.stats.requests > 60 ? json(res, 401, { error: { message: 'enough' } }) : json(res, 429, { error: { message: 'slow down' } }, headers)))
    // Paced waits count at least 250 ms each against --max-retry-delay 1000: 4 paced + 1 retry + the first = 6 attempts.
    const run = await generate(api.baseURL, ['--retries', '1', '--max-retry-delay', '1000'])
    expect(run.code, run.stderr).toBe(0)
    expect(JSON.parse(run.stdout).summary).toMatchObject({ failed: 1, generated: 0 })
    expect(run.stderr).toMatch(/the API answered 429: slow down/)
    expect(api.stats.requests).toBeLessThanOrEqual(6)
  })

  // 9. `Buffer.from({ length: 3e9 }, 'base64')` allocates 3 GB synchronously: the timeout cannot interrupt it.
  it.each([
    ['an object with a huge length', { b64_json: { length: 3e9 } }, /b64_json that is not a string \(object\)/],
    ['an array', { b64_json: [1, 2, 3] }, /b64_json that is not a string \(object\)/],
    ['a number', { b64_json: 12 }, /b64_json that is not a string \(number\)/],
    ['a url that is an object', { url: { length: 3e9 } }, /without an image/],
  ])('b64_json or url as %s is refused before anything is decoded', async (_name, item, message) => {
    const api = await hostile((_req, res) => json(res, 200, { id: 'resp-1', data: [item] }))
    const run = await generate(api.baseURL, ['--retries', '0'])
    expect(run.code, run.stderr).toBe(0)
    expect(run.stderr).toMatch(message)
    expect(recordFiles(run.cacheDir)).toEqual([])
  })

  it('a b64_json string longer than maxImageBytes is refused from its length, not decoded', async () => {
    const api = await hostile((_req, res) => json(res, 200, { data: [{ b64_json: 'A'.repeat(4 * 1024 * 1024) }] }))
    const run = await generate(api.baseURL, ['--retries', '0', '--max-image-bytes', '3000000'])
    expect(run.stderr).toMatch(/larger than the size cap \(3145728 bytes/)
    expect(recordFiles(run.cacheDir)).toEqual([])
  })

  it('answers that are not JSON objects (null, a string, data not an array) are bad responses, not crashes', async () => {
    const bodies = ['null', '"text"', '{"data":"AAAA"}', '{"data":[null]}']
    const api = await hostile((_req, res) => json(res, 200, bodies[(api.stats.requests - 1) % bodies.length]!))
    const run = await generate(api.baseURL, ['--retries', '3'])
    expect(run.code, run.stderr).toBe(0)
    expect(run.stderr).toMatch(/without an image/)
    expect(run.stderr).not.toMatch(/unexpected/)
    expect(api.stats.requests).toBe(4)
  })

  // 10. A signature, a page, an end marker: passed the old check (magic number and end) and was cached as an image.
  it.each([
    ['FF D8 FF + an HTML page + FF D9 (a "JPEG")', Buffer.concat([Buffer.from([0xff, 0xd8, 0xff]), Buffer.from('<html><body>502 Bad gateway</body></html>'), Buffer.from([0xff, 0xd9])]), /^.*JPEG: /m],
    ['a PNG signature + JSON + IEND (a "PNG")', Buffer.concat([makePng(64, 64, 'sig').subarray(0, 8), Buffer.from('{"error":"nope"}'), makePng(64, 64, 'end').subarray(-12)]), /PNG: /],
    ['a real PNG of 32×32 (under 64 px a side)', makePng(32, 32, 'tiny'), /PNG: 32×32 is smaller than 64 px on a side/],
    ['a real JPEG of 16×16', makeJpeg('tiny', 0, 16, 16), /JPEG: 16×16 is smaller than 64 px on a side/],
  ])('%s is not an image: never cached', async (_name, bytes, message) => {
    const api = await hostile((_req, res) => json(res, 200, { data: [{ b64_json: bytes.toString('base64') }] }))
    const run = await generate(api.baseURL, ['--retries', '0'])
    expect(run.code, run.stderr).toBe(0)
    expect(JSON.parse(run.stdout).summary).toMatchObject({ failed: 1, generated: 0 })
    expect(run.stderr).toMatch(message)
    expect(listFiles(run.cacheDir).filter(f => !f.startsWith('v1/roots/'))).toEqual([])
  })

  // 11. The README says to commit the cache: a record must never carry the key.
  it.each([
    ['the bearer token itself', (auth: string) => auth.replace(/^Bearer /, '')],
    ['the whole Authorization header', (auth: string) => auth],
    ['the key inside a longer id', (auth: string) => `gen-${auth.replace(/^Bearer /, '')}-x`],
    ['a 16-character run of the key', (auth: string) => `id_${auth.replace(/^Bearer /, '').slice(3, 19)}`],
    ['something that is not an id', () => '<script>alert(1)</script>'],
  ])('a response id that is %s is not kept', async (_name, idOf) => {
    const image = makeJpeg('echo', 0, 256, 256).toString('base64')
    const api = await hostile((req, res) => json(res, 200, { id: idOf(String(req.headers.authorization)), data: [{ b64_json: image }] }))
    const run = await generate(api.baseURL)
    expect(run.code, run.stderr).toBe(0)
    const [record] = recordFiles(run.cacheDir)
    expect(record).toBeDefined()
    expect(filesContaining(root!, SENTINEL)).toEqual([])
    expect(filesContaining(root!, SENTINEL.slice(3, 19))).toEqual([])
    expect(JSON.parse(await readFile(join(run.cacheDir, 'v1', record!), 'utf8'))).not.toHaveProperty('responseId')
    expect(run.stdout + run.stderr).not.toContain(SENTINEL)
  })

  it('a response id that looks like one is kept', async () => {
    const image = makeJpeg('kept', 0, 256, 256).toString('base64')
    const api = await hostile((_req, res) => json(res, 200, { id: 'oFx3aQ-2kS8Yx-9a1b2c3d4e5f6789', data: [{ b64_json: image }] }))
    const run = await generate(api.baseURL)
    expect(run.code, run.stderr).toBe(0)
    expect(filesContaining(run.cacheDir, '"responseId": "oFx3aQ-2kS8Yx-9a1b2c3d4e5f6789"')).toHaveLength(1)
  })
})
