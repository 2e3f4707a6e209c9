// resolveOptions: defaults, where the key and base URL come from (option > real env > <root>/.env), and clear errors.
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { FluxError } from '../src/core/errors'
import { DEFAULT_BASE_URL, resolveOptions } from '../src/core/options'
import type { FluxAssetsOptions } from '../src/core/types'
import { removeDir, tempDir } from './core-helpers'

let root: string
beforeEach(async () => {
  root = await tempDir('options')
})
afterEach(async () => removeDir(root))

const dotEnv = (text: string) => writeFile(join(root, '.env'), text)
/** Resolves with exactly this environment (never the developer's). */
const resolveWith = (env: Record<string, string | undefined>, user: FluxAssetsOptions = {}) => resolveOptions(user, root, { env })

describe('defaults', () => {
  it('applies every default of the issue', () => {
    const o = resolveWith({})
    expect(o).toMatchObject({
      root,
      include: ['**/*.script.json'],
      cacheDir: join(root, '.flux-cache'),
      apiKey: undefined,
      baseURL: 'https://api.together.xyz/v1',
      responseFormat: 'base64',
      promptPrefix: '',
      promptSuffix: '',
      // No steps: FLUX.2 [dev] picks its own (the retired FLUX.1 [schnell]'s profile sends 4).
      defaults: { model: 'black-forest-labs/FLUX.2-dev', width: 1024, height: 768, steps: undefined, seed: undefined, outputFormat: 'jpeg' },
      concurrency: 4,
      retries: 4,
      maxRetryDelay: 60_000,
      timeout: 120_000,
      maxImageBytes: 25 * 1024 * 1024,
      strict: false,
      offline: false,
      maxNewImages: 100,
      maxCost: undefined,
    })
    expect(DEFAULT_BASE_URL).toBe('https://api.together.xyz/v1')
  })

  it('excludes node_modules, dot-folders, the cache dir and the build output dir (when inside root)', () => {
    expect(resolveWith({}).exclude).toEqual(['**/node_modules/**', '**/.*/**', '.flux-cache/**', 'dist/**'])
    const custom = resolveOptions({ cacheDir: 'assets/cache' }, root, { outDir: join(root, 'build/out'), env: {} })
    expect(custom.exclude).toEqual(['**/node_modules/**', '**/.*/**', 'assets/cache/**', 'build/out/**'])
    // Outside the root: nothing to exclude there.
    const outside = resolveOptions({ cacheDir: '../elsewhere' }, root, { outDir: '/tmp/out', env: {} })
    expect(outside.exclude).toEqual(['**/node_modules/**', '**/.*/**'])
    expect(outside.cacheDir).toBe(join(root, '../elsewhere'))
  })

  it('takes include/exclude as a string or an array, and never mutates or keeps the user object', () => {
    const include = ['a/**/*.script.json']
    const user: FluxAssetsOptions = Object.freeze({ include, exclude: 'skip/**', width: 512 })
    const o = resolveWith({}, user)
    expect(o.include).toEqual(include)
    expect(o.include).not.toBe(include)
    expect(o.exclude).toEqual(['skip/**'])
    expect(user).toEqual({ include: ['a/**/*.script.json'], exclude: 'skip/**', width: 512 })
  })

  it('the root option wins over the root argument, and is made absolute', () => {
    expect(resolveOptions({ root: 'relative/dir' }, '/ignored', { env: {} }).root).toBe(join(process.cwd(), 'relative/dir'))
  })
})

