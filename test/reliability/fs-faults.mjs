// Preloaded into a child process (`NODE_OPTIONS=--import <this file>`) to make one folder behave like a full or a
// read-only disk, without root or a real small file system: the tests run as root in CI containers, where chmod
// stops nothing. FLUX_FS_FAULT=<code>:<folder>: every write under <folder> fails with <code> (ENOSPC, EDQUOT: file
// writes; EROFS, EACCES: also mkdir of a new folder, rename, rm, unlink and utimes). Reads are untouched.
import { existsSync } from 'node:fs'
import fsp from 'node:fs/promises'
import { syncBuiltinESMExports } from 'node:module'
import { resolve } from 'node:path'

const [code, folder] = (process.env.FLUX_FS_FAULT ?? '').split(/:(.*)/s)
if (code && folder) {
  const dir = resolve(folder)
  /** @type {Record<string, (...args: any[]) => Promise<unknown>>} */
  const fs = /** @type {any} */ (fsp)
  /** @param {unknown} path */
  const under = path => resolve(String(path)).startsWith(dir)
  /** @param {string} op @param {unknown} path */
  const fail = (op, path) => Object.assign(new Error(`${code}: simulated by fs-faults.mjs, ${op} '${path}'`), { code, syscall: op, path: String(path) })
  const readOnly = code === 'EROFS' || code === 'EACCES'
  /** @param {unknown} flags */
  const writing = flags => (typeof flags === 'number' ? (flags & 3) !== 0 : /[wa+]/.test(String(flags ?? 'r')))

  /** @param {string} name @param {(path: string, ...args: any[]) => boolean} when */
  const wrap = (name, when) => {
    const original = fs[name]
    fs[name] = async (/** @type {string} */ path, /** @type {any[]} */ ...args) => {
      if (under(path) && when(path, ...args)) throw fail(name, path)
      return /** @type {Function} */ (original)(path, ...args)
    }
  }
  wrap('open', (_path, flags) => writing(flags))
  wrap('writeFile', () => true)
  wrap('appendFile', () => true)
  if (readOnly) {
    wrap('mkdir', path => !existsSync(path))
    wrap('rename', () => true)
    wrap('rm', path => existsSync(path))
    wrap('unlink', () => true)
    wrap('utimes', () => true)
  }
  syncBuiltinESMExports()
}
