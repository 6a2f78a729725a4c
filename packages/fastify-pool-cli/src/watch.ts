// `fastify-pool start --watch`: a change to the pool file or to a handler
// module reloads the pool, which restarts on their sockets the listeners
// whose module changed (a reload re-imports a module whose file changed). A
// file that does not load (a syntax error, say) is refused by the reload and
// the previous code keeps serving. For development.
import { watch, type FSWatcher } from 'node:fs'
import { basename, dirname } from 'node:path'

/** How long a burst of events (an editor writes, renames, touches) is waited out. */
const SETTLE_MS = 100

/**
 * Watch the folders of `files()` and call `changed` once per burst of changes
 * to one of them; the list is read again after each call (a reload may name
 * new modules). Returns the function that stops watching.
 */
export function watchFiles (files: () => string[], changed: (file: string) => void): () => void {
  const watchers = new Map<string, FSWatcher>()
  let wanted = new Set<string>()
  let timer: NodeJS.Timeout | undefined
  let last = ''
  const fire = (): void => {
    timer = undefined
    changed(last)
    refresh()
  }
  const refresh = (): void => {
    wanted = new Set(files())
    const folders = new Set([...wanted].map(f => dirname(f)))
    for (const [folder, w] of watchers) if (!folders.has(folder)) { w.close(); watchers.delete(folder) }
    for (const folder of folders) {
      if (watchers.has(folder)) continue
      // The folder, not the file: editors save by writing a new file and renaming it over the old.
      const w = watch(folder, { persistent: false }, (_event, name) => {
        const file = name === null ? undefined : [...wanted].find(f => dirname(f) === folder && basename(f) === name.toString())
        if (file === undefined) return
        last = file
        clearTimeout(timer)
        timer = setTimeout(fire, SETTLE_MS)
        timer.unref()
      })
      w.on('error', () => { w.close(); watchers.delete(folder) })
      watchers.set(folder, w)
    }
  }
  refresh()
  return () => {
    clearTimeout(timer)
    for (const w of watchers.values()) w.close()
    watchers.clear()
  }
}
