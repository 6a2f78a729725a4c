export { loadConfigFile, formatIssue, displayPath, CONFIG_EXTENSIONS, type FileIssue, type FilePoolOptions, type LoadedConfig, type LoadOptions } from './config-file.ts'
export { createPoolFromFile, type FilePool, type PoolFromFileOptions } from './pool-from-file.ts'
export { interpolate, type Env } from './interpolate.ts'
export { withPool } from './with-pool.ts'
