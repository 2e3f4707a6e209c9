// A lock is created with its holder in one step: a write that fails (full disk) or a process killed part-way leaves no
// lock, never an empty one that blocks the key for the stale window. The disk fills up under the holder's write here.
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { KeyLock } from '../../src/core/lock'
import { makeTemp, removeTemp } from './helpers'

const full = vi.hoisted(() => ({ on: false, noLinks: false, handles: false }))
vi.mock('node:fs/promises', async importOriginal => {
  const fs = await importOriginal<typeof import('node:fs/promises')>()
  const enospc = () => Promise.reject(Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' }))
  return {
    ...fs,
    // Creating a file works; writing bytes into it does not (the way a full disk fails).
    writeFile: (async (path, data, options) => {
      if (!full.on) return fs.writeFile(path, data, options)
      await fs.writeFile(path, '', options)
      return enospc()
    }) as typeof fs.writeFile,
    // A file system without hard links (FAT): link(2) fails with EPERM on Linux.
    link: (async (from, to) => (full.noLinks ? Promise.reject(Object.assign(new Error('EPERM: operation not permitted, link'), { code: 'EPERM' })) : fs.link(from, to))) as typeof fs.link,
    open: (async (...args: Parameters<typeof fs.open>) => {
      const handle = await fs.open(...args)
      if (full.on || full.handles) handle.writeFile = enospc
      return handle
    }) as typeof fs.open,
  }
})

let root: string | undefined
afterEach(async () => {
  full.on = full.noLinks = full.handles = false
  await removeTemp(root)
  root = undefined
})

describe('lock on a full disk', () => {
  it('a holder whose write fails leaves no lock behind, and says the disk is full', async () => {
    root = await makeTemp('lock-disk')
    const dir = join(root, 'locks')
    const locks = new KeyLock(dir)
    full.on = true
    await expect(locks.tryAcquire('f'.repeat(64))).rejects.toMatchObject({ code: 'FLUX_DISK' })
    full.on = false
    expect(await readdir(dir)).toEqual([])
    const release = await locks.tryAcquire('f'.repeat(64))
    expect(release).toBeDefined()
    await release!()
  })

  it('without hard links, the lock is created then written, and held against a second taker; a failed write removes it', async () => {
    root = await makeTemp('lock-nolinks')
    const dir = join(root, 'locks')
    const locks = new KeyLock(dir)
    full.noLinks = true
    const release = await locks.tryAcquire('a'.repeat(64))
    expect(release).toBeDefined()
    expect(JSON.parse(await readFile(join(dir, `${'a'.repeat(64)}.lock`), 'utf8'))).toMatchObject({ pid: process.pid })
    expect(await locks.tryAcquire('a'.repeat(64))).toBeUndefined()
    await release!()
    // The temp file is written; the lock's own write fails.
    full.handles = true
    await expect(locks.tryAcquire('b'.repeat(64))).rejects.toMatchObject({ code: 'FLUX_DISK' })
    expect(await readdir(dir)).toEqual([])
  })
})
