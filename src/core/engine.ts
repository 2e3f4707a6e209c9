import { describe } from './errors'
import { resolveOptions } from './options'
import { plan } from './plan'
import { checkModels, checkRun, checkStrict, decide, isAccountLevel, noKeyWarning, type Spent } from './policy'
import { usePrices } from './price'
import { defaultProvider, type ProviderDefinition } from './providers'
import { scanScripts } from './scan'
import { schedule } from './schedule'
import { FileStore, type StoreOptions } from './store'
import { hitOf, type ImageResult, progressOf, summarize } from './summary'
import type { ImageProvider } from './providers/contract'
import type { Catalog } from './providers/catalog'
import type { AssetRecord, AssetRequest, CacheHit, FluxAssetsOptions, GenerateResult, ResolvedOptions } from './types'

/** What the engine's generate() gives its callers (the plugin, the CLI): the result, and the cache entries behind it. */
export interface EngineResult extends GenerateResult {
  /** The verified cache entry of every key that has an image, so a caller can read it without checking it again. */
  hits: ReadonlyMap<string, CacheHit>
}

export interface GenerateHooks {
  /** A key's verified entry, once, as soon as it exists. Must not throw (the session only starts work there). */
  onHit?(key: string, hit: CacheHit): void
}

export interface Engine {
  readonly options: ResolvedOptions
  readonly store: FileStore
  /** Finds and validates every script. Throws ScriptError listing every problem. `onScript`: see scanScripts. */
  scan(onScript?: Parameters<typeof scanScripts>[1]): ReturnType<typeof scanScripts>
  /** Says each note once per engine (an unknown model, a size a model rounds): not once per image or rebuild. */
  note(notes: Iterable<string>): void
  /**
   * Makes sure every request has an image: from the cache, generated, or a placeholder. `hooks.onHit` hears of each
   * key's verified entry as soon as it exists (cached ones right after plan, generated ones as they are stored), while
   * the other requests are still in flight: the session starts the variants of an image there.
   */
  generate(requests: AssetRequest[], signal?: AbortSignal, hooks?: GenerateHooks): Promise<EngineResult>
  /**
   * Settles once what generate() left writing behind it has been written: the roots file (which keys this run used,
   * for prune). A build awaits it before it ends; close() does too.
   */
  flush(): Promise<void>
  /** Closes connections, after flush(). */
  close(): Promise<void>
}

/**
 * The stages in order, with no bundler: scan → plan → policy → schedule (→ store), and the records the emitters
 * ship. The plugin and the CLI are thin layers over this.
 */
