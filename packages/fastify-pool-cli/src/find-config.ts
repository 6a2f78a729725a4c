// Which configuration file a command reads when -c is not given.
import { existsSync } from 'node:fs'
import { resolve } from 'node:path'

export const DEFAULT_NAMES = ['pool.yaml', 'pool.yml', 'pool.json', 'pool.mjs', 'pool.js'] as const

/** The file named by -c, else the first default name present in cwd (else pool.yaml, which will be reported missing). */
export function findConfigFile (given: string | undefined, cwd = process.cwd()): string {
  if (given !== undefined) return resolve(cwd, given)
  for (const name of DEFAULT_NAMES) {
    const file = resolve(cwd, name)
    if (existsSync(file)) return file
  }
  return resolve(cwd, DEFAULT_NAMES[0])
}
