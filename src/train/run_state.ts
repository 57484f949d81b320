/**
 * What a run carries across a crash: tensors (parameters, BN buffers,
 * optimizer state, SDCLR masks) and progress (epoch, step, history, μ state)
 * in one safetensors checkpoint, written atomically.
 */
import { loadCheckpoint, saveCheckpoint } from "../artifacts/checkpoint.ts";
import type { HostTensor } from "../runtime/host_tensor.ts";
import type { MuScheduleState } from "../schedules/mod.ts";
import type { ScoreMetric } from "../eval/evaluate.ts";

/** One finished epoch. */
export interface EpochRecord {
  epoch: number;
  loss: number;
  mu: number | null;
  lr: number;
  viewsPerSecond: number;
  seconds: number;
  /** Extra per-epoch diagnostics (SDCLR mask sparsity, loss shares...). */
  diagnostics?: Record<string, unknown>;
  /** float16 precisions: updates skipped because a gradient overflowed (loss scaling). */
  skippedUpdates?: number;
}

/** One evaluation of the encoder. */
export interface EvaluationRecord {
  /** The epoch (0-based) after which it ran; -1: before training, at random initialization. */
  epoch: number;
  /** Headline test accuracy in [0, 1] (the ETH `model_scores` entry). */
  accuracy: number;
  /** Which accuracy `accuracy` is (absent in logs of older versions: linear, else kNN). */
  metric?: ScoreMetric;
  details: Record<string, unknown>;
}

/** Progress of a run, saved with its tensors. */
export interface RunProgress {
  /** Epoch in progress (0-based); `stepInEpoch` steps of it are done. */
  epoch: number;
  stepInEpoch: number;
  /** Loss sum and step count of the epoch in progress. */
  epochLossSum: number;
  epochSteps: number;
  /** Per-class loss sums and anchor counts of the epoch in progress (rare-class loss share). */
  epochClassLoss: number[] | null;
  epochClassAnchors: number[] | null;
  /** μ and learning rate of the epoch's first step (what the log records for the epoch). */
  epochMu: number | null;
  epochLr: number;
  /** float16 precisions: updates of the epoch in progress skipped on a gradient overflow. */
  epochSkippedUpdates?: number;
  /** Optimizer updates done over the whole run. */
  globalStep: number;
  history: EpochRecord[];
  evaluations: EvaluationRecord[];
  /**
   * The encoder judged at its random initialization (`evaluation.random_init_baseline`),
   * with `epoch` -1; null when not asked for (absent in checkpoints of older versions).
   */
  randomInitEvaluation?: EvaluationRecord | null;
  mu: MuScheduleState | null;
  /** Hash of the config the run was started with; a resume with another config is refused. */
  configHash: string;
  /** Seconds spent in earlier sessions of this run. */
  elapsedSeconds: number;
}

const PROGRESS_KEY = "run_progress";

/** Saves tensors and progress atomically (temp file + rename). */
export async function saveRunCheckpoint(
  path: string,
  tensors: Map<string, HostTensor>,
  progress: RunProgress,
): Promise<void> {
  await saveCheckpoint(path, {
    tensors: Object.fromEntries(tensors),
    meta: { [PROGRESS_KEY]: progress },
  });
}

/** Loads a run checkpoint; the error names the file when it is missing or damaged. */
export async function loadRunCheckpoint(
  path: string,
): Promise<{ tensors: Map<string, HostTensor>; progress: RunProgress }> {
  const checkpoint = await loadCheckpoint(path);
  const progress = checkpoint.meta[PROGRESS_KEY] as RunProgress | undefined;
  if (!progress || typeof progress.epoch !== "number") {
    throw new Error(`${path}: not a run checkpoint (no ${PROGRESS_KEY} metadata)`);
  }
  return { tensors: new Map(Object.entries(checkpoint.tensors)), progress };
}
