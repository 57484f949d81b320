/** Errors the CLI reports as one line with exit code 2 (bad usage) or 1. */

/** Bad command-line usage: a missing argument, a wrong value. */
export class UsageError extends Error {
  override name = "UsageError";
}

/** A feature that is not built yet: says so instead of pretending. */
export class NotImplementedError extends Error {
  override name = "NotImplementedError";
  constructor(feature: string, issue: number) {
    super(`${feature} is not implemented yet (tracked in issue ${issue})`);
  }
}
