// #15 through the CLI: the config file (`flux-assets.config.mjs`, #11) carries an AI SDK model, and
// `flux-assets generate` / `status` use it exactly as the plugin does: fal's fake is called, the images are cached under
// fal's keys, a second run pays nothing, and the provider's key appears in no output.
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { startFakeProvider } from './fake-ai-providers.mjs'
import { allText } from './core-helpers'
import { childEnv, makeTemp, removeTemp, runCli, scriptWith, writeScripts } from './reliability/helpers'

const FAL_KEY = 'fal-SENTINEL-cli-key-4444-5555'
let fake: Awaited<ReturnType<typeof startFakeProvider>> | undefined
let root: string | undefined
afterEach(async () => {
  await fake?.close()
  await removeTemp(root)
  fake = root = undefined
})

describe('an AI SDK model in flux-assets.config.mjs', () => {
  it('the CLI generates with it, status agrees, a second run pays nothing, and the key is nowhere', async () => {
    fake = await startFakeProvider({ kind: 'fal', key: FAL_KEY })
    root = await makeTemp('ai-cli')
    await writeScripts(root, { 'a.script.json': scriptWith(3, 'fal cli') })
    await writeFile(
      join(root, 'flux-assets.config.mjs'),
      `import { createFal } from '@ai-sdk/fal'\nexport default { model: createFal({ baseURL: ${JSON.stringify(fake.baseURL)} }).image('fal-ai/flux/schnell'), width: 256, height: 256 }\n`,
    )
    const env = childEnv({ FAL_KEY })
    const first = await runCli(['generate', '--json'], { cwd: root, env })
    expect(first.code, first.stderr).toBe(0)
    expect(JSON.parse(first.stdout).summary).toMatchObject({ generated: 3, failed: 0 })
    expect(fake.log.filter(e => e.method === 'POST')).toHaveLength(3)
    const status = await runCli(['status', '--json'], { cwd: root, env })
    expect(status.code, status.stderr).toBe(0)
    expect(JSON.parse(status.stdout)).toMatchObject({ cached: 3, missing: 0 })
    const again = await runCli(['generate'], { cwd: root, env })
    expect(again.code, again.stderr).toBe(0)
    expect(again.stdout).toMatch(/^3 assets · 0 generated · 3 cached/)
    expect(fake.log.filter(e => e.method === 'POST')).toHaveLength(3)
    for (const run of [first, status, again]) expect(run.stdout + run.stderr).not.toContain(FAL_KEY)
    expect(await allText(join(root, '.flux-cache'))).not.toContain(FAL_KEY)
  })
})
