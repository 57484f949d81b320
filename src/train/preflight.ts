/**
 * What the runner settles before the first step: the batch sizes the epoch will run (each gets its
 * static-shaped step graph up front), the notes a run states once about how it reads its data, and
 * a dry run of every evaluation protocol.
 */
import type { ExperimentConfig } from "../config/mod.ts";
import type { HostTensor } from "../runtime/host_tensor.ts";
import { evaluationEpochs, type Evaluator } from "./evaluate.ts";
import type { RunProgress } from "./run_state.ts";
import { batchCount } from "../data/loader.ts";
import { type ImageSource, isFullImageSet } from "../data/full_images.ts";
import { MIN_CONTRASTIVE_BATCH } from "../schedules/from_config.ts";

/** Size of the last, partial pretraining batch of an epoch, or null when every batch is full. */
export function lastBatchSize(count: number, batchSize: number, dropLast: boolean): number | null {
  const batches = batchCount(count, batchSize, dropLast, MIN_CONTRASTIVE_BATCH);
  const rest = count - (batches - 1) * batchSize;
  return batches > 0 && rest > 0 && rest < batchSize ? rest : null;
}

/**
 * The notes of a run (printed once at its start and kept in its log): a dropped single-image
 * batch, whole images shrunk to the configured bound.
 */
export function runNotes(config: ExperimentConfig, pretrain: ImageSource): string[] {
  const notes: string[] = [];
  const { batch_size: batch, drop_last: dropLast } = config.train;
  const rest = pretrain.count % batch;
  if (!dropLast && rest === 1) {
    notes.push(
      `train: ${pretrain.count} pretraining images in batches of ${batch} leave a last batch of one ` +
        "image, which a contrastive loss cannot use (it needs a negative); it is dropped each epoch, " +
        "a different image each time (set train.batch_size or drop_last to avoid it)",
    );
  }
  if (isFullImageSet(pretrain)) {
    notes.push(
      `data: pretraining crops from whole images kept with their longer side at most ${pretrain.maxSide} ` +
        `px (data.full_image_max_side; canvas ${pretrain.height}×${pretrain.width})`,
    );
  }
  return notes;
}

/**
 * Runs every configured evaluation protocol once on a few images (Evaluator.check) and prints its
 * one-line summary, unless the run evaluates nothing or the random-init evaluation is about to run
 * the protocols in full. Anything that would fail at the first evaluation fails here.
 */
export async function checkEvaluation(
  config: ExperimentConfig,
  progress: Pick<RunProgress, "randomInitEvaluation" | "globalStep">,
  evaluator: Evaluator,
  values: ReadonlyMap<string, HostTensor>,
): Promise<void> {
  const baselineNext = config.evaluation.random_init_baseline &&
    !progress.randomInitEvaluation && progress.globalStep === 0;
  if (baselineNext || evaluationEpochs(config).length === 0) return;
  console.error(await evaluator.check(values));
}
