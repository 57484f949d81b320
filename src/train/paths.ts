/** Where a run writes, and the identity of its config. */
import { createHash } from "node:crypto";
import { join } from "node:path";
import type { ExperimentConfig, LoadedConfig } from "../config/mod.ts";

/** Files of one run. */
export interface RunPaths {
  /** `experiment_logs/<experiment>.json` (the ETH log name). */
  log: string;
  /** `experiment_logs/<experiment>.html`. */
  report: string;
  /** `checkpoints/<experiment>/last.safetensors`. */
  checkpoint: string;
}

/** The paths of a config's run (folders are created). */
export function runPaths(config: ExperimentConfig): RunPaths {
  const logDir = config.output.log_dir;
  const checkpointDir = join(config.output.checkpoint_dir, config.experiment);
  Deno.mkdirSync(logDir, { recursive: true });
  Deno.mkdirSync(checkpointDir, { recursive: true });
  return {
    log: join(logDir, `${config.experiment}.json`),
    report: join(logDir, `${config.experiment}.html`),
    checkpoint: join(checkpointDir, "last.safetensors"),
  };
}

/** Keys that may change between a run and its resumption without changing the result. */
const VOLATILE_KEYS = new Set(["device"]);

/** A hash of everything in the config that shapes the result (device excluded). */
export function configHash(loaded: LoadedConfig): string {
  const relevant = Object.fromEntries(
    Object.entries(loaded.config).filter(([key]) => !VOLATILE_KEYS.has(key)),
  );
  return createHash("sha256").update(JSON.stringify(relevant)).digest("hex").slice(0, 16);
}
