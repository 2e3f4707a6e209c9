import { createVitePlugin } from 'unplugin'
import { unpluginFactory } from './core/plugin'

export default createVitePlugin(unpluginFactory)