export function createEngine(options: ResolvedOptions, inject: { provider?: ImageProvider; store?: StoreOptions } = {}): Engine {
  const store = new FileStore(options.cacheDir, inject.store)
  const definition = options.provider ?? defaultProvider
  let provider = inject.provider
  /** The provider's load, once started (startProvider): close() waits for it, so a load in flight is closed too. */
  let loading: Promise<ImageProvider> | undefined
  /**
   * Once per engine: what a killed run left behind (half-written temp files, orphan images, dead locks). It needs
   * nothing the scan finds, so the scan starts it and the first generate() awaits it (null once awaited: a recovery
   * that failed fails that run only, as before). Overlapped, its ~30 ms of shard listings leave a warm build's path.
   */
  let recovery: Promise<void> | undefined | null
  const startRecovery = () => {
    if (recovery !== undefined) return
    recovery = store.recover().then(() => {})
    // Handled here too: a scan without a generate (the CLI's list commands) must not leave a rejection unhandled.
    recovery.catch(() => {})
  }
  /** This engine's roots file, and every key with an entry it has used (prune spares them for 30 days). */
  const run = store.roots.newRun()
  const used = new Set<string>()
  /**
   * The roots file's writes, one after the other, each with every key used so far (so the last one written has them
   * all). Never rejects. Not awaited by generate(): the write (fsync'd) runs while the caller emits the images.
   */
  let rooted = Promise.resolve()
  /** What this engine has paid for so far: the budget caps hold for a whole dev/watch session, not per rebuild. */
  const spent: Spent = { images: 0, cost: 0 }
  const said = new Set<string>()
  const note = (notes: Iterable<string>) => {
    for (const n of notes) if (!said.has(n)) (said.add(n), options.logger.warn(n))
  }

  async function generate(requests: AssetRequest[], signal = options.signal, hooks: GenerateHooks = {}): Promise<EngineResult> {
    const started = performance.now()
    if (recovery !== null) {
      startRecovery()
      const recovering = recovery
      recovery = null
      await recovering
    }
    const canCall = !!inject.provider || definition.canCall(options)
    // The provider's load (the HTTP client: undici takes ~100 ms to import) and the free catalog request start at the
    // first key plan finds missing, if the policy lets that one image be generated, and run while the rest is planned;
    // both are awaited below, before any paid call. A build with everything cached never loads either.
    let early: Promise<Started> | undefined
    const start = () => (early ??= startProvider(definition, signal))
    const work = await plan(requests, store, request => {
      if (mayGenerate(request, canCall)) void start()
    })
    const results = new Map<string, ImageResult>()
    for (const [key, hit] of work.cached) results.set(key, { kind: 'cached', hit })
    for (const [key, hit] of work.cached) hooks.onHit?.(key, hit)
    let generating = 0
    const report = () => options.onProgress?.(progressOf(results, work.unique.size, generating))
    report()

    let decision: ReturnType<typeof decide>
    try {
      decision = decide(work.missing, options, canCall, spent)
    } catch (error) {
      // A run the budget refuses: what was started early has settled before the error is thrown.
      await early
      throw error
    }
    if ('placeholders' in decision) {
      for (const r of work.missing) results.set(r.key, { kind: 'placeholder', reason: decision.placeholders })
      if (decision.warning) options.logger.warn(decision.warning)
      if (work.missing.length) report()
    } else if (decision.generate.length) {
      const ready = await start()
      if ('error' in ready) throw ready.error
      provider = ready.provider
      // The catalog (free) before the first paid request: a model it does not list stops the run here, unbilled.
      const catalog = await readCatalog(ready.catalog, signal)
      if (catalog) {
        usePrices(catalog.models)
        checkModels(decision.generate, catalog)
        // Prices may have changed with the catalog: the caps are checked again on the catalog's figures.
        decide(work.missing, options, true, spent)
      }
      await schedule({
        requests: decision.generate,
        provider,
        store,
        lock: store.locks,
        options,
        signal,
        onGenerating: delta => ((generating += delta), report()),
        onResult: (key, result) => {
          const known = hitOf(results.get(key))
          results.set(key, result)
          report()
          const hit = hitOf(result)
          if (hit && !known) hooks.onHit?.(key, hit)
        },
      })
    }

    const assets: AssetRecord[] = requests.map(r => toRecord(r, results.get(r.key)!))
    // One line per image of its own failure; an account-level failure is one message however many it hit.
    for (const a of assets) {
      const result = results.get(a.key)!
      if (result.kind === 'failed' && !isAccountLevel(result.code)) options.logger.warn(`${a.script}: ${a.id}: ${a.error}`)
    }
    const summary = summarize(results, requests.length, performance.now() - started)
    spent.images += summary.generated
    spent.cost = spent.cost === null || summary.estimatedCost === null ? null : spent.cost + summary.estimatedCost
    const resized = assets.filter(a => a.file && (a.width !== a.settings.width || a.height !== a.settings.height))
    if (resized.length) {
      const [first] = resized
      note([`${resized.length} image${resized.length === 1 ? '' : 's'} came back at another size than asked (e.g. ${first!.id}: ${first!.settings.width}×${first!.settings.height} asked, ${first!.width}×${first!.height} received): records report the size received`])
    }
    const hits = new Map<string, CacheHit>()
    for (const [key, result] of results) if (hitOf(result)) hits.set(key, hitOf(result)!)
    remember(hits.keys())
    // Strict wins: every placeholder fails the run, listed; otherwise the table of what fails (policy.ts).
    checkStrict(assets, options.strict)
    const noKey = noKeyWarning(results)
    if (noKey) options.logger.warn(noKey)
    const kept = checkRun(results, options)
    if (kept) options.logger.error(kept)
    return { assets, summary, hits }
  }

  /**
   * Adds keys to this run's roots file, written after the writes before it (see `rooted`; flush() awaits them); a cache
   * that takes no writes (read-only, offline) only loses the note.
   */
  function remember(keys: Iterable<string>): void {
    const before = used.size
    for (const key of keys) used.add(key)
    if (used.size === before) return
    rooted = rooted.then(() => store.roots.record(run, used).catch((error: Error) => note([`could not record which images this run used (${error.message}): prune will not know them`])))
  }

  /** Whether policy lets one image be generated now (the first missing one): then the provider may be loaded. */
  function mayGenerate(request: AssetRequest, canCall: boolean): boolean {
    try {
      return 'generate' in decide([request], options, canCall, spent)
    } catch {
      return false
    }
  }

  /**
   * A cache with nothing in it (a fresh clone, a first CI run) will miss every key: the provider's module (undici's
   * ~100 ms import) is loaded while the scripts are scanned, not after. The module only: the catalog request still
   * waits for plan's first missing key and the policy's yes. A cache with any entry loads nothing here, so a warm
   * build never imports undici.
   */
  function preload(): void {
    if (loading || provider || inject.provider) return
    // Policy's rows (offline, no key) as decide() says them; and a budget that allows no image at all.
    if (!('generate' in decide([], options, definition.canCall(options), spent)) || spent.images >= options.maxNewImages) return
    if (!store.holdsNothing()) return
    loading = definition.load(options)
    // Handled where it is awaited (startProvider); a scan with no generate after it must not leave it unhandled.
    loading.catch(() => {})
  }

  /**
   * Loads the provider (once per engine) and sends its catalog request; never rejects: a failure is kept for the
   * place that awaits it, which throws or notes it exactly as if it had been started there.
   */
  function startProvider(definition: ProviderDefinition, signal: AbortSignal | undefined): Promise<Started> {
    const loaded = (loading ??= provider ? Promise.resolve(provider) : definition.load(options))
    return loaded.then(
      p => {
        provider = p
        const catalog: Promise<Settled<Catalog | undefined>> = p.catalog
          ? p.catalog(signal).then(value => ({ value }), (error: unknown) => ({ error }))
          : Promise.resolve({ value: undefined })
        return { provider: p, catalog }
      },
      (error: unknown) => {
        // A load that failed is tried again by the next generate(), as before.
        loading = undefined
        return { error }
      },
    )
  }

  /** The catalog, or `undefined` (said once) when it cannot be read: the built-in table is used then. */
  async function readCatalog(answer: Promise<Settled<Catalog | undefined>>, signal: AbortSignal | undefined): Promise<Catalog | undefined> {
    const settled = await answer
    if (!('error' in settled)) return settled.value
    const error = settled.error
    if (signal?.aborted) throw error
    // The key itself refused (401, 403): the generation request says so in its own words, no note needed.
    if ([401, 402, 403].includes((error as { status?: number }).status ?? 0)) return undefined
    note([`the model catalog could not be checked (${describe(error, options.apiKey)}): carrying on with the built-in model and price table`])
    return undefined
  }

  return {
    options,
    store,
    scan: async onScript => {
      startRecovery()
      preload()
      const scanned = await scanScripts(options, onScript)
      note(scanned.notes)
      return scanned
    },
    note,
    generate,
    flush: () => rooted,
    close: async () => {
      await rooted
      // A provider preloaded for a generate that never needed it is closed too.
      const loaded = await loading?.catch(() => undefined)
      loading = undefined
      await (provider ?? loaded)?.close()
      provider = inject.provider
    },
  }
}

