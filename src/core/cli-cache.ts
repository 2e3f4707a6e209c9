import { FluxError } from './errors'
import type { Engine } from './engine'
import { estimateCost, estimateTotal, formatCost } from './price'
import type { AssetRequest } from './types'

/** The CLI's commands that look at the cache without generating: `status`, `generate --dry-run`, `prune`, `verify`. */

type Out = { stdout: NodeJS.WritableStream }
type Scanned = Awaited<ReturnType<Engine['scan']>>

/** The requests whose key has no verified entry, and the entries found for the others. */
async function missingOf(engine: Engine, requests: AssetRequest[]) {
  const keys = [...new Set(requests.map(r => r.key))]
  const hits = new Map((await Promise.all(keys.map(async k => [k, await engine.store.get(k)] as const))).filter(([, hit]) => hit))
  const unique = new Map(requests.filter(r => !hits.has(r.key)).map(r => [r.key, r]))
  return { keys, hits, missing: [...unique.values()], missingAssets: requests.filter(r => !hits.has(r.key)) }
}

export async function status(engine: Engine, { files, requests }: Scanned, io: Out, json: boolean): Promise<number> {
  const { keys, hits, missing, missingAssets } = await missingOf(engine, requests)
  // What the cached images cost when they were made (entries from before 2026-12 did not record it).
  let cacheCost: number | null = 0
  for (const hit of hits.values()) cacheCost = cacheCost === null || typeof hit!.record.cost !== 'number' ? null : cacheCost + hit!.record.cost
  const result = {
    scripts: files.length,
    assets: requests.length,
    images: keys.length,
    cached: hits.size,
    missing: missing.length,
    estimatedCost: estimateTotal(missing.map(r => r.settings)),
    cachedCost: cacheCost,
    missingAssets: missingAssets.map(r => ({ script: r.script, pointer: r.pointer, id: r.id, prompt: r.prompt, key: r.key })),
  }
  if (json) return io.stdout.write(`${JSON.stringify(result, null, 2)}\n`), 0
  for (const r of missingAssets) io.stdout.write(`missing  ${r.script} ${r.pointer}\n`)
  const spent = result.cached ? ` (${cacheCost === null ? 'cost unknown' : `$${cacheCost.toFixed(3)}`} spent on them)` : ''
  io.stdout.write(`${result.scripts} ${result.scripts === 1 ? 'script' : 'scripts'} · ${result.assets} assets · ${result.images} images · ${result.cached} cached${spent} · ${result.missing} missing (${formatCost(result.estimatedCost)})\n`)
  return 0
}

/** `generate --dry-run`: what would be generated and its estimated cost; no generation request, nothing written. */
export async function dryRun(engine: Engine, { requests }: Scanned, io: Out, json: boolean): Promise<number> {
  const { hits, missing } = await missingOf(engine, requests)
  const estimatedCost = estimateTotal(missing.map(r => r.settings))
  const images = missing.map(r => ({ script: r.script, pointer: r.pointer, id: r.id, prompt: r.prompt, key: r.key, width: r.settings.width, height: r.settings.height, model: r.settings.model, estimatedCost: estimateCost(r.settings) }))
  if (json) return io.stdout.write(`${JSON.stringify({ dryRun: true, cached: hits.size, wouldGenerate: images, estimatedCost }, null, 2)}\n`), 0
  for (const i of images) io.stdout.write(`would generate  ${i.script} ${i.pointer}  ${i.width}×${i.height}  ${formatCost(i.estimatedCost)}  ${quote(i.prompt)}\n`)
  io.stdout.write(`dry run: ${images.length} image${images.length === 1 ? '' : 's'} would be generated (${formatCost(estimatedCost)}), ${hits.size} cached; nothing was called\n`)
  return 0
}

/**
 * `prune`: deletes entries no script references, except those a build or run used in the last 30 days (the roots),
 * whatever `--force` says. Refuses without `--force` when no script was found or every entry would go (an
 * `--include` typo). Also removes what killed runs left (orphan images, temp files) and expired roots.
 */
