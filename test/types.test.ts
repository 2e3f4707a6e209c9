// `unplugin-flux-assets/client`: a small app with the types entry in its tsconfig type-checks its `?flux` and
// `virtual:flux-assets` imports with the real TypeScript compiler, and a typo in their use is an error.
import { randomBytes } from 'node:crypto'
import { mkdir, rm, symlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import ts from 'typescript'
import { afterEach, describe, expect, it } from 'vitest'

const REPO = fileURLToPath(new URL('..', import.meta.url))
const TMP = fileURLToPath(new URL('./.tmp', import.meta.url))

const APP = `import intro from './intro.script.json?flux'
import scripts, { summary } from 'virtual:flux-assets'

// The README's example, as written.
const { url, width, height, prompt } = intro.visual_track[0].assets!.avatar
const avatar: { url: string; width: number; height: number; prompt: string } = { url, width, height, prompt }
const placeholder: boolean = intro.visual_track[0].assets!.avatar.placeholder
const id: string = intro.visual_track[0].assets!.avatar.id
const title: unknown = intro.title

const all: Array<{ script: string; key: string; pointer: string; url: string }> = []
for (const [script, entries] of Object.entries(scripts)) {
  for (const e of entries) all.push({ script, key: e.key, pointer: e.pointer, url: e.url })
}
const costs: Array<{ model: string; cost: number | null }> = Object.values(scripts).flat().map(({ model, cost }) => ({ model, cost }))
const spent: number | null = summary ? summary.estimatedCost : null
const counts: number[] = summary ? [summary.generated, summary.cached, summary.placeholders, summary.unique, summary.assets] : []
// The README's <picture> markup, from one record (#14).
const a = intro.visual_track[0].assets!.avatar
const picture = \`<picture>\${a.sources.map(s => \`<source type="\${s.type}" srcset="\${s.srcset}">\`).join('')}<img src="\${a.src}" width="\${a.width}" height="\${a.height}" style="background: \${a.blur?.color ?? 'none'} url(\${a.blur?.dataURL ?? ''}) center / cover"></picture>\`
const webp: string | undefined = a.srcset.webp
const files: Array<[string, number, number, string, number]> = a.variants.map(v => [v.format, v.width, v.height, v.url, v.bytes])
const firstEntry = Object.values(scripts).flat()[0]
const entrySources: string[] = firstEntry ? firstEntry.sources.map(s => s.srcset) : []
export { all, avatar, costs, counts, entrySources, files, id, picture, placeholder, spent, title, webp }
`

let dir: string | undefined
afterEach(async () => {
  if (dir) await rm(dir, { recursive: true, force: true })
  dir = undefined
})

/**
 * A fresh app with the package installed (a link to this repository, as `npm install` of the tarball would give:
 * its package.json `exports` and `client.d.ts`) and a tsconfig like a new Vite TypeScript app's. Returns the
 * compiler's diagnostics, formatted.
 */
async function typeCheck(app: string, types: string[] | undefined, extra: Record<string, string> = {}): Promise<string[]> {
  dir = join(TMP, `types-${randomBytes(4).toString('hex')}`)
  await mkdir(join(dir, 'src'), { recursive: true })
  await mkdir(join(dir, 'node_modules'), { recursive: true })
  await symlink(REPO, join(dir, 'node_modules', 'unplugin-flux-assets'), 'dir')
  const compilerOptions = {
    target: 'ES2022',
    module: 'ESNext',
    moduleResolution: 'bundler',
    lib: ['ES2022'],
    strict: true,
    noEmit: true,
    skipLibCheck: false,
    verbatimModuleSyntax: true,
    ...(types ? { types } : {}),
  }
  await writeFile(join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions, include: ['src'] }, null, 2))
  await writeFile(join(dir, 'src', 'intro.script.json'), JSON.stringify({ title: 'Intro', visual_track: [{ assets: { avatar: 'A businessman in a suit' } }] }))
  await writeFile(join(dir, 'src', 'main.ts'), app)
  for (const [name, text] of Object.entries(extra)) await writeFile(join(dir, 'src', name), text)

  const config = ts.getParsedCommandLineOfConfigFile(join(dir, 'tsconfig.json'), {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: d => expect.fail(String(d.messageText)) })!
  expect(config.errors).toEqual([])
  const program = ts.createProgram({ rootNames: config.fileNames, options: config.options })
  return ts.getPreEmitDiagnostics(program).map(d => {
    const where = d.file ? `${d.file.fileName.slice(dir!.length + 1)}:${d.file.getLineAndCharacterOfPosition(d.start!).line + 1}: ` : ''
    return `${where}TS${d.code}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`
  })
}

describe('unplugin-flux-assets/client', () => {
  it('with "types": ["unplugin-flux-assets/client"], ?flux and virtual:flux-assets imports type-check', async () => {
    expect(await typeCheck(APP, ['unplugin-flux-assets/client'])).toEqual([])
  })

  it('a typo in an asset field is a type error naming it', async () => {
    const wrong = `${APP}\nexport const typo = intro.visual_track[0].assets!.avatar.urll\nexport const bad: number = intro.visual_track[0].assets!.avatar.url\n`
    const diagnostics = await typeCheck(wrong, ['unplugin-flux-assets/client'])
    expect(diagnostics).toHaveLength(2)
    expect(diagnostics[0]).toMatch(/^src\/main\.ts:\d+: TS2551: Property 'urll' does not exist on type .*Did you mean 'url'\?/s)
    expect(diagnostics[1]).toMatch(/^src\/main\.ts:\d+: TS2322: Type 'string' is not assignable to type 'number'/)
  })

  it('a field a virtual:flux-assets entry does not have (the manifest\'s `file`) is a type error', async () => {
    const wrong = `${APP}\nfor (const entries of Object.values(scripts)) for (const e of entries) e.file\n`
    const diagnostics = await typeCheck(wrong, ['unplugin-flux-assets/client'])
    expect(diagnostics).toEqual([expect.stringMatching(/TS2339: Property 'file' does not exist/)])
  })

  it('or, with tsconfig left alone, a triple-slash reference in a .d.ts of the app', async () => {
    expect(await typeCheck(APP, [], { 'env.d.ts': '/// <reference types="unplugin-flux-assets/client" />\n' })).toEqual([])
  })

  it('without the types entry the same app does not compile (the entry is what makes it work)', async () => {
    const diagnostics = await typeCheck(APP, [])
    expect(diagnostics.filter(d => d.includes('TS2307'))).toEqual([
      expect.stringContaining(`Cannot find module './intro.script.json?flux'`),
      expect.stringContaining(`Cannot find module 'virtual:flux-assets'`),
    ])
  })
})
