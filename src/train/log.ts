/**
 * The experiment log: the ETH fields (`experiment`, `config`,
 * `average_training_loss_per_epoch`, `model_scores`) plus ours, written
 * atomically after every epoch.
 */
import * as ort from "onnxruntime-node";
import type { LoadedConfig } from "../config/mod.ts";
import type { SessionOptions } from "../runtime/session.ts";
import type { DataProvenance } from "./experiment_data.ts";
import { writeTextAtomic } from "../util/atomic.ts";
import type { EpochRecord, EvaluationRecord, RunProgress } from "./run_state.ts";

/** The JSON log of a run. */
export interface ExperimentLog {
  experiment: string;
  /** ETH configs: the original dict verbatim; ours: the resolved config. */
  config: Record<string, unknown>;
  average_training_loss_per_epoch: number[];
  /** Test accuracy of each evaluation, as a fraction. */
  model_scores: number[];
  status: string;
  config_format: "ours" | "eth";
  resolved_config: Record<string, unknown>;
  overrides: string[];
  mu_per_epoch: (number | null)[];
  lr_per_epoch: number[];
  views_per_second_per_epoch: number[];
  seconds_per_epoch: number[];
  wall_time_seconds: number;
  epochs: EpochRecord[];
  evaluations: EvaluationRecord[];
  /** The same evaluation of the encoder at its random initialization (epoch -1), if asked for. */
  random_init_evaluation: EvaluationRecord | null;
  /**
   * Which data the run saw: SHA-256 of the data files and fingerprints of the decoded sets
   * (so that the JPEG-rebuilt CIFAR-10 is never taken for the official archive).
   */
  data: DataProvenance | null;
  environment: Record<string, unknown>;
}

/** Assembles the log of a run's progress. */
export function buildExperimentLog(
  loaded: LoadedConfig,
  progress: RunProgress,
  status: string,
  wallSeconds: number,
  session: SessionOptions,
  data: DataProvenance | null = null,
): ExperimentLog {
  const history = progress.history;
  return {
    experiment: loaded.config.experiment,
    config: loaded.eth ?? (loaded.config as unknown as Record<string, unknown>),
    average_training_loss_per_epoch: history.map((e) => e.loss),
    model_scores: progress.evaluations.map((e) => e.accuracy),
    status,
    config_format: loaded.format,
    resolved_config: loaded.config as unknown as Record<string, unknown>,
    overrides: loaded.overrides,
    mu_per_epoch: history.map((e) => e.mu),
    lr_per_epoch: history.map((e) => e.lr),
    views_per_second_per_epoch: history.map((e) => e.viewsPerSecond),
    seconds_per_epoch: history.map((e) => e.seconds),
    wall_time_seconds: wallSeconds,
    epochs: history,
    evaluations: progress.evaluations,
    random_init_evaluation: progress.randomInitEvaluation ?? null,
    data,
    environment: {
      deno: Deno.version.deno,
      onnxruntime: ort.env.versions?.common ?? "unknown",
      os: `${Deno.build.os}-${Deno.build.arch}`,
      cpus: navigator.hardwareConcurrency,
      device: session.device ?? "cpu",
      threads: session.threads ?? 0,
    },
  };
}

/** Writes the log atomically (a reader never sees a half-written file). */
export async function writeExperimentLog(path: string, log: ExperimentLog): Promise<void> {
  await writeTextAtomic(path, JSON.stringify(log, null, 2) + "\n");
}
