// In your own app, add "unplugin-flux-assets/client" to compilerOptions.types instead. The playground lives inside
// the package itself, and TypeScript looks a `types` entry up in node_modules only; an import does resolve the
// package's own name (through its `exports`), so the same declarations are pulled in this way.
import 'unplugin-flux-assets/client'
