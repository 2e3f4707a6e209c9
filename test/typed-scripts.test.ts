// Typed scripts (#12): a build writes `.flux-assets/scripts.d.ts` with each script's own shape, so the real
// TypeScript compiler rejects a wrong asset id in a `?flux` import (under noUncheckedIndexedAccess, with no `!`);
// scripts sharing a file name keep the generic type; the file follows edits in dev; it never dirties git.
import { mkdir, readFile, symlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import ts from 'typescript'
import { afterEach, describe, expect, it } from 'vitest'
import fluxVite from '../src/vite'
import { TYPES_FILE } from '../src/core/typegen'
import { startFakeTogether, type FakeTogether } from './fake-together.mjs'
import { exists, makeTemp, recordingLogger, removeTemp, REPO, SENTINEL, writeScripts } from './reliability/helpers'

let fake: FakeTogether | undefined
let root: string | undefined
afterEach(async () => {
  await fake?.close()
  await removeTemp(root)
  fake = root = undefined
})

const INTRO = { title: 'Intro', visual_track: [{ caption: 'Hello', assets: { avatar: 'A businessman in a suit', prop: { prompt: 'A laptop', width: 512 } } }, { caption: 'Bye' }] }

async function project(label: string) {
  fake = await startFakeTogether()
  root = await makeTemp(`typed-${label}`)
  await writeScripts(root, {
    'src/intro.script.json': INTRO,
    // Two scripts with one file name: they cannot be told apart by a wildcard, so they keep the generic type.
    'src/a/outro.script.json': { visual_track: [{ assets: { x: 'outro a' } }] },
    'src/b/outro.script.json': { visual_track: [{ assets: { y: 'outro b' } }] },
  })
  await writeFile(join(root, 'index.html'), '<script type="module" src="./src/main.js"></script>\n')
  await writeFile(join(root, 'src/main.js'), "import intro from './intro.script.json?flux'\nglobalThis.intro = intro\n")
  await mkdir(join(root, 'node_modules'), { recursive: true })
  await symlink(REPO, join(root, 'node_modules', 'unplugin-flux-assets'), 'dir')
  return { root }
}

const plugin = (extra = {}) => fluxVite({ apiKey: SENTINEL, baseURL: fake!.baseURL, width: 256, height: 256, logger: recordingLogger(), ...extra })

/** The real compiler over `src/check.ts`, with the README's tsconfig (the generated file before the client types). */
async function typeCheck(dir: string, code: string): Promise<string[]> {
  await writeFile(join(dir, 'src/check.ts'), code)
  const compilerOptions = {
    target: 'ES2022',
    module: 'ESNext',
    moduleResolution: 'bundler',
    lib: ['ES2022'],
    strict: true,
    noUncheckedIndexedAccess: true,
    noEmit: true,
    types: [`./${TYPES_FILE}`, 'unplugin-flux-assets/client'],
  }
  await writeFile(join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions, include: ['src/check.ts'] }))
  const config = ts.getParsedCommandLineOfConfigFile(join(dir, 'tsconfig.json'), {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: d => expect.fail(String(d.messageText)) })!
  const program = ts.createProgram({ rootNames: config.fileNames, options: config.options })
  return ts.getPreEmitDiagnostics(program).map(d => `TS${d.code}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`)
}

describe('typed scripts', () => {
  it('a build writes each script\'s shape: a wrong asset id fails tsc, the right one needs no `!`', async () => {
    const { root } = await project('build')
    const { build } = await import('vite')
    await build({ root, configFile: false, logLevel: 'silent', plugins: [plugin()] })
    expect(await readFile(join(root, '.flux-assets/.gitignore'), 'utf8')).toBe('*\n')
    const good = `import intro from './intro.script.json?flux'
import outro from './a/outro.script.json?flux'
const url: string = intro.visual_track[0].assets.avatar.url
const width: number = intro.visual_track[0].assets.prop.width
const caption: string = intro.visual_track[1].caption
const title: string = intro.title
// Same file name twice: the generic type.
const any = outro.visual_track[0]?.assets?.['x']?.url
export { any, caption, title, url, width }
`
    expect(await typeCheck(root, good)).toEqual([])
    const wrong = `import intro from './intro.script.json?flux'\nexport const u = intro.visual_track[0].assets.avatr.url\nexport const s = intro.visual_track[2]\n`
    const diagnostics = await typeCheck(root, wrong)
    expect(diagnostics).toEqual([
      expect.stringMatching(/^TS2551: Property 'avatr' does not exist on type .*Did you mean 'avatar'\?/s),
      expect.stringMatching(/^TS2493: Tuple type .* of length '2' has no element at index '2'/s),
    ])
  })

  it('the dev server rewrites it when a script gains an asset; dts: false writes nothing', async () => {
    const { root } = await project('dev')
    const { createServer } = await import('vite')
    const server = await createServer({ root, configFile: false, logLevel: 'silent', server: { port: 0 }, plugins: [plugin()] })
    try {
      await server.transformRequest('/src/intro.script.json?flux')
      expect(await typeCheck(root, `import intro from './intro.script.json?flux'\nexport const u = intro.visual_track[0].assets.hero\n`)).toEqual([
        expect.stringMatching(/TS2339: Property 'hero' does not exist/),
      ])
      await writeScripts(root, { 'src/intro.script.json': { ...INTRO, visual_track: [{ ...INTRO.visual_track[0], assets: { ...INTRO.visual_track[0]!.assets, hero: 'A hero shot' } }, INTRO.visual_track[1]] } })
      for (;;) {
        const code = (await server.transformRequest('/src/intro.script.json?flux').catch(() => undefined))?.code ?? ''
        if (code.includes('A hero shot')) break
        await new Promise(r => setTimeout(r, 50))
      }
      expect(await typeCheck(root, `import intro from './intro.script.json?flux'\nexport const u: string = intro.visual_track[0].assets.hero.url\n`)).toEqual([])
    } finally {
      await server.close()
    }

    const { root: other } = await project('off')
    const { build } = await import('vite')
    await build({ root: other, configFile: false, logLevel: 'silent', plugins: [plugin({ dts: false })] })
    expect(await exists(join(other, TYPES_FILE))).toBe(false)
  })
})
