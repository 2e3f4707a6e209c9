// Real framework builds (npm run test:frameworks, not part of npm test): each fixture under test/frameworks/<name>/
// is a small hand-written app with its own package-lock.json (installed by `npm ci`, see .ci/run), with the plugin
// added the way the README's "Frameworks" section says, and the packed package (npm pack of this repo) in its
// node_modules. Each is built for production against the fake Together, served as it would be deployed, and opened
// in Chromium: every plugin image must load. The fake must bill each prompt once across the framework's client and
// server builds, the summary line must print once per build, and a second build must bill nothing.
import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { cp, mkdir, readdir, readFile, rm } from 'node:fs/promises'
import { createServer as createHttpServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { extname, join, relative, resolve, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { type Browser, chromium } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type FakeTogether, startFakeTogether } from '../fake-together.mjs'

const ROOT = resolve(fileURLToPath(import.meta.url), '../../..')
const HERE = join(ROOT, 'test/frameworks')
const TMP = join(ROOT, 'test/.tmp/frameworks')
const CHROMIUM = '/usr/bin/chromium'
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']
const KEY = 'sk-test-SENTINEL-1234567890'
const SUMMARY = /\d+ generated · \d+ cached/g
/** The fixtures' script (the same in each): three prompts, one a 512×256 PNG. */
const PROMPTS = ['A businessman in a suit', 'A glass office at dawn', 'A minimal fox logo']
const run = promisify(execFile)

interface Framework {
  name: string
  /** The production build command, relative to the fixture. */
  build: string[]
  /** What a build leaves in the fixture (removed before and after). */
  outputs: string[]
  /** Serves the build as deployed; resolves with its origin once it answers. */
  serve(dir: string, port: number): Promise<{ origin: string; stop(): Promise<void> }>
  /** The deployed folder that must hold the manifest and every image it lists, and where images must be. */
  deployed: { dir: string; manifest: string; images: RegExp; urls: RegExp }
  /** Files that must not exist after a build (Next: copies of the images in server output). */
  absent?: (files: string[]) => string[]
}

/** A Node server started by the framework's own start command; resolves once `/` answers. */
function startCommand(command: string[], env: Record<string, string>) {
  return async (dir: string, port: number) => {
    const child = spawn(process.execPath, command, { cwd: dir, env: { ...baseEnv(), ...env, PORT: String(port) }, stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    child.stdout!.on('data', d => (output += d))
    child.stderr!.on('data', d => (output += d))
    const origin = `http://127.0.0.1:${port}`
    await waitFor(origin, child, () => output)
    return { origin, stop: () => stop(child) }
  }
}

async function waitFor(origin: string, child: ChildProcess, output: () => string): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if (child.exitCode !== null) throw new Error(`the server exited (${child.exitCode}):\n${output()}`)
    try {
      if ((await fetch(origin)).ok) return
    } catch {
      // not listening yet
    }
    await new Promise(r => setTimeout(r, 100))
  }
  throw new Error(`the server never answered:\n${output()}`)
}

function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return Promise.resolve()
  return new Promise(done => {
    child.once('exit', () => done())
    child.kill('SIGTERM')
  })
}

const TYPES: Record<string, string> = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.json': 'application/json', '.svg': 'image/svg+xml', '.jpg': 'image/jpeg', '.png': 'image/png', '.webp': 'image/webp' }

/** A static file server for a static build (Astro's default output), as any static host serves it. */
function staticServer(folder: string) {
  return async (dir: string, port: number) => {
    const root = join(dir, folder)
    const server: Server = createHttpServer(async (req, res) => {
      const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname)
      const file = resolve(root, `.${path.endsWith('/') ? `${path}index.html` : path}`)
      if (!file.startsWith(root + sep)) return res.writeHead(403).end()
      try {
        const body = await readFile(file)
        res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' }).end(body)
      } catch {
        res.writeHead(404).end()
      }
    })
    await new Promise<void>(done => server.listen(port, '127.0.0.1', done))
    return { origin: `http://127.0.0.1:${port}`, stop: () => new Promise<void>(done => server.close(() => done())) }
  }
}

