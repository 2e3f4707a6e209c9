// Screenshots of the playground for the README: node playground/screenshots.mjs (after `npx tsup`).
// Builds copies of the playground under test/.tmp (never playground/.flux-cache: the fake's images must not land in a
// cache a real build would trust), once with no key (placeholders) and once against the test suite's fake Together
// (flat-colour images of the requested sizes), and shoots each in Chromium at 1280 px and 390 px wide into docs/.
import { execFile, spawnSync } from 'node:child_process'
import { cp, mkdir, readFile, rm } from 'node:fs/promises'
import { createServer } from 'node:http'
import { extname, join, resolve, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import { chromium } from 'playwright-core'
import { startFakeTogether } from '../test/fake-together.mjs'

const ROOT = resolve(fileURLToPath(import.meta.url), '../..')
const WORK = join(ROOT, 'test/.tmp/screenshots')
const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.svg': 'image/svg+xml', '.jpg': 'image/jpeg', '.png': 'image/png' }
const VIEWS = { desktop: { width: 1280, height: 900 }, phone: { width: 390, height: 844 } }
const SHOT = { desktop: { width: 1280, height: 1380 }, phone: { width: 390, height: 1500 } }

async function build(name, env) {
  const dir = join(WORK, name)
  for (const item of ['index.html', 'src', 'vite.config.ts']) await cp(join(ROOT, 'playground', item), join(dir, item), { recursive: true })
  const clean = { ...process.env, ...env }
  for (const key of ['TOGETHER_API_KEY', 'TOGETHER_BEARER_TOKEN', 'TOGETHER_BASE_URL']) if (!(key in env)) delete clean[key]
  const log = await new Promise((done, fail) =>
    execFile(process.execPath, [join(ROOT, 'node_modules/vite/bin/vite.js'), 'build', dir], { cwd: ROOT, env: clean }, (error, stdout, stderr) =>
      error ? fail(new Error(`${error.message}\n${stdout}${stderr}`)) : done(`${stdout}${stderr}`),
    ),
  )
  console.log(`${name}: ${log.trim().split('\n').filter(l => l.includes('flux-assets')).join('\n  ')}`)
  return join(dir, 'dist')
}

function serve(dir) {
  const server = createServer(async (req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname)
    const file = resolve(dir, `.${path.endsWith('/') ? `${path}index.html` : path}`)
    if (!file.startsWith(dir + sep)) return res.writeHead(403).end()
    try {
      res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' }).end(await readFile(file))
    } catch {
      res.writeHead(404).end()
    }
  })
  return new Promise(done => server.listen(0, '127.0.0.1', () => done(server)))
}

await rm(WORK, { recursive: true, force: true })
await mkdir(join(ROOT, 'docs'), { recursive: true })
const fake = await startFakeTogether()
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--headless', '--no-sandbox', '--disable-gpu'] })
try {
  const builds = { placeholders: await build('placeholders', {}), images: await build('images', { TOGETHER_API_KEY: 'sk-fake-screenshots', TOGETHER_BASE_URL: fake.baseURL }) }
  for (const [kind, dist] of Object.entries(builds)) {
    const server = await serve(dist)
    for (const [view, viewport] of Object.entries(VIEWS)) {
      const page = await browser.newPage({ viewport })
      await page.goto(`http://127.0.0.1:${server.address().port}/`, { waitUntil: 'load' })
      const path = join(ROOT, 'docs', `playground-${view}-${kind}.png`)
      // The top of the page (the summary and the first scenes): small PNGs for the README, not the whole long page.
      await page.screenshot({ path, fullPage: true, clip: { x: 0, y: 0, ...SHOT[view] } })
      // Smooth gradients make large PNGs: pngquant (Debian: apt-get install pngquant), when there, makes them small.
      spawnSync('pngquant', ['--quality', '70-95', '--speed', '1', '--force', '--ext', '.png', path])
      console.log(`wrote ${path.slice(ROOT.length + 1)}`)
      await page.close()
    }
    server.close()
  }
} finally {
  await browser.close()
  await fake.close()
  await rm(WORK, { recursive: true, force: true })
}
