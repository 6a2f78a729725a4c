// prepack: ship the starter as template/ and its TypeScript variant as
// template-ts/, with the files npm would drop or misread renamed (see RENAMES
// in src/create.ts).
import { cpSync, renameSync, rmSync, existsSync } from 'node:fs'

for (const [example, template] of [['starter', 'template'], ['starter-ts', 'template-ts']]) {
  const from = new URL(`../../../examples/${example}/`, import.meta.url)
  const to = new URL(`../${template}/`, import.meta.url)
  rmSync(to, { recursive: true, force: true })
  cpSync(from, to, { recursive: true, filter: (src) => !/[/\\](node_modules|certs)([/\\]|$)/.test(src) })
  if (existsSync(new URL('.gitignore', to))) renameSync(new URL('.gitignore', to), new URL('_gitignore', to))
}
