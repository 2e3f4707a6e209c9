// Every test file: each test starts with no catalog kept. The catalog is kept per process by base URL + key, and a
// test's fake listens on a port the system picks: a port an earlier test's fake had (seen in CI: generate.test.ts's
// "a model the API does not serve", its catalog meant to answer 503) would be answered from that test's list.
import { beforeEach } from 'vitest'
import { clearCatalogCache } from '../src/core/providers/catalog'

beforeEach(() => clearCatalogCache())
