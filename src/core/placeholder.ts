// The SVG that ships when no image could be had. SVG text does not wrap by itself, so the lines are made here from
// a width estimate that errs wide (per character, DejaVu Sans' advance rounded up: one of the widest common UI
// fonts): text set in a narrower font only leaves more room. test/placeholder-browser.test.ts checks it in Chromium.

const SANS = `system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif`
const MONO = `ui-monospace, SFMono-Regular, Menlo, Consolas, 'DejaVu Sans Mono', monospace`
/** Line box, in em. The glyphs' box (ascent + descent, up to ~1.2 em in common fonts) is centred in it. */
const LINE = 1.35
/** Baseline below a line's top, in em: the glyph box of 1.2 em centred in the line box. */
const BASELINE = (LINE - 1.2) / 2 + 0.95
const SAFETY = 1.05

// Made on first use: constructing a Segmenter loads ICU's break data, 15-23 ms that every build would pay at import.
let graphemes: Intl.Segmenter | undefined
const NARROW = new Set(` !'(),-./:;I[\\]fijlrt|`)
const WIDE = new Set('#%&+<=>@MW^mw~')
const EAST_ASIAN_WIDE = /[\u1100-\u115f\u2e80-\ua4cf\uac00-\ud7a3\uf900-\ufaff\ufe30-\ufe4f\uff00-\uff60\uffe0-\uffe6]/u

/** The advance of one grapheme in em, rounded up: sans (`mono`: a monospace font). */
export function graphemeWidth(grapheme: string, mono = false): number {
  // Accents, joiners and variation selectors add nothing to their letter's width.
  const g = grapheme.length > 1 ? grapheme.replace(/[\p{M}\u200b-\u200f\u2060\ufeff]/gu, '') : grapheme
  if (g.length === 1 && g >= ' ' && g <= '~') return mono ? 0.62 : NARROW.has(g) ? 0.42 : WIDE.has(g) ? 1 : g >= 'a' && g <= 'z' ? 0.64 : 0.8
  if (!g || /^[\p{M}\u200b-\u200f\u2060\ufeff]$/u.test(g)) return 0
  if (/\p{Extended_Pictographic}|\p{Regional_Indicator}/u.test(g)) return 1.3
  if (EAST_ASIAN_WIDE.test(g)) return 1.05
  return mono ? 0.62 : 1
}

function split(text: string): string[] {
  // Printable ASCII is one grapheme per character: no need for the (slower) segmenter.
  return /^[ -~]*$/.test(text) ? [...text] : Array.from((graphemes ??= new Intl.Segmenter('en', { granularity: 'grapheme' })).segment(text), s => s.segment)
}

/** The width of `text` at `fontSize` px. */
export function textWidth(text: string, fontSize: number, mono = false): number {
  return split(text).reduce((sum, g) => sum + graphemeWidth(g, mono), 0) * fontSize * SAFETY
}

/**
 * `text` in lines no wider than `maxWidth` at `fontSize`: broken at spaces or after a hyphen or slash, a word too
 * long for a line broken between graphemes (never inside an emoji or an accented letter). Past `maxLines` the last
 * line kept ends with "…".
 */
export function wrapText(text: string, maxWidth: number, fontSize: number, maxLines: number, mono = false): { lines: string[]; complete: boolean } {
  const em = (t: string) => textWidth(t, fontSize, mono)
  // Widths add up: a tolerance for floating point, so a line measured in pieces fits as it does whole.
  const fits = (w: number) => w <= maxWidth + 1e-6
  const space = em(' ')
  // A word, or its parts after each hyphen or slash: `spaced` tells whether a space goes before it on the same line.
  const pieces = text.split(/\s+/).filter(Boolean).flatMap(word => word.split(/(?<=[-/\u2010-\u2014])(?=.)/u).map((part, i) => ({ part, spaced: i === 0 })))
  const lines: string[] = []
  let line = ''
  let width = 0
  const add = (t: string, w: number) => ((line += t), (width += w))
  const next = () => (line && lines.push(line), (line = ''), (width = 0))
  for (const { part, spaced } of pieces) {
    const w = em(part)
    const gap = line && spaced ? space : 0
    if (fits(width + gap + w)) add(gap ? ` ${part}` : part, gap + w)
    else if ((next(), fits(w))) add(part, w)
    else {
      for (const g of split(part)) {
        const gw = graphemeWidth(g, mono) * fontSize * SAFETY
        if (!fits(width + gw)) next()
        // A grapheme wider than the whole line cannot be shown at all.
        if (fits(gw)) add(g, gw)
      }
    }
  }
  next()
  if (lines.length <= maxLines) return { lines, complete: true }
  const kept = lines.slice(0, Math.max(0, maxLines))
  if (kept.length) kept[kept.length - 1] = ellipsize(kept.at(-1)!, t => fits(em(t)))
  return { lines: kept, complete: false }
}

