import './style.css'
// The script with every asset replaced by { id, prompt, url, width, height, placeholder }.
import script from './video.script.json?flux'
// Every asset occurrence of the build, grouped by script path.
import manifest from 'virtual:flux-assets'

function el<K extends keyof HTMLElementTagNameMap>(tag: K, props: Partial<HTMLElementTagNameMap[K]> = {}, ...children: Array<Node | string>): HTMLElementTagNameMap[K] {
  const node = Object.assign(document.createElement(tag), props)
  node.append(...children)
  return node
}

function renderAsset(asset: FluxAsset): HTMLElement {
  const img = el('img', { src: asset.url, width: asset.width, height: asset.height, alt: asset.prompt, loading: 'eager' })
  const label = el('figcaption', {}, el('code', {}, asset.id), ` ${asset.width}×${asset.height}`)
  if (asset.placeholder) label.append(' ', el('span', { className: 'badge' }, 'placeholder'))
  return el('figure', { className: asset.placeholder ? 'asset is-placeholder' : 'asset' }, img, label)
}

const title = typeof script.title === 'string' ? script.title : 'Untitled'
document.title = `${title} · flux-assets playground`
document.querySelector('#title')!.textContent = title

const scenes = document.querySelector('#scenes')!
script.visual_track.forEach((scene, i) => {
  const caption = typeof scene.caption === 'string' ? scene.caption : ''
  const duration = typeof scene.duration === 'number' ? ` · ${scene.duration}s` : ''
  scenes.append(
    el(
      'section',
      { className: 'scene' },
      el('h2', {}, `Scene ${i + 1}${duration}`),
      el('p', { className: 'caption' }, caption),
      el('div', { className: 'assets' }, ...Object.values(scene.assets ?? {}).map(renderAsset)),
    ),
  )
})

const entries = Object.values(manifest).flat()
const unique = new Set(entries.map(e => e.key)).size
const placeholders = entries.filter(e => e.placeholder).length
document.querySelector('#summary')!.textContent =
  `${entries.length} assets in ${Object.keys(manifest).length} script(s), ${unique} unique images` +
  (placeholders ? `, ${placeholders} placeholders: set TOGETHER_API_KEY and build again for real images.` : '.')
