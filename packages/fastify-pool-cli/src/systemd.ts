// Tell systemd (Type=notify) about the process that serves, through the
// systemd-notify command: Node has no unix datagram sockets to write to
// $NOTIFY_SOCKET. A successor sends MAINPID=<its pid> and READY=1, so
// systemd follows the process that serves (the unit needs NotifyAccess=all).
// Nothing without NOTIFY_SOCKET.
import { spawn } from 'node:child_process'

export function notifySystemd (fields: Record<string, string | number>, warn: (fields: object, message: string) => void): void {
  if (process.env.NOTIFY_SOCKET === undefined) return
  const args = Object.entries(fields).map(([k, v]) => `${k}=${v}`)
  const child = spawn('systemd-notify', args, { stdio: 'ignore' })
  child.once('error', (err) => warn({ err }, 'could not run systemd-notify: systemd is not told about this process'))
  child.unref()
}
