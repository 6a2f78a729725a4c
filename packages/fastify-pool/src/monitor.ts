// `fastify-pool/monitor`: health checks of every listener and the automatic
// restart of one whose checks keep failing (docs/health.md), using only the
// listeners' public API. A pool runs them through `pool.monitor()` and
// `pool.startMonitor()`; `new PoolMonitor(() => [...pool])` checks any set
// of listeners.
export { PoolMonitor, MONITOR_DEFAULTS, monitorIssues, monitorName, type MonitorStatus, type MonitorReport, type MonitorHistoryEntry, type MonitorOptions, type MonitorError, type PeriodicMonitorOptions, type VersionInfo } from './observability/monitor.ts'
export { AUTO_RESTART_DEFAULTS, type AutoRestartOptions, type AutoRestartStatus } from './observability/auto-restart.ts'