describe('key and base URL', () => {
  it('reads TOGETHER_API_KEY and TOGETHER_BASE_URL from <root>/.env', async () => {
    await dotEnv('# set up like the original backend\nTOGETHER_API_KEY=sk-test-from-dotenv\nTOGETHER_BASE_URL=http://127.0.0.1:9/v1/\n')
    const o = resolveWith({})
    expect(o.apiKey).toBe('sk-test-from-dotenv')
    expect(o.baseURL).toBe('http://127.0.0.1:9/v1') // trailing slash dropped
  })

  it('reads TOGETHER_BEARER_TOKEN (the original name) from .env; TOGETHER_API_KEY wins over it', async () => {
    await dotEnv('TOGETHER_BEARER_TOKEN=sk-test-bearer\n')
    expect(resolveWith({}).apiKey).toBe('sk-test-bearer')
    await dotEnv('TOGETHER_BEARER_TOKEN=sk-test-bearer\nTOGETHER_API_KEY=sk-test-api-key\n')
    expect(resolveWith({}).apiKey).toBe('sk-test-api-key')
    expect(resolveWith({ TOGETHER_BEARER_TOKEN: 'sk-test-env-bearer', TOGETHER_API_KEY: 'sk-test-env-key' }).apiKey).toBe('sk-test-env-key')
  })

  it('accepts quotes, comments, export and CRLF in .env', async () => {
    await dotEnv('# comment\r\nexport TOGETHER_API_KEY="sk-test-quoted"  # trailing\r\nTOGETHER_BASE_URL=\'http://127.0.0.1:9/v1\'\r\n')
    expect(resolveWith({})).toMatchObject({ apiKey: 'sk-test-quoted', baseURL: 'http://127.0.0.1:9/v1' })
  })

  it('real environment variables win over .env; empty ones do not count', async () => {
    await dotEnv('TOGETHER_API_KEY=sk-test-from-dotenv\nTOGETHER_BASE_URL=http://127.0.0.1:9/v1\n')
    expect(resolveWith({ TOGETHER_API_KEY: 'sk-test-from-env', TOGETHER_BASE_URL: 'http://127.0.0.1:10/v1' })).toMatchObject({
      apiKey: 'sk-test-from-env',
      baseURL: 'http://127.0.0.1:10/v1',
    })
    expect(resolveWith({ TOGETHER_API_KEY: '', TOGETHER_BASE_URL: '' })).toMatchObject({ apiKey: 'sk-test-from-dotenv', baseURL: 'http://127.0.0.1:9/v1' })
  })

  it('a key in the real environment under either name wins over a key in .env under either name', async () => {
    await dotEnv('TOGETHER_API_KEY=sk-test-from-dotenv\n')
    expect(resolveWith({ TOGETHER_BEARER_TOKEN: 'sk-test-bearer-from-env' }).apiKey).toBe('sk-test-bearer-from-env')
    await dotEnv('TOGETHER_BEARER_TOKEN=sk-test-bearer-from-dotenv\n')
    expect(resolveWith({ TOGETHER_API_KEY: 'sk-test-from-env' }).apiKey).toBe('sk-test-from-env')
    expect(resolveWith({}).apiKey).toBe('sk-test-bearer-from-dotenv')
  })

  it('options win over both', async () => {
    await dotEnv('TOGETHER_API_KEY=sk-test-from-dotenv\nTOGETHER_BASE_URL=http://127.0.0.1:9/v1\n')
    const o = resolveWith({ TOGETHER_API_KEY: 'sk-test-from-env', TOGETHER_BASE_URL: 'http://127.0.0.1:10/v1' }, { apiKey: 'sk-test-option', baseURL: 'http://127.0.0.1:11/v1' })
    expect(o).toMatchObject({ apiKey: 'sk-test-option', baseURL: 'http://127.0.0.1:11/v1' })
  })

  it('reads only those three names, and never writes process.env', async () => {
    await dotEnv('TOGETHER_API_KEY=sk-test-from-dotenv\nNODE_OPTIONS=--require=/evil.js\nTOGETHER_OTHER=x\n')
    const before = { ...process.env }
    expect(resolveWith({}).apiKey).toBe('sk-test-from-dotenv')
    expect(process.env).toEqual(before)
  })

  it('reads the .env of the root it was given, not of the working directory; a missing or unreadable one is no error', async () => {
    await mkdir(join(root, 'sub'))
    await dotEnv('TOGETHER_API_KEY=sk-test-parent\n')
    expect(resolveOptions({}, join(root, 'sub'), { env: {} }).apiKey).toBeUndefined()
    await mkdir(join(root, 'sub', '.env'))
    expect(() => resolveOptions({}, join(root, 'sub'), { env: {} })).not.toThrow()
  })

  it('no key anywhere is undefined (placeholders later), not an error', () => {
    expect(resolveWith({}).apiKey).toBeUndefined()
    expect(resolveWith({}, { apiKey: '' }).apiKey).toBeUndefined()
  })
})

describe('invalid options', () => {
  const BAD: Array<[FluxAssetsOptions, RegExp]> = [
    [{ width: 100 }, /^flux-assets option "width" must be a multiple of 8 from 8 to 4096, got 100$/],
    [{ height: 0 }, /^flux-assets option "height" must be a multiple of 8 from 8 to 4096, got 0$/],
    [{ width: 1024.5 }, /"width" must be a multiple of 8/],
    [{ steps: 0 }, /^flux-assets option "steps" must be an integer from 1 to 100, got 0$/],
    [{ seed: -1 }, /"seed" must be an integer from 0/],
    [{ concurrency: 0 }, /^flux-assets option "concurrency" must be an integer from 1 to 64, got 0$/],
    [{ concurrency: Number.NaN }, /"concurrency" must be an integer from 1 to 64, got NaN/],
    [{ retries: -1 }, /"retries" must be an integer from 0 to 20, got -1/],
    [{ timeout: 0 }, /"timeout" must be an integer from 1/],
    [{ maxNewImages: -5 }, /"maxNewImages" must be an integer from 0/],
    [{ maxImageBytes: 0 }, /"maxImageBytes" must be an integer from 1/],
    [{ responseFormat: 'xml' as 'url' }, /^flux-assets option "responseFormat" must be one of base64, url, got "xml"$/],
    [{ outputFormat: 'gif' as 'png' }, /^flux-assets option "outputFormat" must be one of jpeg, png, got "gif"$/],
    [{ model: '  ' }, /^flux-assets option "model" must be a non-empty string$/],
    [{ baseURL: 'ftp://example.com/v1' }, /^flux-assets option "baseURL" must be an http\(s\) URL, got "ftp:\/\/example.com\/v1"$/],
    [{ width: '512' as unknown as number }, /"width" must be a multiple of 8 from 8 to 4096, got "512"/],
  ]

  it.each(BAD)('%o → a FluxError naming the option and the value', (user, message) => {
    let error: unknown
    try {
      resolveWith({}, user)
    } catch (e) {
      error = e
    }
    expect(error).toBeInstanceOf(FluxError)
    expect((error as FluxError).code).toBe('FLUX_BAD_OPTION')
    expect((error as FluxError).message).toMatch(message)
  })

  it('a bad TOGETHER_BASE_URL in the environment is reported the same way', async () => {
    expect(() => resolveWith({ TOGETHER_BASE_URL: 'api.together.xyz/v1' })).toThrow(/"baseURL" must be an http\(s\) URL, got "api.together.xyz\/v1"/)
    await dotEnv('TOGETHER_BASE_URL=localhost:8080\n')
    expect(() => resolveWith({})).toThrow(/"baseURL" must be an http\(s\) URL, got "localhost:8080"/)
  })

  it('accepts the edges of each range', () => {
    expect(() => resolveWith({}, { width: 8, height: 4096, steps: 100, concurrency: 64, retries: 0, maxNewImages: 0, seed: 0, timeout: 1 })).not.toThrow()
  })
})
