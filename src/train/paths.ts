/** Where a run writes, and the identity of its config. */
import { createHash } from "node:crypto";
import { dirname, join } from "node:path";
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

/** The paths of a config's run (nothing is created: see {@link makeRunFolders}). */
export function runPaths(config: ExperimentConfig): RunPaths {
  return {
    log: join(config.output.log_dir, `${config.experiment}.json`),
    report: join(config.output.log_dir, `${config.experiment}.html`),
    checkpoint: join(config.output.checkpoint_dir, config.experiment, "last.safetensors"),
  };
}

/** Creates the folders of a run's files. */
export function makeRunFolders(paths: RunPaths): void {
  for (const file of [paths.log, paths.checkpoint]) {
    Deno.mkdirSync(dirname(file), { recursive: true });
  }
}

/** Keys that may change between a run and its resumption without changing the result. */
const VOLATILE_KEYS = new Set(["device", "runtime"]);

/**
 * A hash of everything in the config that shapes the result. Left out: the
 * device and the `runtime` section, `train.steps_per_run` (how steps are
 * grouped into ORT runs changes no bit), and the precision keys at float32 (so
 * checkpoints written before they existed still match their config).
 */
export function configHash(loaded: LoadedConfig): string {
  const relevant: Record<string, unknown> = Object.fromEntries(
    Object.entries(loaded.config).filter(([key]) => !VOLATILE_KEYS.has(key)),
  );
  const { steps_per_run: _grouping, ...train } = loaded.config.train;
  relevant.train = train.precision === "float32"
    ? Object.fromEntries(
      Object.entries(train).filter(([key]) => key !== "precision" && key !== "loss_scale"),
    )
    : train;
  return createHash("sha256").update(JSON.stringify(relevant)).digest("hex").slice(0, 16);
}
