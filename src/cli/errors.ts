/** Errors the CLI reports as one line with exit code 2 (bad usage). */

/** Bad command-line usage: a missing argument, a wrong value. */
export class UsageError extends Error {
  override name = "UsageError";
}
