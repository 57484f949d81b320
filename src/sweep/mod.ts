/**
 * Sweeps: many runs (configs × seeds) as one Slurm job array, or as local subprocesses,
 * with their task list in `<dir>/sweep.json`, a status view and the `analyse` table over
 * their logs. The CLI is `mod.ts sweep` (src/cli/sweep.ts).
 * @module
 */
export { expandTasks, parseSeeds, type SweepTask, type TaskSpec } from "./tasks.ts";
export {
  arraySpec,
  batchScript,
  type BatchScriptInput,
  checkSlurmOptions,
  parseScontrolJobs,
  shellQuote,
  type SlurmOptions,
  timeLimitSeconds,
} from "./slurm.ts";
export {
  type LocalSession,
  manifestPath,
  readManifest,
  requireManifest,
  type SlurmJob,
  type SweepManifest,
  writeManifest,
} from "./manifest.ts";
export { type LocalRunOptions, type LocalRunResult, runLocal } from "./local.ts";
export {
  formatStatus,
  formatTotals,
  outcomeTotals,
  sweepStatus,
  type TaskOutcome,
  type TaskStatus,
} from "./status.ts";
export { summarizeTaskOutput, type TaskOutputSummary } from "./task_output.ts";
