// A mistake in how the command was called: main.ts prints it in one line and exits 2.
export class UsageError extends Error {}