/** An outcome kept for later: the value, or what was thrown. */
type Settled<T> = { value: T } | { error: unknown }
/** What startProvider gives: the loaded provider and its catalog answer in flight, or why it could not be loaded. */
type Started = { provider: ImageProvider; catalog: Promise<Settled<Catalog | undefined>> } | { error: unknown }

/** One asset occurrence as callers see it: where it is, and its image file (with its true size) or why it has none. */
function toRecord(r: AssetRequest, result: ImageResult): AssetRecord {
  const hit = hitOf(result)
  // Object.assign rather than `{ ...r, …, ...(hit ? {} : { error }) }`, same fields in the same order: V8 took that
  // literal's slow path, ~3 µs per record, 0.2-0.35 s for the 100,000 occurrences of 10,000 scripts (bench scenario 3).
  const record: AssetRecord = Object.assign({}, r, {
    file: hit?.file ?? null,
    width: hit?.record.width ?? r.settings.width,
    height: hit?.record.height ?? r.settings.height,
    placeholder: !hit,
  })
  if (!hit) record.error = (result as { reason: string }).reason
  return record
}

/** Discover every script under `root`, make sure each asset has an image, and tell what happened. */
export async function generateAssets(user: FluxAssetsOptions = {}): Promise<GenerateResult> {
  const engine = createEngine(resolveOptions(user))
  try {
    const { requests } = await engine.scan()
    const { assets, summary } = await engine.generate(requests)
    return { assets, summary }
  } finally {
    await engine.close()
  }
}
