// The command's own error codes, beside the library's (fastify-pool's
// errors.ts): what an error line of `--json` carries in `code`, and what a
// script matches on. docs/errors.md documents each; test/errors.test.ts
// holds the command's sources, this table and that page together.

/** Each code of the command, and when it is given. */
export const COMMAND_CODES = Object.freeze({
  FST_POOL_USAGE: 'the command was called wrongly (exit 2)',
  FST_POOL_REFUSED: 'the running pool refused or failed the request (exit 1)',
  FST_POOL_NOT_RUNNING: 'no pool answers where the file says (exit 3)',
  FST_POOL_UNAUTHORIZED: 'the control API refused the token (exit 4)',
  FST_POOL_NO_MATCH: 'no listener matches the name or glob (exit 5)',
  FST_POOL_WORKERS: 'a listener the workers cannot share (a unix socket): nothing started (exit 1)',
  FST_POOL_UNEXPECTED: 'an error the command did not expect: a bug to report (exit 1)'
})

export type CommandCode = keyof typeof COMMAND_CODES
