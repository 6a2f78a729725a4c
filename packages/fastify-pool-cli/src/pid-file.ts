// --pid-file: the pid of the process that owns the service, for systemd's
// PIDFile= and for stop scripts (`kill -TERM $(cat pool.pid)`). It names
// one process: a single pool's, the primary's with --workers (never a
// worker's: a worker's end is the primary's to handle, not the service's),
// and after an upgrade the successor's, which writes its own. The process
// that wrote it removes it when it stops for good, unless it names another
// process by then (an upgrade's successor).
import { accessSync, constants, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { UsageError } from './usage-error.ts'

export class PidFile {
  readonly path: string

  /** Checks that the file can be written before anything starts: its folder exists and may be written to. */
  constructor (path: string) {
    const dir = dirname(resolve(path))
    try {
      accessSync(dir, constants.W_OK)
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      throw new UsageError(`start: --pid-file ${path}: ${code === 'ENOENT' ? `the folder ${dir} does not exist` : `cannot write in ${dir} (${code ?? 'error'})`}`)
    }
    this.path = path
  }

  /** Write this process's pid atomically (a reader sees the old pid or the new one, never half a file). */
  write (): void {
    const temporary = `${this.path}.${process.pid}.tmp`
    writeFileSync(temporary, `${process.pid}\n`)
    renameSync(temporary, this.path)
  }

  /** Remove the file if it still names this process (after an upgrade it names the successor). */
  remove (): void {
    try {
      if (readFileSync(this.path, 'utf8').trim() === String(process.pid)) rmSync(this.path, { force: true })
    } catch {
      // Gone already, or unreadable: there is nothing of this process's to remove.
    }
  }
}
