// prepack of each package: ship the documentation its README links to
// (docs/*.md, linked as docs/<file>.md from inside the package), so that the
// links resolve where the package is installed. The copy is not committed.
import { cpSync, rmSync } from 'node:fs'
import { join } from 'node:path'

const from = new URL('../docs/', import.meta.url)
const to = join(process.cwd(), 'docs')
rmSync(to, { recursive: true, force: true })
cpSync(from, to, { recursive: true })
