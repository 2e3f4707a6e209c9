import { createRolldownPlugin } from 'unplugin'
import { unpluginFactory } from './core/plugin'

export default createRolldownPlugin(unpluginFactory)
