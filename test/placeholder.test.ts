// The placeholder SVG and its line wrapping, without a browser: test/placeholder-browser.test.ts renders them.
import { describe, expect, it } from 'vitest'
import { placeholderSvg, textWidth, wrapText } from '../src/core/placeholder'

/** The text of each <text> element of an SVG, its lines (tspans) joined by spaces, unescaped. */
function texts(svg: string): string[] {
  const unescape = (t: string) => t.replace(/&#(\d+);/g, (_, n: string) => String.fromCharCode(Number(n)))
  return [...svg.matchAll(/<text[^>]*>(.*?)<\/text>/g)].map(([, inner]) => {
    const lines = [...inner!.matchAll(/<tspan[^>]*>(.*?)<\/tspan>/g)].map(([, line]) => line!)
    return unescape(lines.length ? lines.join(' ') : inner!)
  })
}

const LONG =
  'A sweeping cinematic aerial shot over a misty fjord at dawn, a lone red wooden cabin on a rocky outcrop, soft volumetric light breaking through low clouds, ' +
  'Supercalifragilisticexpialidocious-hyperdetailed-ultrarealistic textures, reflections on glassy water, 35mm film grain, muted teal and amber palette'

describe('wrapText', () => {
  it('breaks at spaces, every line within the width', () => {
    const { lines, complete } = wrapText(LONG, 300, 12, 100)
    expect(complete).toBe(true)
    expect(lines.length).toBeGreaterThan(5)
    for (const line of lines) expect(textWidth(line, 12)).toBeLessThanOrEqual(300 + 1e-6)
    // Nothing lost or added: the lines are the text, broken at spaces or after hyphens (300 px hold the long word).
    expect(lines.join(' ').replace(/- /g, '-')).toBe(LONG)
    expect(lines.every(line => line === line.trim())).toBe(true)
  })

  it('fills lines greedily: a line takes the next word whenever it fits', () => {
    const { lines } = wrapText(LONG, 300, 12, 100)
    for (const [i, line] of lines.slice(0, -1).entries()) {
      const next = lines[i + 1]!.split(/(?<=-)|\s/)[0]!
      expect(textWidth(`${line}${line.endsWith('-') ? '' : ' '}${next}`, 12)).toBeGreaterThan(300)
    }
  })

  it('breaks a word too long for a line between graphemes, never inside an emoji or an accented letter', () => {
    const word = 'e\u0301👩‍👩‍👧'.repeat(12)
    const { lines } = wrapText(word, 60, 10, 100)
    expect(lines.length).toBeGreaterThan(1)
    expect(lines.join('')).toBe(word)
    for (const line of lines) {
      expect(textWidth(line, 10)).toBeLessThanOrEqual(60 + 1e-6)
      expect(line.startsWith('\u0301') || line.startsWith('\u200d') || line.endsWith('\u200d')).toBe(false)
    }
  })

  it('breaks after a hyphen before breaking inside a word', () => {
    expect(wrapText('well-known-words', textWidth('well-known-', 10), 10, 5).lines).toEqual(['well-known-', 'words'])
  })

  it('past maxLines keeps that many, the last ending with "…" and still within the width', () => {
    const { lines, complete } = wrapText(LONG, 150, 12, 3)
    expect(complete).toBe(false)
    expect(lines).toHaveLength(3)
    expect(lines[2]!.endsWith('…')).toBe(true)
    for (const line of lines) expect(textWidth(line, 12)).toBeLessThanOrEqual(150 + 1e-6)
    expect(wrapText(LONG, 150, 12, 0)).toEqual({ lines: [], complete: false })
  })

  it('estimates wide: W and m wider than i, CJK and emoji wider than Latin, marks nothing', () => {
    expect(textWidth('W', 10)).toBeGreaterThan(textWidth('i', 10) * 2)
    expect(textWidth('東', 10)).toBeGreaterThan(textWidth('a', 10))
    expect(textWidth('👩‍👩‍👧', 10)).toBe(textWidth('🌃', 10))
    expect(textWidth('e\u0301', 10)).toBe(textWidth('e', 10))
  })
})

describe('placeholderSvg', () => {
  it('is an SVG of the asset size that shows the id, the size, the whole prompt and the reason', () => {
    const svg = placeholderSvg('avatar', 'A businessman in a suit', 640, 480, 'no API key (set TOGETHER_API_KEY)')
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg" width="640" height="480" viewBox="0 0 640 480">')).toBe(true)
    expect(svg.trimEnd().endsWith('</svg>')).toBe(true)
    expect(texts(svg)).toEqual(['avatar', '640×480', 'A businessman in a suit', 'PLACEHOLDER', 'no API key (set TOGETHER_API_KEY)'])
    // Tags balance: every opened element is closed or self-closed.
    const opened = (svg.match(/<(svg|g|text|tspan|defs|linearGradient)[\s>]/g) ?? []).length
    const closed = (svg.match(/<\/(svg|g|text|tspan|defs|linearGradient)>/g) ?? []).length
    expect(opened).toBe(closed)
  })

  it('wraps a 300-character prompt whole at 256×256, in several lines', () => {
    expect(LONG.length).toBeGreaterThan(300)
    const svg = placeholderSvg('fjord', LONG, 256, 256, 'offline: no API call made')
    expect(texts(svg)[2]!.replace(/- /g, '-')).toBe(LONG)
    expect(svg.match(/<tspan/g)!.length).toBeGreaterThan(8)
  })

  it('shortens what cannot fit with "…": a prompt too long even at the smallest size, a long reason, a long id', () => {
    const svg = placeholderSvg(`scene-${'x'.repeat(80)}`, LONG.repeat(4), 256, 256, `the API answered 500: ${'upstream trouble '.repeat(20)}`)
    const [id, , prompt, , reason] = texts(svg)
    expect(id).toMatch(/^scene-x+…$/)
    expect(prompt!.endsWith('…')).toBe(true)
    expect(reason).toMatch(/^the API answered 500: upstream trouble .*…$/)
  })

  it('says why without the words that say nothing on a picture', () => {
    expect(texts(placeholderSvg('a', 'b', 512, 512, 'not attempted: stopped: API key rejected (401): bad key'))).toContain('API key rejected (401): bad key')
  })

  it('escapes < & " \' > in the id, prompt and reason, and drops control characters', () => {
    const svg = placeholderSvg('<script>alert("x")</script>', `Tom & Jerry's <b>"best"</b>`, 1024, 512, 'API said <401> & "no"\u0007')
    expect(svg).not.toContain('<script')
    expect(svg).not.toContain('<b>')
    expect(svg).not.toContain('<401>')
    expect(svg).not.toContain('\u0007')
    expect(svg).toContain('&#60;script&#62;alert(&#34;x&#34;)&#60;/script&#62;')
    expect(svg).toContain('Tom &#38; Jerry&#39;s')
    // Every & starts a character reference.
    expect(svg.match(/&(?!#\d+;)/g)).toBeNull()
    // Outside the markup, no raw <, >, or " remain in text nodes.
    for (const text of svg.match(/>[^<]*</g) ?? []) expect(text.slice(1, -1)).not.toMatch(/[<>"]/)
  })

  it('never splits an escape when it shortens', () => {
    const svg = placeholderSvg('id', '&'.repeat(3000), 512, 512, 'x')
    expect(svg).toContain('…')
    expect(svg.match(/&(?!#\d+;)/g)).toBeNull()
  })

  it('stays well-formed at sizes far below 256 px, giving up the reason, badge and header before the prompt', () => {
    for (const [w, h] of [[64, 64], [32, 200], [200, 24], [8, 8], [1, 1]] as const) {
      const svg = placeholderSvg('tiny', LONG, w, h, 'no API key')
      expect(svg).toContain(`viewBox="0 0 ${w} ${h}"`)
      expect(svg.match(/&(?!#\d+;)/g)).toBeNull()
    }
    expect(texts(placeholderSvg('tiny', 'a red door', 200, 24, 'no API key'))).toEqual(['a red door'])
  })
})
