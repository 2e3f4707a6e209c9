import type { AssetRecord } from './types'

export const MANIFEST_FILE = 'flux-assets.json'

export interface Manifest {
  version: 1
  entries: Array<Pick<AssetRecord, 'script' | 'pointer' | 'id' | 'prompt' | 'key' | 'width' | 'height' | 'placeholder'> & { file: string }>
}

/** `flux-assets.json`: one entry per asset occurrence, `file` (by key) relative to the output dir. */
export function manifestJson(records: AssetRecord[], files: ReadonlyMap<string, string>): string {
  const manifest: Manifest = {
    version: 1,
    entries: records.map(r => ({
      script: r.script,
      pointer: r.pointer,
      id: r.id,
      prompt: r.prompt,
      key: r.key,
      file: files.get(r.key)!,
      width: r.width,
      height: r.height,
      placeholder: r.placeholder,
    })),
  }
  return `${JSON.stringify(manifest, null, 2)}\n`
}