const FRAMEWORKS: Framework[] = [
  {
    name: 'astro',
    build: ['node_modules/astro/astro.js', 'build'],
    outputs: ['dist', '.astro', '.flux-cache'],
    serve: staticServer('dist'),
    // Astro names assets `_astro/[name].[hash][extname]`.
    deployed: { dir: 'dist', manifest: 'flux-assets.json', images: /^_astro\/[\w-]+\.[\w-]+\.(jpg|png)$/, urls: /^\/_astro\// },
  },
  {
    name: 'nuxt',
    build: ['node_modules/nuxt/bin/nuxt.mjs', 'build'],
    // Nuxt's Vite root is its srcDir (app/): the cache is app/.flux-cache.
    outputs: ['.nuxt', '.output', 'node_modules/.cache', 'app/.flux-cache'],
    serve: startCommand(['.output/server/index.mjs'], { HOST: '127.0.0.1', NITRO_HOST: '127.0.0.1' }),
    // Nitro deploys `.nuxt/dist/client/_nuxt/` only, as `.output/public/_nuxt/`: the manifest goes there too.
    deployed: { dir: '.output/public', manifest: '_nuxt/flux-assets.json', images: /^_nuxt\/[\w-]+\.[\w-]+\.(jpg|png)$/, urls: /^\/_nuxt\// },
  },
  {
    name: 'sveltekit',
    build: ['node_modules/vite/bin/vite.js', 'build'],
    outputs: ['build', '.svelte-kit', '.flux-cache'],
    serve: startCommand(['build/index.js'], { HOST: '127.0.0.1' }),
    // SvelteKit's client assetFileNames: `_app/immutable/assets/[name].[hash][extname]`, served `immutable`.
    deployed: { dir: 'build/client', manifest: 'flux-assets.json', images: /^_app\/immutable\/assets\/[\w-]+\.[\w-]+\.(jpg|png)$/, urls: /^\/_app\/immutable\/assets\// },
  },
  {
    name: 'next',
    build: ['node_modules/next/dist/bin/next', 'build', '--webpack'],
    outputs: ['.next', '.flux-cache'],
    serve: startCommand(['node_modules/next/dist/bin/next', 'start', '-H', '127.0.0.1'], {}),
    // Next serves `.next/static/` at `/_next/static/`; its asset folder is `static/media`.
    deployed: { dir: '.next', manifest: 'flux-assets.json', images: /^static\/media\/[\w-]+-[0-9a-f]{8}\.(jpg|png)$/, urls: /^\/_next\/static\/media\// },
    // The server compilations must not get copies of the images (they had three: .next/server/assets, ...).
    absent: files => files.filter(f => /\.(jpg|png)$/.test(f) && !f.startsWith('static/') && !f.startsWith('cache/')),
  },
]

function baseEnv(): Record<string, string> {
  const env: Record<string, string> = {}
  for (const name of ['PATH', 'HOME', 'TMPDIR', 'LANG']) if (process.env[name] !== undefined) env[name] = process.env[name]!
  return { ...env, NODE_ENV: 'production', NEXT_TELEMETRY_DISABLED: '1', ASTRO_TELEMETRY_DISABLED: '1', NUXT_TELEMETRY_DISABLED: '1', CI: '1' }
}

async function files(dir: string): Promise<string[]> {
  if (!existsSync(dir)) return []
  const entries = await readdir(dir, { recursive: true, withFileTypes: true })
  return entries.filter(e => e.isFile()).map(e => relative(dir, join(e.parentPath, e.name)).split(sep).join('/'))
}

/** Picks a free port (listen on 0, close): the framework servers want a number. */
async function freePort(): Promise<number> {
  const server = createHttpServer()
  await new Promise<void>(done => server.listen(0, '127.0.0.1', done))
  const { port } = server.address() as AddressInfo
  await new Promise(done => server.close(done))
  return port
}

let browser: Browser
/** The packed package, extracted, with its own production dependencies installed inside it. */
let packed: string

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing (Debian: apt-get install chromium; .ci/run does)`)
  if (!existsSync(join(ROOT, 'dist/vite.js'))) throw new Error('dist/ is missing: run `npx tsup` (npm run test:frameworks does)')
  await mkdir(TMP, { recursive: true })
  // The package as it is published: `npm pack` of this repo (dist/, client.d.ts, package.json), with its dependencies
  // from this repo's lockfile installed in its own node_modules, as npm would nest them under an app: resolving them
  // from the app instead would find the app's versions (Astro 5 brings undici 8, which needs Node 22).
  const { stdout } = await run('npm', ['pack', '--pack-destination', TMP, '--json'], { cwd: ROOT })
  const tarball = join(TMP, (JSON.parse(stdout) as Array<{ filename: string }>)[0]!.filename)
  packed = join(TMP, 'package')
  await run('tar', ['-xzf', tarball, '-C', TMP])
  await cp(join(ROOT, 'package-lock.json'), join(packed, 'package-lock.json'))
  await run('npm', ['ci', '--omit=dev', '--omit=peer', '--ignore-scripts', '--no-audit', '--no-fund'], { cwd: packed })
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS })
}, 120_000)

afterAll(async () => {
  await browser?.close()
  await rm(TMP, { recursive: true, force: true })
})

for (const fw of FRAMEWORKS) {
  describe(fw.name, () => {
    const dir = join(HERE, fw.name)
    let fake: FakeTogether
    const clean = () => Promise.all(fw.outputs.map(o => rm(join(dir, o), { recursive: true, force: true })))

    beforeAll(async () => {
      if (!existsSync(join(dir, 'node_modules'))) throw new Error(`${dir}/node_modules is missing: run \`npm ci\` there (.ci/run does)`)
      await clean()
      // The packed plugin in the fixture's node_modules, as `npm install unplugin-flux-assets` would put it.
      const target = join(dir, 'node_modules/unplugin-flux-assets')
      await rm(target, { recursive: true, force: true })
      await cp(packed, target, { recursive: true })
      fake = await startFakeTogether()
    })

    afterAll(async () => {
      await fake?.close()
      await clean()
      await rm(join(dir, 'node_modules/unplugin-flux-assets'), { recursive: true, force: true })
    })

    async function build(): Promise<string> {
      const env = { ...baseEnv(), TOGETHER_API_KEY: KEY, TOGETHER_BASE_URL: fake.baseURL }
      try {
        const { stdout, stderr } = await run(process.execPath, fw.build, { cwd: dir, env, maxBuffer: 64 * 1024 * 1024 })
        return `${stdout}\n${stderr}`
      } catch (error) {
        const e = error as { stdout?: string; stderr?: string; message: string }
        throw new Error(`${fw.name} build failed: ${e.message}\n${e.stdout ?? ''}\n${e.stderr ?? ''}`)
      }
    }

    /** Prompts the fake was asked for, with how many times each was billed. */
    const billed = () => {
      const counts: Record<string, number> = {}
      for (const entry of fake.log) {
        if (entry.method !== 'POST') continue
        const body = typeof entry.body === "string" ? JSON.parse(entry.body) : entry.body
        const prompt = (body as { prompt?: string } | undefined)?.prompt
        if (prompt !== undefined) counts[prompt] = (counts[prompt] ?? 0) + 1
      }
      return counts
    }

    it(`${fw.name}: builds for production, bills each prompt once, and prints the summary once`, async () => {
      const log = await build()
      expect(billed()).toEqual(Object.fromEntries(PROMPTS.map(p => [p, 1])))
      expect(log.match(SUMMARY), log).toEqual(['3 generated · 0 cached'])

      const deployed = join(dir, fw.deployed.dir)
      const all = await files(deployed)
      const manifest = JSON.parse(await readFile(join(deployed, fw.deployed.manifest), 'utf8')) as { entries: Array<{ prompt: string; file: string }> }
      expect(manifest.entries.map(e => e.prompt).sort()).toEqual(PROMPTS)
      for (const entry of manifest.entries) {
        expect(entry.file).toMatch(fw.deployed.images)
        expect(all, `${entry.file} is deployed`).toContain(entry.file)
      }
      if (fw.absent) expect(fw.absent(all)).toEqual([])
    })

    it(`${fw.name}: the served page shows every image (HTTP 200, natural width > 0), the same URLs before and after hydration`, async () => {
      const server = await fw.serve(dir, await freePort())
      try {
        const html = await (await fetch(`${server.origin}/`)).text()
        const rendered = [...html.matchAll(/<img[^>]*\bsrc="([^"]+)"/g)].map(m => m[1]!.replace(/&amp;/g, '&'))
        expect(rendered).toHaveLength(3)
        for (const src of rendered) {
          expect(new URL(src, server.origin).pathname).toMatch(fw.deployed.urls)
          const res = await fetch(new URL(src, server.origin))
          expect(res.status, src).toBe(200)
          expect(res.headers.get('content-type')).toMatch(/^image\/(jpeg|png)/)
        }
        const page = await browser.newPage()
        try {
          const failed: string[] = []
          page.on('response', r => void (r.status() >= 400 && failed.push(`${r.status()} ${r.url()}`)))
          await page.goto(`${server.origin}/`, { waitUntil: 'networkidle' })
          const shown = await page.$$eval('img.flux', imgs => imgs.map(i => ({ src: i.getAttribute('src'), complete: i.complete, width: i.naturalWidth })))
          expect(shown).toHaveLength(3)
          for (const img of shown) expect(img.complete && img.width > 0, `${img.src} loads`).toBe(true)
          // The same resources, compared resolved: Nuxt's client renders every JS-imported asset relative to the chunk
          // (`new URL(file, import.meta.url)`, absolute at run time) where its server renders `/_nuxt/...`: its own
          // renderBuiltUrl (@nuxt/vite-builder 4.3.1 dist/index.mjs: `if (type === "asset") return { relative: true }`).
          const resolved = (srcs: Array<string | null>) => srcs.map(src => new URL(src ?? '', server.origin).href)
          expect(resolved(shown.map(i => i.src))).toEqual(resolved(rendered))
          expect(failed).toEqual([])
        } finally {
          await page.close()
        }
      } finally {
        await server.stop()
      }
    })

    it(`${fw.name}: a second build bills nothing and prints one all-cached line`, async () => {
      const requests = fake.stats.generationRequests
      const log = await build()
      expect(fake.stats.generationRequests).toBe(requests)
      expect(log.match(SUMMARY), log).toEqual(['0 generated · 3 cached'])
    })
  })
}
