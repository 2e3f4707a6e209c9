import { describe, expect, it } from 'vitest'
import { DEFAULT_MODEL, MODEL_PROFILES, describeAccepts, findProfile, planRequest, type RequestPlan, type RequestSettings } from '../src/core/providers/models'

const BASE: RequestSettings = { width: 1024, height: 768, outputFormat: 'jpeg' }
const plan = (model: string, s: Partial<RequestSettings> = {}) => planRequest(`black-forest-labs/${model}`, { ...BASE, ...s })
const fields = (p: RequestPlan) => {
  if (!p.ok) throw new Error(`refused: ${p.refusals.map(r => r.message).join('; ')}`)
  return p.fields
}
const refusals = (p: RequestPlan) => (p.ok ? [] : p.refusals.map(r => `${r.setting}: ${r.message}`))

describe('model profiles', () => {
  it('the default is FLUX.2 [dev], listed in the catalog', () => {
    expect(DEFAULT_MODEL).toBe('black-forest-labs/FLUX.2-dev')
    expect(findProfile(DEFAULT_MODEL)).toMatchObject({ label: 'FLUX.2 [dev]', status: 'listed' })
  })

  it('every FLUX model of the 2026-10-07 catalog has a listed profile; FLUX.1 schnell/dev are retired', () => {
    for (const id of ['FLUX.2-pro', 'FLUX.2-dev', 'FLUX.2-flex', 'FLUX.2-max', 'FLUX.1.1-pro', 'FLUX.1-kontext-pro', 'FLUX.1-kontext-max']) {
      expect(findProfile(`black-forest-labs/${id}`)?.status, id).toBe('listed')
    }
    for (const id of ['FLUX.1-schnell', 'FLUX.1-dev', 'FLUX.1-schnell-Free']) expect(findProfile(`black-forest-labs/${id}`)?.status, id).toBe('retired')
    expect(new Set(MODEL_PROFILES.map(p => p.id)).size).toBe(MODEL_PROFILES.length)
  })

  it('finds a profile whatever the case of the id', () => {
    expect(findProfile('Black-Forest-Labs/flux.2-PRO')?.id).toBe('black-forest-labs/FLUX.2-pro')
    expect(findProfile('someone/else')).toBeUndefined()
  })
})

