// Placeholder SVGs as Chromium lays them out: every line of text inside the image and clear of every other line, at
// the sizes scripts ask for (256 px up) and some below, with long prompts, long words, unicode and XML's specials.
// The wrapping is an estimate made without a browser (src/core/placeholder.ts); this is where it is checked.
import { existsSync } from 'node:fs'
import { chromium, type Browser, type Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { placeholderSvg } from '../src/core/placeholder'

const CHROMIUM = '/usr/bin/chromium'
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']
// As in browser.test.ts: a developer machine without Chromium skips, CI (which installs it) fails.
const hasChromium = existsSync(CHROMIUM)
const inCI = !!process.env.CI && process.env.CI !== 'false' && process.env.CI !== '0'
if (!hasChromium && !inCI) console.warn(`placeholder-browser.test.ts skipped: ${CHROMIUM} not found (Debian: apt-get install chromium). CI runs it.`)

const LONG =
  'A sweeping cinematic aerial shot over a misty Norwegian fjord at dawn, a lone red wooden cabin on a rocky outcrop, soft volumetric light ' +
  'breaking through low clouds, Supercalifragilisticexpialidocious-hyperdetailed-ultrarealistic textures, reflections on glassy water, ' +
  '35mm film grain, muted teal and amber palette, in the style of a Nordic travel documentary opening title'
const WIDE_WORDS = `${'WWWMMMmmmwww@@@%%%'.repeat(6)} ${'W'.repeat(120)} MMMM WWWW mmmm wwww `.repeat(2)
const UNICODE = 'Tōkyō at night 東京の夜景、ネオンの光 🌃👩‍👩‍👧‍👦🇯🇵 — café naïve Ωμέγα Жизнь مرحبا בעולם e\u0301\u0301 ｆｕｌｌｗｉｄｔｈ ' + LONG
const XML = `Tom & Jerry's <b>"best"</b> <script>alert('x')</script> ]]> <!-- not a comment --> &amp; &#60; ${LONG}`
const API_401 = 'API key rejected (401): Invalid API key provided. You can find your API key at https://api.together.xyz/settings/api-keys.'

const SIZES: Array<[number, number]> = [[256, 256], [512, 256], [1024, 768], [256, 1024], [768, 768], [1920, 256], [300, 1920]]
const CASES: Array<{ id: string; prompt: string; reason: string }> = [
  { id: 'office', prompt: 'A sunlit open-plan office with plants and standing desks, early morning, photorealistic', reason: 'no API key (set TOGETHER_API_KEY)' },
  { id: 'fjord', prompt: LONG, reason: API_401 },
  { id: 'wide-glyphs', prompt: WIDE_WORDS, reason: 'offline: no API call made' },
  { id: 'tōkyō-夜景-🌃', prompt: UNICODE, reason: `the provider's safety system refused the prompt (422): ${'flagged '.repeat(30)}` },
  { id: '<img src=x onerror=alert(1)>&"\'', prompt: XML, reason: 'the API answered <500> & "gave up"' },
  { id: `a-very-long-asset-id-${'x'.repeat(200)}`, prompt: LONG.repeat(3), reason: API_401.repeat(3) },
]
/** Below 256 px: nothing has to be whole there, but nothing may leave the image either. */
const SMALL: Array<[number, number]> = [[128, 128], [64, 64], [200, 48], [32, 300], [16, 16]]

interface Box {
  tag: string
  text: string
  /** A line of text: a tspan, or a text element with none. */
  line: boolean
  left: number
  top: number
  right: number
  bottom: number
}

interface Rendered {
  parseError: string | null
  width: number
  height: number
  boxes: Box[]
  /** The SVG as an <img>: it decodes, at its size. */
  img: { complete: boolean; naturalWidth: number; naturalHeight: number }
}

// The root tsconfig has no DOM lib: the few browser APIs used in page functions, typed by hand.
interface El {
  tagName: string
  textContent: string | null
  querySelectorAll(selector: string): Iterable<El>
  querySelector(selector: string): El | null
  getBoundingClientRect(): { left: number; top: number; right: number; bottom: number; width: number; height: number }
}
declare const document: { body: El & { innerHTML: string; append(node: unknown): void }; importNode(node: unknown, deep: boolean): El; createElement(tag: string): El & Record<string, unknown> }
declare const DOMParser: new () => { parseFromString(text: string, type: string): { documentElement: El; querySelector(s: string): El | null } }
declare const encodeURIComponent: (text: string) => string
declare const Image: new () => { src: string; complete: boolean; naturalWidth: number; naturalHeight: number; decode(): Promise<void> }

/** Puts the SVG in the page as the browser parses an image/svg+xml file, and reads every text box's place. */
async function render(page: Page, svg: string): Promise<Rendered> {
  return page.evaluate(async source => {
    const parsed = new DOMParser().parseFromString(source, 'image/svg+xml')
    const error = parsed.querySelector('parsererror')
    document.body.innerHTML = ''
    const root = document.importNode(parsed.documentElement, true)
    document.body.append(root)
    const frame = root.getBoundingClientRect()
    const boxes = Array.from(root.querySelectorAll('text, tspan'), el => {
      const r = el.getBoundingClientRect()
      return { tag: el.tagName, text: el.textContent ?? '', line: el.tagName === 'tspan' || !el.querySelector('tspan'), left: r.left - frame.left, top: r.top - frame.top, right: r.right - frame.left, bottom: r.bottom - frame.top }
    })
    const img = new Image()
    img.src = `data:image/svg+xml,${encodeURIComponent(source)}`
    await img.decode()
    return { parseError: error ? (error.textContent ?? 'parse error') : null, width: frame.width, height: frame.height, boxes, img: { complete: img.complete, naturalWidth: img.naturalWidth, naturalHeight: img.naturalHeight } }
  }, svg)
}

/** Every text box inside the image; lines (the tspans, and texts without any) pairwise apart. */
function expectInside(r: Rendered, w: number, h: number, label: string) {
  expect(r.parseError, label).toBeNull()
  expect({ width: r.width, height: r.height }, label).toEqual({ width: w, height: h })
  expect(r.img, label).toEqual({ complete: true, naturalWidth: w, naturalHeight: h })
  // Half a pixel for anti-aliased rounding of the boxes.
  const outside = r.boxes.filter(b => b.left < -0.5 || b.top < -0.5 || b.right > w + 0.5 || b.bottom > h + 0.5)
  expect(outside, `${label}: text outside the ${w}×${h} image`).toEqual([])
  const lines = r.boxes.filter(b => b.line)
  for (const [i, a] of lines.entries()) {
    for (const b of lines.slice(i + 1)) {
      const overlap = Math.min(a.right, b.right) - Math.max(a.left, b.left) > 0.5 && Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top) > 0.5
      expect(overlap, `${label}: "${a.text}" overlaps "${b.text}"`).toBe(false)
    }
  }
}

