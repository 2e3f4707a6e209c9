import { createWebpackPlugin } from 'unplugin'
import { unpluginFactory } from './core/plugin'

export default createWebpackPlugin(unpluginFactory)
