import { createRspackPlugin } from 'unplugin'
import { unpluginFactory } from './core/plugin'

export default createRspackPlugin(unpluginFactory)