describe('planRequest', () => {
  it('FLUX.2 [dev] with no steps set sends no steps; set ones are sent', () => {
    expect(fields(plan('FLUX.2-dev'))).toEqual({ width: 1024, height: 768, output_format: 'jpeg' })
    expect(fields(plan('FLUX.2-dev', { steps: 28, guidance: 4.5, seed: 7, outputFormat: 'png' }))).toEqual({
      width: 1024, height: 768, steps: 28, guidance_scale: 4.5, seed: 7, output_format: 'png',
    })
  })

  it('FLUX.1 [schnell] (retired, pinnable) sends steps 4 by default, as every key made for it today has', () => {
    expect(fields(plan('FLUX.1-schnell'))).toEqual({ width: 1024, height: 768, steps: 4, output_format: 'jpeg' })
    expect(fields(plan('FLUX.1-schnell', { steps: 8, seed: 1 }))).toEqual({ width: 1024, height: 768, steps: 8, seed: 1, output_format: 'jpeg' })
    // Today's limits stay: any positive multiple of 8, steps up to 100 (options.ts).
    expect(fields(plan('FLUX.1-schnell', { width: 2048, height: 64, steps: 100 }))).toMatchObject({ width: 2048, height: 64, steps: 100 })
    expect(fields(plan('FLUX.1-dev'))).toMatchObject({ steps: 4 })
  })

  it('FLUX.2 [pro] sends prompt_upsampling false unless asked, and refuses steps and guidance', () => {
    expect(fields(plan('FLUX.2-pro'))).toEqual({ width: 1024, height: 768, prompt_upsampling: false, output_format: 'jpeg' })
    expect(fields(plan('FLUX.2-pro', { promptUpsampling: true }))).toMatchObject({ prompt_upsampling: true })
    const refused = refusals(plan('FLUX.2-pro', { steps: 28, guidance: 3 }))
    expect(refused).toHaveLength(2)
    expect(refused[0]).toMatch(/^steps: FLUX\.2 \[pro\] \(black-forest-labs\/FLUX\.2-pro\) does not take steps \(it picks its own\); it takes width and height 256-1920, no steps, promptUpsampling, seed/)
    expect(refused[1]).toMatch(/^guidance: .* does not take guidance \(guidance_scale\)/)
  })

  it('refuses FLUX.2 sizes outside 256-1920, naming the limit; notes a size that is not a multiple of 16', () => {
    expect(refusals(plan('FLUX.2-dev', { width: 2048, height: 200 }))).toEqual([
      expect.stringMatching(/^width: .* does not take width 2048: over the 1920 px maximum/),
      expect.stringMatching(/^height: .* does not take height 200: under the 256 px minimum/),
    ])
    expect(fields(plan('FLUX.2-max', { width: 1920, height: 256 }))).toEqual({ width: 1920, height: 256, output_format: 'jpeg' })
    const odd = plan('FLUX.2-flex', { width: 1000, height: 760 })
    expect(odd.ok && odd.notes).toEqual([expect.stringMatching(/1000×760 is not a multiple of 16; the model may round it/)])
    const even = plan('FLUX.2-flex')
    expect(even.ok && even.notes).toEqual([])
  })

  it('steps and guidance out of the model\'s range are refused', () => {
    expect(refusals(plan('FLUX.2-dev', { steps: 51 }))).toEqual([expect.stringMatching(/^steps: .* does not take steps 51; it takes .*steps 1-50/)])
    expect(refusals(plan('FLUX.2-dev', { steps: 2.5 }))).toHaveLength(1)
    expect(refusals(plan('FLUX.2-flex', { guidance: 0 }))).toEqual([expect.stringMatching(/does not take guidance 0; .*guidance 1-10/)])
    expect(refusals(plan('FLUX.1-kontext-pro', { steps: 60 }))).toHaveLength(1)
  })

  it('negativePrompt only for FLUX1.1 [pro]; an empty one is no setting', () => {
    expect(fields(plan('FLUX.1.1-pro', { negativePrompt: 'blurry' }))).toEqual({ width: 1024, height: 768, negative_prompt: 'blurry', output_format: 'jpeg' })
    expect(refusals(plan('FLUX.2-dev', { negativePrompt: 'blurry' }))).toEqual([expect.stringMatching(/^negativePrompt: .* does not take a negativePrompt/)])
    expect(fields(plan('FLUX.2-dev', { negativePrompt: '  ' }))).not.toHaveProperty('negative_prompt')
    expect(refusals(plan('FLUX.1.1-pro', { steps: 20 }))).toHaveLength(1)
  })

  it('promptUpsampling true is refused where the model does not take it; false is simply not sent', () => {
    expect(refusals(plan('FLUX.2-dev', { promptUpsampling: true }))).toEqual([expect.stringMatching(/does not take promptUpsampling/)])
    expect(fields(plan('FLUX.2-dev', { promptUpsampling: false }))).not.toHaveProperty('prompt_upsampling')
  })

  it('Kontext sizes by aspect ratio: set, or derived from width/height with a note when not exact', () => {
    const exact = plan('FLUX.1-kontext-pro') // 1024×768 is 4:3
    expect(exact).toEqual({ ok: true, fields: { aspect_ratio: '4:3', output_format: 'jpeg' }, profile: findProfile('black-forest-labs/FLUX.1-kontext-pro'), expectedSize: { width: 1184, height: 864 }, notes: [] })
    const set = plan('FLUX.1-kontext-max', { aspectRatio: '16:9', steps: 28, seed: 3 })
    expect(set.ok && [set.fields, set.expectedSize]).toEqual([{ aspect_ratio: '16:9', steps: 28, seed: 3, output_format: 'jpeg' }, { width: 1344, height: 768 }])
    const near = plan('FLUX.1-kontext-pro', { width: 600, height: 1000 })
    expect(near.ok && near.fields.aspect_ratio).toBe('9:16')
    expect(near.ok && near.notes).toEqual([expect.stringMatching(/600×1000 is sent as the nearest ratio 9:16 \(768×1344\); set aspectRatio to choose/)])
    expect(fields(plan('FLUX.1-kontext-pro', { width: 512, height: 512 })).aspect_ratio).toBe('1:1')
    expect(fields(plan('FLUX.1-kontext-pro', { width: 1500, height: 1000 })).aspect_ratio).toBe('3:2')
    expect(refusals(plan('FLUX.1-kontext-pro', { aspectRatio: '21:9' }))).toEqual([
      expect.stringMatching(/^aspectRatio: .* does not take aspect ratio "21:9"; it takes aspect_ratio 1:1, 16:9, 9:16, 4:3, 3:2 \(not width\/height\)/),
    ])
    expect(refusals(plan('FLUX.2-dev', { aspectRatio: '1:1' }))).toEqual([expect.stringMatching(/sizes images by width and height, not by aspectRatio/)])
  })

  it('collects every refusal at once', () => {
    expect(refusals(plan('FLUX.2-pro', { width: 4000, steps: 4, negativePrompt: 'x', aspectRatio: '1:1' })).map(r => r.split(':')[0])).toEqual([
      'width', 'aspectRatio', 'steps', 'negativePrompt',
    ])
  })

  it('an unknown model gets size, seed and format, plus what the user set, and one note', () => {
    const bare = planRequest('acme/new-model', BASE)
    expect(bare).toEqual({
      ok: true,
      profile: undefined,
      fields: { width: 1024, height: 768, output_format: 'jpeg' },
      notes: ['model "acme/new-model" is not in this plugin\'s table, so its parameters are unknown: sending only prompt, width, height, seed and output format'],
    })
    const set = planRequest('acme/new-model', { ...BASE, steps: 30, seed: 2, guidance: 5 })
    expect(set.ok && set.fields).toEqual({ width: 1024, height: 768, seed: 2, steps: 30, guidance_scale: 5, output_format: 'jpeg' })
    expect(set.ok && set.notes).toEqual([expect.stringMatching(/, and steps, guidance_scale as set \(the model may refuse them\)$/)])
  })

  it('describeAccepts names what a model takes', () => {
    expect(describeAccepts(findProfile(DEFAULT_MODEL)!)).toBe('width and height 256-1920, steps 1-50, guidance 1-10, seed, jpeg/png, reference_images')
    expect(describeAccepts(findProfile('black-forest-labs/FLUX.1.1-pro')!)).toBe('width and height 256-1920, no steps, negativePrompt, seed, jpeg/png')
  })
})
