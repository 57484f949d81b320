/**
 * The tasks of a sweep: every config (files, folders, globs, as `run` takes them) × every
 * seed, each a `run <config> --resume ...` command whose log and checkpoint live in the
 * sweep folder. Every task's config is loaded and validated, and two tasks that would write
 * the same log are refused, before anything runs.
 */
import { isAbsolute, join, resolve } from "node:path";
import { loadConfig } from "../config/mod.ts";
import { checkDistinctLogs, CONFIG_FILES } from "../cli/config_files.ts";
import { UsageError } from "../cli/errors.ts";
import { runPaths } from "../train/paths.ts";
import { findFiles } from "../util/find_files.ts";

/** One run of a sweep. */
export interface SweepTask {
  /** Position in the sweep (the Slurm array index). */
  index: number;
  /** The config file, absolute. */
  config: string;
  experiment: string;
  seed: number;
  /** Epochs the run trains (after overrides). */
  epochs: number;
  /** Arguments after `mod.ts`: `run <config> --resume --set ...`; the engine adds `--threads`. */
  args: string[];
  /** The run's JSON log, HTML report and checkpoint. */
  log: string;
  report: string;
  checkpoint: string;
  /** Where the engine appends the task's stdout and stderr (every attempt). */
  output: string;
}

/** What the tasks are made of. */
export interface TaskSpec {
  /** Config files, folders or globs, as `run` takes them. */
  inputs: readonly string[];
  /** Seeds to run each config with; null: each config's own seed. */
  seeds: number[] | null;
  /** `--set key=value` items, in order, applied after the sweep's own (seed, output folders). */
  set: readonly string[];
  epochs?: number;
  dataDir?: string;
  device?: string;
  /** The sweep folder, absolute. */
  out: string;
  /** Folder of the task output files, relative to `out` (`slurm` or `local`). */
  outputFolder: string;
}

/** Parses `--seeds 0,1,2`. */
export function parseSeeds(text: string): number[] {
  const seeds = text.split(",").map((s) => s.trim());
  if (seeds.some((s) => !/^\d+$/.test(s))) {
    throw new UsageError(`--seeds ${text}: expected non-negative integers separated by commas`);
  }
  const values = seeds.map(Number);
  if (new Set(values).size !== values.length) {
    throw new UsageError(`--seeds ${text}: a seed is listed twice`);
  }
  return values;
}

/**
 * Expands configs × seeds into tasks. Each task's config is loaded with the sweep's
 * overrides (errors name the file and key); clashing log paths are refused.
 */
export async function expandTasks(spec: TaskSpec): Promise<SweepTask[]> {
  const files = (await findFiles(spec.inputs, CONFIG_FILES)).map((f) => resolve(f));
  const seeds: (number | null)[] = spec.seeds ?? [null];
  const tasks: SweepTask[] = [];
  const loaded = [];
  for (const config of files) {
    for (const seed of seeds) {
      const logs = seed === null ? join(spec.out, "logs") : join(spec.out, "logs", `seed${seed}`);
      const checkpoints = seed === null
        ? join(spec.out, "checkpoints")
        : join(spec.out, "checkpoints", `seed${seed}`);
      const set = [
        ...(seed === null ? [] : [`seed=${seed}`]),
        `output.log_dir=${logs}`,
        `output.checkpoint_dir=${checkpoints}`,
        ...spec.set,
      ];
      const config_ = await loadConfig(config, {
        set,
        epochs: spec.epochs,
        dataDir: spec.dataDir,
        device: spec.device,
      });
      const label = seed === null ? config : `${config} (seed ${seed})`;
      loaded.push({ config: config_.config, source: label });
      const paths = runPaths(config_.config);
      const index = tasks.length;
      tasks.push({
        index,
        config,
        experiment: config_.config.experiment,
        seed: config_.config.seed,
        epochs: config_.config.train.epochs,
        args: [
          "run",
          config,
          "--resume",
          ...set.flatMap((item) => ["--set", item]),
          ...(spec.epochs !== undefined ? ["--epochs", String(spec.epochs)] : []),
          ...(spec.dataDir !== undefined ? ["--data-dir", spec.dataDir] : []),
          ...(spec.device !== undefined ? ["--device", spec.device] : []),
        ],
        log: absolute(paths.log),
        report: absolute(paths.report),
        checkpoint: absolute(paths.checkpoint),
        output: join(spec.out, spec.outputFolder, `task-${index}.out`),
      });
    }
  }
  checkDistinctLogs(loaded);
  return tasks;
}

function absolute(path: string): string {
  return isAbsolute(path) ? path : resolve(path);
}
