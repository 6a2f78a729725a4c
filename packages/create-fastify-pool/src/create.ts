// Scaffolding a project from the starter template: copy it, give the package
// the project's name and versions, and point pool.yaml at the installed schema.
import { existsSync, readFileSync } from 'node:fs'
import { copyFile, mkdir, readdir, readFile, writeFile } from 'node:fs/promises'
import { basename, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

export interface CreateOptions {
  /** Folder to create the project in; it must not exist or be empty. */
  target: string
  /** Package name (default: the folder's name, made a valid npm name). */
  name?: string
  /** Start from the TypeScript variant of the starter (default false). */
  typescript?: boolean
  /** Template folder (default: the one shipped with this package, or examples/starter in a source checkout; with `typescript`, template-ts or examples/starter-ts). */
  template?: string
}

export interface CreateResult {
  target: string
  name: string
  /** Files written, relative to target. */
  files: string[]
}

/** Thrown when the target folder holds files: nothing is overwritten. */
export class TargetNotEmptyError extends Error {
  readonly code = 'CREATE_FASTIFY_POOL_NOT_EMPTY'
}

const OWN = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }

// npm leaves .gitignore out of published packages, so the shipped template
// stores it as _gitignore; package.json is stored as _package.json so that the
// template is not a package of this workspace.
const RENAMES: Record<string, string> = { '_package.json': 'package.json', _gitignore: '.gitignore' }
// Things a run of the template leaves behind, never copied.
const SKIP = new Set(['node_modules', 'certs', 'package.json'])

export function defaultTemplate (typescript = false): string {
  const shipped = fileURLToPath(new URL(typescript ? '../template-ts' : '../template', import.meta.url))
  if (existsSync(shipped)) return shipped
  return fileURLToPath(new URL(typescript ? '../../../examples/starter-ts' : '../../../examples/starter', import.meta.url))
}

/** A valid npm package name from a folder name. */
export function packageName (folder: string): string {
  const name = folder.toLowerCase().replace(/[^a-z0-9._~-]+/g, '-').replace(/^[._-]+|[-]+$/g, '')
  return name === '' ? 'fastify-pool-app' : name.slice(0, 214)
}

export async function createProject (options: CreateOptions): Promise<CreateResult> {
  const target = resolve(options.target)
  const template = options.template ?? defaultTemplate(options.typescript ?? false)
  const name = options.name ?? packageName(basename(target))
  if (existsSync(target)) {
    const entries = await readdir(target)
    if (entries.length > 0) {
      throw new TargetNotEmptyError(`${target} is not empty (${entries.slice(0, 3).join(', ')}${entries.length > 3 ? ', ...' : ''}); choose a new or empty folder`)
    }
  }
  const files: string[] = []
  const copy = async (from: string, to: string): Promise<void> => {
    await mkdir(to, { recursive: true })
    for (const entry of await readdir(from, { withFileTypes: true })) {
      if (SKIP.has(entry.name)) continue
      const source = join(from, entry.name)
      const dest = join(to, RENAMES[entry.name] ?? entry.name)
      if (entry.isDirectory()) await copy(source, dest)
      else if (entry.isFile()) {
        await copyFile(source, dest)
        files.push(relative(target, dest))
      }
    }
  }
  await copy(template, target)

  const pkgFile = join(target, 'package.json')
  const pkg = JSON.parse(await readFile(pkgFile, 'utf8')) as { name: string, dependencies?: Record<string, string> }
  pkg.name = name
  // The packages are released together: a project gets the versions it was made with.
  for (const dep of ['fastify-pool', 'fastify-pool-cli']) {
    if (pkg.dependencies?.[dep] !== undefined) pkg.dependencies[dep] = `^${OWN.version}`
  }
  await writeFile(pkgFile, `${JSON.stringify(pkg, null, 2)}\n`)

  const poolFile = join(target, 'pool.yaml')
  if (existsSync(poolFile)) {
    const yaml = await readFile(poolFile, 'utf8')
    await writeFile(poolFile, yaml.replace(/^(# yaml-language-server: \$schema=).*$/m, '$1./node_modules/fastify-pool-cli/schema/pool.schema.json'))
  }
  return { target, name, files: files.sort() }
}
