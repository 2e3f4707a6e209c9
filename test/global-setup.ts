// Scratch folders of every test live under test/.tmp: whatever a test (or a killed child process) left there is
// removed once the whole run is over.
import { rm } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'

const TMP = fileURLToPath(new URL('./.tmp', import.meta.url))

export async function teardown(): Promise<void> {
  await rm(TMP, { recursive: true, force: true, maxRetries: 3 })
}
