/**
 * Small shared utilities: the seeded generator, atomic file writes, the
 * progress bar.
 * @module
 */
export * from "./rng.ts";
export * from "./atomic.ts";
export * from "./progress.ts";
