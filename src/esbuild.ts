import { createEsbuildPlugin } from 'unplugin'
import { unpluginFactory } from './core/plugin'

export default createEsbuildPlugin(unpluginFactory)