describe.skipIf(!hasChromium && !inCI)('placeholder SVGs in headless Chromium', () => {
  let browser: Browser
  let page: Page

  beforeAll(async () => {
    if (!hasChromium) throw new Error(`${CHROMIUM} is missing: CI must install Debian's chromium (.ci/run does)`)
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS })
    page = await browser.newPage()
    await page.setContent('<!doctype html><body style="margin:0"></body>')
  })

  afterAll(async () => {
    await browser?.close()
  })

  it('keeps every line inside the image at 256 px and up, the id, size and reason shown, long prompts whole', async () => {
    for (const [w, h] of SIZES) {
      for (const c of CASES) {
        const label = `${c.id.slice(0, 24)} at ${w}×${h}`
        const r = await render(page, placeholderSvg(c.id, c.prompt, w, h, c.reason))
        expectInside(r, w, h, label)
        const texts = r.boxes.filter(b => b.tag === 'text').map(b => b.text)
        expect(texts, label).toContain(`${w}×${h}`)
        expect(texts, label).toContain('PLACEHOLDER')
        expect(texts.length, `${label}: id, size, prompt, badge, reason`).toBe(5)
        // A 300-character prompt is shown whole at every size from 256 px up; only the three-times-longer one may be cut.
        if (c.prompt.length < 400) expect(r.boxes.filter(b => b.tag === 'tspan').length, label).toBeGreaterThan(3)
        if (c.prompt.length < 400) expect(texts[2]!.replace(/\s+/g, ''), label).toBe(c.prompt.replace(/\s+/g, ''))
      }
    }
  })

  it('keeps every line inside the image below 256 px too', async () => {
    for (const [w, h] of SMALL) {
      for (const c of CASES) expectInside(await render(page, placeholderSvg(c.id, c.prompt, w, h, c.reason)), w, h, `${c.id.slice(0, 24)} at ${w}×${h}`)
    }
  })
})