export async function prune(engine: Engine, { files, requests }: Scanned, io: Out & { stderr: NodeJS.WritableStream }, flags: { dryRun: boolean; force: boolean; json: boolean }): Promise<number> {
  const { store } = engine
  const wanted = new Set(requests.map(r => r.key))
  const all = await store.keys()
  const rooted = await store.roots.keys()
  const unused = all.filter(k => !wanted.has(k))
  const kept = unused.filter(k => rooted.has(k))
  const doomed = unused.filter(k => !rooted.has(k))
  if (!flags.force && doomed.length > 0) {
    const why = files.length === 0 ? `no script was found (include: ${engine.options.include.join(', ')})` : doomed.length === all.length ? `every entry in the cache (${all.length}) would be deleted` : undefined
    if (why) throw new FluxError('FLUX_PRUNE_REFUSED', `prune refused: ${why}. Check --include and --root, or pass --force to delete ${doomed.length} entr${doomed.length === 1 ? 'y' : 'ies'} anyway (entries a build used in the last 30 days are kept either way).`)
  }
  const details = await Promise.all(doomed.map(async key => ({ key, record: await store.info(key) })))
  if (!flags.dryRun) {
    for (const key of doomed) await store.remove(key)
    await store.recover()
    await store.roots.expire()
  }
  if (flags.json) {
    const entries = details.map(({ key, record }) => ({ key, prompt: record?.prompt, width: record?.width ?? record?.settings.width, height: record?.height ?? record?.settings.height, bytes: record?.size }))
    io.stdout.write(`${JSON.stringify({ removed: flags.dryRun ? [] : doomed, unused: doomed, entries, keptByRoots: kept }, null, 2)}\n`)
    return 0
  }
  for (const { key, record } of details) {
    const size = record ? `${record.width ?? record.settings.width}×${record.height ?? record.settings.height}  ${formatBytes(record.size)}  ${quote(record.prompt)}` : '(record unreadable)'
    io.stdout.write(`${flags.dryRun ? 'would remove' : 'removed'}  ${key.slice(0, 12)}  ${size}\n`)
  }
  const keptLine = kept.length ? `; ${kept.length} kept: used by a build or run in the last 30 days` : ''
  io.stdout.write(`${doomed.length} unused entr${doomed.length === 1 ? 'y' : 'ies'} ${flags.dryRun ? 'found' : 'removed'}${keptLine}\n`)
  return 0
}

/** `verify`: re-hashes every entry, reports and removes the damaged ones. Exit 1 when any was damaged. */
export async function verify(engine: Engine, io: Out, json: boolean): Promise<number> {
  const { checked, variants, damaged } = await engine.store.verify()
  if (json) io.stdout.write(`${JSON.stringify({ checked, variants, damaged }, null, 2)}\n`)
  else {
    for (const d of damaged) io.stdout.write(`damaged  ${d.key.slice(0, 12)}  ${quote(d.prompt)}: ${d.reason} (removed)\n`)
    const and = variants ? ` and ${variants} variant${variants === 1 ? '' : 's'}` : ''
    // A damaged variant is made again from its cached source: only a damaged source is paid for again.
    io.stdout.write(`${checked} entr${checked === 1 ? 'y' : 'ies'}${and} checked · ${damaged.length} damaged${damaged.length ? ' and removed: the next build or generate makes them again' : ''}\n`)
  }
  return damaged.length ? 1 : 0
}

function quote(prompt: string): string {
  return JSON.stringify(prompt.length > 60 ? `${prompt.slice(0, 59)}…` : prompt)
}

function formatBytes(n: number): string {
  return n < 1024 ? `${n} B` : n < 1024 * 1024 ? `${(n / 1024).toFixed(1)} KB` : `${(n / 1024 / 1024).toFixed(1)} MB`
}