/** `text` on one line: whole when it fits, else cut with "…". */
export function fitLine(text: string, maxWidth: number, fontSize: number, mono = false): string {
  const fits = (t: string) => textWidth(t, fontSize, mono) <= maxWidth
  return fits(text) ? text : ellipsize(text, fits)
}

/** `line` with "…" at its end, cut (between graphemes) as far as needed to fit. */
function ellipsize(line: string, fits: (line: string) => boolean): string {
  const gs = split(line)
  for (let n = gs.length; n > 0; n--) {
    const cut = `${gs.slice(0, n).join('').replace(/[\s.,;:]+$/, '')}…`
    if (fits(cut)) return cut
  }
  return fits('…') ? '…' : ''
}

/** Why an image is missing, without the parts that say nothing on a picture: `flux-assets:`, `not attempted:`. */
function shortReason(reason: string): string {
  return reason.replace(/^(flux-assets:\s*)?(not attempted:\s*)?(stopped:\s*)?/i, '').replace(/\s+/g, ' ').trim() || 'not generated'
}

interface Block {
  /** Lines of text, each one `<tspan>`. */
  lines: string[]
  size: number
}

/** What is shown: the id and size, the badge, up to this many lines of reason. */
interface Show {
  header: boolean
  badge: boolean
  reasonLines: number
}

/**
 * An SVG of the asset's size: the asset id and size at the top, the prompt wrapped in the middle (as large as fits),
 * and at the bottom a "placeholder" badge with the reason. Every line fits inside the image; a prompt too long for
 * the smallest font size ends with "…", and on small images the reason, the badge and the header give way in turn.
 */
/** The placeholder's background, flat: between its gradient's two stops. Its `blur` colour. */
export const PLACEHOLDER_COLOR = '#2c3a4f'

