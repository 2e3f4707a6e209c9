#!/usr/bin/env node
import { main } from './core/cli'

main(process.argv.slice(2)).then(code => {
  process.exitCode = code
})
