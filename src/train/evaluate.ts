/** When and how the runner evaluates the encoder it is training. */
import type { ExperimentConfig } from "../config/mod.ts";
import { classCounts } from "../data/dataset.ts";
import { evaluateEncoder, GraphEncoder } from "../eval/mod.ts";
import { contrastiveSpecFromConfig } from "../methods/from_config.ts";
import type { HostTensor } from "../runtime/host_tensor.ts";
import type { SessionOptions } from "../runtime/session.ts";
import { type ExperimentData, split } from "./experiment_data.ts";
import type { EvaluationRecord } from "./run_state.ts";

/** Decides when to evaluate and runs the evaluation. */
export interface Evaluator {
  /** Whether to evaluate after `epoch` (0-based); `last` is the run's final epoch. */
  due(epoch: number, last: boolean): boolean;
  run(epoch: number, values: ReadonlyMap<string, HostTensor>): Promise<EvaluationRecord>;
}

/**
 * The configured evaluation: after every epoch e with (e+1) % testing_every_n_epochs == 0,
 * and after the last epoch when `evaluate_at_end` is set and it got none.
 * `model_scores` takes the linear protocol's test accuracy, or the kNN
 * accuracy when no linear protocol is configured.
 */
export function evaluatorFor(
  config: ExperimentConfig,
  data: ExperimentData,
  session: SessionOptions,
): Evaluator {
  const evaluation = config.evaluation;
  const every = evaluation.testing_every_n_epochs;
  const anything = evaluation.linear !== null || evaluation.few_shot !== null ||
    evaluation.knn !== null;
  const spec = contrastiveSpecFromConfig(config);
  let groupCounts: number[] | null | undefined;
  return {
    due(epoch, last) {
      if (!anything) return false;
      const periodic = every !== null && (epoch + 1) % every === 0;
      return periodic || (last && evaluation.evaluate_at_end);
    },
    async run(epoch, values) {
      if (groupCounts === undefined) {
        const reference = evaluation.groups
          ? await split(data.full, config.data.dir, evaluation.groups.reference_split)
          : null;
        groupCounts = reference ? classCounts(reference.labels, data.classes) : null;
      }
      const encoder = await GraphEncoder.create(spec, values, session);
      try {
        const report = await evaluateEncoder(encoder, data, evaluation, {
          seed: config.seed,
          session,
          groupCounts,
          progress: true,
        });
        const accuracy = report.modelScore ?? report.knn?.accuracy;
        if (accuracy === undefined) throw new Error("evaluation produced no accuracy");
        return { epoch, accuracy, details: report as unknown as Record<string, unknown> };
      } finally {
        await encoder.release();
      }
    },
  };
}