export function placeholderSvg(id: string, prompt: string, width: number, height: number, reason: string): string {
  const w = width
  const h = height
  const s = Math.min(w, h)
  // Everything in proportion to the shorter side: a placeholder looks the same at any resolution of its shape.
  const pad = Math.max(4, Math.round(s * 0.06))
  const inner = w - 2 * pad
  const meta = Math.max(7, Math.round(s / 20))
  const gap = Math.round(meta * 0.9)
  const note = Math.max(7, Math.round(meta * 0.85))
  const badgeSize = Math.max(6, Math.round(meta * 0.8))
  const badge = { w: textWidth('PLACEHOLDER', badgeSize, true) + badgeSize * 1.2, h: Math.round(badgeSize * 1.8) }
  const sizeLabel = `${w}×${h}`
  // The size beside the id when the id keeps at least a few characters there, else on a line of its own.
  const sizeOnRow = inner - textWidth(sizeLabel, meta, true) - meta >= textWidth('mmmmmm', meta, true)
  const idWidth = sizeOnRow ? inner - textWidth(sizeLabel, meta, true) - meta : inner
  const idLine = [fitLine(id.replace(/\s+/g, ' '), idWidth, meta, true)].filter(Boolean)
  const headerHeight = meta * LINE * (sizeOnRow ? 1 : 2) + gap
  const text = prompt.replace(/\s+/g, ' ').trim()

  const layout = (show: Show) => {
    const reasons: Block = { lines: show.reasonLines ? wrapText(shortReason(reason), inner, note, show.reasonLines).lines : [], size: note }
    const footer = (show.badge ? badge.h : 0) + (show.badge && reasons.lines.length ? gap / 2 : 0) + reasons.lines.length * note * LINE
    const top = pad + (show.header ? headerHeight : 0)
    const bottom = h - pad - footer - (footer ? gap : 0)
    // The largest prompt size at which it all fits; at the smallest, as many lines as fit, the last ending with "…".
    const min = clamp(Math.round(s / 32), 6, 9)
    let body: (Block & { complete: boolean }) | undefined
    for (let size = Math.max(min, Math.round(s / 11)); size >= min && !body?.complete; size = size > min ? Math.max(min, Math.floor(size * 0.9)) : 0) {
      const maxLines = Math.floor((bottom - top) / (size * LINE))
      if (maxLines >= 1) body = { ...wrapText(text, inner, size, maxLines), size }
    }
    return { show, reasons, footerTop: h - pad - footer, top, bottom, body }
  }
  const header = headerHeight <= h - 2 * pad && textWidth(sizeLabel, meta, true) <= inner
  const first: Show = { header, badge: badge.w <= inner, reasonLines: h >= 360 ? 3 : h >= 160 ? 2 : 1 }
  const layouts = [first, { ...first, reasonLines: 1 }, { ...first, reasonLines: 0 }, { header, badge: false, reasonLines: 0 }, { header: false, badge: false, reasonLines: 0 }]
  // Only layouts whose header and footer fit at all; the last (the prompt alone, or nothing) always does.
  const tried = layouts.map(layout).filter((t, i, all) => t.bottom >= t.top || i === all.length - 1)
  // The whole prompt with as much else as possible; when it cannot be whole, everything else with some of it.
  const { show, reasons, footerTop, top, bottom, body } =
    tried.find(t => t.body?.complete) ?? tried.find(t => (t.body?.lines.length ?? 0) >= 2) ?? tried.find(t => t.body) ?? tried.at(-1)!

  const tspans = (b: Block, x: number, y: number) =>
    b.lines.map((line, i) => `<tspan x="${x}" y="${round(y + (i * LINE + BASELINE) * b.size)}">${escapeXml(line)}</tspan>`).join('')
  const m = Math.max(2, Math.round(pad / 2))
  const arm = Math.max(4, Math.round(s * 0.06))
  const out = [
    `<defs><linearGradient id="g" x1="0" y1="0" x2="1" y2="1"><stop offset="0" stop-color="#1e293b"/><stop offset="1" stop-color="#3b4a63"/></linearGradient></defs>`,
    `<rect width="${w}" height="${h}" fill="url(#g)"/>`,
    // Viewfinder corners: a frame waiting for its picture.
    `<path d="M${m} ${m + arm}V${m}H${m + arm}M${w - m - arm} ${m}H${w - m}V${m + arm}M${w - m} ${h - m - arm}V${h - m}H${w - m - arm}M${m + arm} ${h - m}H${m}V${h - m - arm}" fill="none" stroke="#94a3b8" stroke-opacity="0.55" stroke-width="${Math.max(1, Math.round(s / 200))}"/>`,
  ]
  if (show.header) {
    out.push(`<text font-family="${MONO}" font-size="${meta}" font-weight="700" fill="#e2e8f0">${tspans({ lines: idLine, size: meta }, pad, pad)}</text>`)
    const size = { lines: [sizeLabel], size: meta }
    out.push(
      sizeOnRow
        ? `<text font-family="${MONO}" font-size="${meta}" fill="#94a3b8" text-anchor="end">${tspans(size, w - pad, pad)}</text>`
        : `<text font-family="${MONO}" font-size="${meta}" fill="#94a3b8">${tspans(size, pad, pad + meta * LINE)}</text>`,
    )
  }
  if (body?.lines.length) {
    // Centred in the room between the header and the footer.
    const y = top + Math.max(0, (bottom - top - body.lines.length * body.size * LINE) / 2)
    out.push(`<text font-family="${SANS}" font-size="${body.size}" fill="#f8fafc">${tspans(body, pad, y)}</text>`)
  }
  if (show.badge) {
    out.push(
      `<rect x="${pad}" y="${round(footerTop)}" width="${round(badge.w)}" height="${badge.h}" rx="${round(badge.h / 2)}" fill="#fbbf24"/>`,
      `<text x="${round(pad + badge.w / 2)}" y="${round(footerTop + badge.h / 2 + badgeSize * 0.36)}" font-family="${MONO}" font-size="${badgeSize}" font-weight="700" fill="#422006" text-anchor="middle">PLACEHOLDER</text>`,
    )
  }
  if (reasons.lines.length) {
    out.push(`<text font-family="${SANS}" font-size="${note}" fill="#cbd5e1">${tspans(reasons, pad, footerTop + (show.badge ? badge.h + gap / 2 : 0))}</text>`)
  }
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}">\n${out.join('\n')}\n</svg>\n`
}

function clamp(n: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, n))
}

function round(n: number): number {
  return Math.round(n * 10) / 10
}

function escapeXml(text: string): string {
  // Control characters are not allowed in XML at all.
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f]/g, '').replace(/[<>&"']/g, c => `&#${c.charCodeAt(0)};`)
}
