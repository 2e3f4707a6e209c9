import { createRollupPlugin } from 'unplugin'
import { unpluginFactory } from './core/plugin'

export default createRollupPlugin(unpluginFactory)
