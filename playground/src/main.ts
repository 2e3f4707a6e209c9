import './style.css'
// The script with every asset replaced by { id, prompt, url, width, height, placeholder }.
import script from './video.script.json?flux'
// Every asset occurrence of the build, grouped by script path, each with its model and cost; and the build's counts.
import manifest, { summary } from 'virtual:flux-assets'

function el<K extends keyof HTMLElementTagNameMap>(tag: K, props: Partial<HTMLElementTagNameMap[K]> = {}, ...children: Array<Node | string>): HTMLElementTagNameMap[K] {
  const node = Object.assign(document.createElement(tag), props)
  node.append(...children)
  return node
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`
const usd = (cost: number | null, digits = 3) => (cost === null ? 'unknown' : `$${cost.toFixed(digits)}`)
const clock = (s: number) => `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`

// A ?flux asset and its virtual:flux-assets entry share their URL (one URL per image).
const entries = Object.values(manifest).flat()
const byUrl = new Map(entries.map(e => [e.url, e]))
/** The scene where each image was first used: a shot that reuses it says so. */
const firstScene = new Map<string, number>()

function renderShot(asset: FluxAsset, scene: number): HTMLElement {
  const entry = byUrl.get(asset.url)
  const img = el('img', { src: asset.url, width: asset.width, height: asset.height, alt: asset.prompt, loading: 'eager', decoding: 'async' })
  const head = el('div', { className: 'shot-head' }, el('code', { className: 'shot-id' }, asset.id))
  if (asset.placeholder) head.append(el('span', { className: 'badge' }, 'placeholder'))
  const facts = el('dl', { className: 'facts' })
  const fact = (term: string, value: string, title = '') => facts.append(el('div', { title }, el('dt', {}, term), el('dd', {}, value)))
  if (entry) fact('model', entry.model.split('/').pop()!, entry.model)
  fact('size', `${asset.width}×${asset.height}`)
  if (entry) fact('cost', asset.placeholder ? '—' : usd(entry.cost, 4), asset.placeholder ? 'not generated' : 'estimated when it was made')
  const seen = entry && firstScene.get(entry.key)
  if (entry && seen === undefined) firstScene.set(entry.key, scene)
  const caption = el('figcaption', {}, head, el('p', { className: 'prompt' }, asset.prompt), facts)
  if (seen !== undefined) caption.append(el('p', { className: 'reuse' }, `Same prompt and size as scene ${seen}: one image, one file.`))
  return el('figure', { className: asset.placeholder ? 'shot is-placeholder' : 'shot' }, el('div', { className: 'frame' }, img), caption)
}

const title = typeof script.title === 'string' ? script.title : 'Untitled'
document.title = `${title} · flux-assets playground`
document.querySelector('#title')!.textContent = title

const scenes = document.querySelector('#scenes')!
let start = 0
script.visual_track.forEach((scene, i) => {
  const caption = typeof scene.caption === 'string' ? scene.caption : ''
  const duration = typeof scene.duration === 'number' ? scene.duration : 0
  const time = duration ? `${clock(start)}–${clock(start + duration)}` : ''
  start += duration
  scenes.append(
    el(
      'section',
      { className: 'scene' },
      el('header', { className: 'scene-head' }, el('span', { className: 'scene-no' }, `Scene ${i + 1}`), el('span', { className: 'time' }, time), el('h2', {}, caption)),
      el('div', { className: 'shots' }, ...Object.values(scene.assets ?? {}).map(asset => renderShot(asset, i + 1))),
    ),
  )
})

// The build's own counts (its summary line's), so the page and the build log agree: images are unique images.
const images = new Set(entries.map(e => e.key)).size
document.querySelector('#lede')!.textContent =
  `A ${start}-second video script in ${plural(script.visual_track.length, 'scene')}, storyboarded at build time: ` +
  `${plural(entries.length, 'shot')}, ${plural(images, 'image')}.`
const box = document.querySelector('#summary')!
if (summary) {
  const stat = (value: string, label: string, note = '', className = '') => el('div', { className: `stat ${className}` }, el('b', {}, value), el('span', {}, label), el('small', {}, note))
  box.append(
    el(
      'div',
      { className: 'stats' },
      stat(String(summary.unique), summary.unique === 1 ? 'image' : 'images', `in ${plural(summary.assets, 'shot')}`),
      stat(String(summary.generated), 'generated', 'this build'),
      stat(String(summary.cached), 'cached', 'already made'),
      stat(String(summary.placeholders), summary.placeholders === 1 ? 'placeholder' : 'placeholders', 'images', summary.placeholders ? 'warn' : ''),
      stat(usd(summary.estimatedCost), 'spent', 'this build, est.'),
    ),
  )
  if (summary.placeholders) {
    const uses = entries.filter(e => e.placeholder).length
    box.append(
      el(
        'p',
        { className: 'note' },
        `${summary.placeholders} of ${plural(summary.unique, 'image')} ${summary.placeholders === 1 ? 'is a placeholder' : 'are placeholders'} (shown in ${plural(uses, 'shot')}). `,
        'Each one says why. Set ',
        el('code', {}, 'TOGETHER_API_KEY'),
        ' and build again for real images.',
      ),
    )
  }
}
