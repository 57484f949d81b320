/**
 * The experiment log: the ETH fields (`experiment`, `config`,
 * `average_training_loss_per_epoch`, `model_scores`) plus ours, written
 * atomically after every epoch.
 */
import * as ort from "onnxruntime-node";
import { ethEffectiveConfig, type LoadedConfig } from "../config/mod.ts";
import type { SessionOptions } from "../runtime/session.ts";
import { resolveThreads } from "../runtime/threads.ts";
import type { DataProvenance } from "./experiment_data.ts";
import { writeTextAtomic } from "../util/atomic.ts";
import type { EpochRecord, EvaluationRecord, RunProgress } from "./run_state.ts";

/** The JSON log of a run. */
export interface ExperimentLog {
  experiment: string;
  /**
   * ETH configs: the original dict, with the values the run ran with where overrides changed an
   * ETH key (e.g. `pretraining.max_epochs` after `--epochs`); ours: the resolved config.
   */
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
  /** What the run said once at its start about how it reads its data (e.g. a dropped last image). */
  notes: string[];
  /** Images of each data set the run read (null: not read). */
  data_counts: DataCounts | null;
  /**
   * Which data the run saw: SHA-256 of the data files and fingerprints of the decoded sets
   * (so that the JPEG-rebuilt CIFAR-10 is never taken for the official archive).
   */
  data: DataProvenance | null;
  environment: Record<string, unknown>;
  /** Status `interrupted`: what stopped the run (a signal, or the tests' step limit). */
  interrupted_by?: "SIGINT" | "SIGTERM" | "stop_after_steps";
}

/** Images per data set of a run. */
export interface DataCounts {
  pretrain: number;
  train: number | null;
  val: number | null;
  few_shot: number | null;
  test: number | null;
}

/** What a run knows beyond its progress: its notes and data counts. */
export interface LogExtras {
  notes?: readonly string[];
  dataCounts?: DataCounts;
  /** Which data the run saw (checksums and fingerprints). */
  data?: DataProvenance;
}

/** Assembles the log of a run's progress. */
export function buildExperimentLog(
  loaded: LoadedConfig,
  progress: RunProgress,
  status: string,
  wallSeconds: number,
  session: SessionOptions,
  extras: LogExtras = {},
): ExperimentLog {
  const history = progress.history;
  return {
    experiment: loaded.config.experiment,
    config: loaded.eth
      ? ethEffectiveConfig(loaded.eth, loaded.config)
      : (loaded.config as unknown as Record<string, unknown>),
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
    notes: [...(extras.notes ?? [])],
    data_counts: extras.dataCounts ?? null,
    data: extras.data ?? null,
    environment: {
      deno: Deno.version.deno,
      onnxruntime: ort.env.versions?.common ?? "unknown",
      os: `${Deno.build.os}-${Deno.build.arch}`,
      cpus: navigator.hardwareConcurrency,
      device: session.device ?? "cpu",
      threads: resolveThreads(session.threads, session.device),
    },
  };
}

/** Writes the log atomically (a reader never sees a half-written file). */
export async function writeExperimentLog(path: string, log: ExperimentLog): Promise<void> {
  await writeTextAtomic(path, JSON.stringify(log, null, 2) + "\n");
}
