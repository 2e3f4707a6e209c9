import type { PictureFields } from './codegen'
import type { AssetRecord } from './types'

export const MANIFEST_FILE = 'flux-assets.json'

export interface Manifest {
  version: 1
  entries: Array<Pick<AssetRecord, 'script' | 'pointer' | 'id' | 'prompt' | 'key' | 'width' | 'height' | 'placeholder'> & { file: string } & ManifestPicture>
}

/** An entry's picture: PictureFields with file names (relative to the output dir) for URLs, `file` in `variants`. */
export type ManifestPicture = Omit<PictureFields<string>, 'variants'> & { variants: Array<Omit<PictureFields<string>['variants'][number], 'url'> & { file: string }> }

/** `flux-assets.json`: one entry per asset occurrence, `file` (by key) relative to the output dir, and its picture. */
export function manifestJson(records: AssetRecord[], files: ReadonlyMap<string, string>, pictures: Array<PictureFields<string>>): string {
  const manifest: Manifest = {
    version: 1,
    entries: records.map((r, i) => ({
      script: r.script,
      pointer: r.pointer,
      id: r.id,
      prompt: r.prompt,
      key: r.key,
      file: files.get(r.key)!,
      width: r.width,
      height: r.height,
      placeholder: r.placeholder,
      ...pictures[i]!,
      variants: pictures[i]!.variants.map(({ url, ...v }) => ({ ...v, file: url })),
    })),
  }
  return `${JSON.stringify(manifest, null, 2)}\n`
}
