// Vite 6, 7 and 8, each a real install (npm aliases `vite6`, `vite7` in devDependencies; `vite` is 8). Vite 6 and
// 7 still have the JSON plugin that claims every id matching /\.json(?:$|\?)/ and Rollup instead of Rolldown: Astro 5
// runs Vite 6, Nuxt 3 and 4 Vite 7. The suites that take a Vite run once per version.
import * as vite8 from 'vite'
import * as vite7 from 'vite7'
import * as vite6 from 'vite6'

type Vite = Pick<typeof vite8, 'build' | 'createServer' | 'createBuilder' | 'version'>

export const VITES: Array<{ label: string; vite: Vite }> = [
  { label: 'vite 8', vite: vite8 },
  { label: 'vite 7', vite: vite7 as unknown as Vite },
  { label: 'vite 6', vite: vite6 as unknown as Vite },
]
