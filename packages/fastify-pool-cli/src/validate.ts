// `fastify-pool validate`: load the file as `start` would (handler modules
// included) and print every problem, or a one-line summary when all is well.
import { hasIssues } from 'fastify-pool'
import { displayPath, loadConfigFile, type FileIssue } from './config-file.ts'
import { writeProblems } from './output.ts'

export async function validate (file: string, json = false): Promise<number> {
  const shown = displayPath(file)
  try {
    const { options } = await loadConfigFile(file)
    const names = options.servers.map(s => s.name)
    process.stdout.write(json
      ? `${JSON.stringify({ level: 30, time: Date.now(), msg: `${shown}: valid`, file: shown, valid: true, listeners: names })}\n`
      : `${shown}: valid (${names.length} listener${names.length === 1 ? '' : 's'}: ${names.join(', ')})\n`)
    return 0
  } catch (err) {
    if (!hasIssues<FileIssue>(err)) throw err
    writeProblems(err.errors, shown)
    return 1
  }
}
