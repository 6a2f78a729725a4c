// `fastify-pool validate`: load the file as `start` would (handler modules
// included) and print every problem, or a one-line summary when all is well.
import { hasIssues } from 'fastify-pool'
import { displayPath, formatIssue, loadConfigFile, type FileIssue } from './config-file.ts'

export async function validate (file: string): Promise<number> {
  const shown = displayPath(file)
  try {
    const { options } = await loadConfigFile(file)
    const n = options.servers.length
    process.stdout.write(`${shown}: valid (${n} listener${n === 1 ? '' : 's'}: ${options.servers.map(s => s.name).join(', ')})\n`)
    return 0
  } catch (err) {
    if (!hasIssues<FileIssue>(err)) throw err
    const issues = err.errors
    for (const issue of issues) process.stderr.write(`${formatIssue(issue, shown)}\n`)
    process.stderr.write(`${shown}: ${issues.length} problem${issues.length === 1 ? '' : 's'}\n`)
    return 1
  }
}
