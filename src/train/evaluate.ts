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
  /**
   * Whether to evaluate after `epoch` (0-based); `last` is the run's final epoch and
   * `done` how many evaluations the run has had so far.
   */
  due(epoch: number, last: boolean, done: number): boolean;
  run(epoch: number, values: ReadonlyMap<string, HostTensor>): Promise<EvaluationRecord>;
}

/**
 * Whether the configured evaluation runs after `epoch` (0-based): after every epoch e with
 * (e+1) % testing_every_n_epochs == 0, and after the last epoch when `evaluate_at_end` is
 * true, or is "if_none" and the run had no evaluation yet (`done` evaluations so far).
 */
export function evaluationDue(
  evaluation: ExperimentConfig["evaluation"],
  epoch: number,
  last: boolean,
  done: number,
): boolean {
  const anything = evaluation.linear !== null || evaluation.few_shot !== null ||
    evaluation.knn !== null;
  if (!anything) return false;
  const every = evaluation.testing_every_n_epochs;
  const periodic = every !== null && (epoch + 1) % every === 0;
  const atEnd = evaluation.evaluate_at_end === true ||
    (evaluation.evaluate_at_end === "if_none" && done === 0);
  return periodic || (last && atEnd);
}

/** The epochs (0-based) after which a run of `config.train.epochs` epochs evaluates. */
export function evaluationEpochs(config: ExperimentConfig): number[] {
  const epochs: number[] = [];
  const total = config.train.epochs;
  for (let epoch = 0; epoch < total; epoch++) {
    if (evaluationDue(config.evaluation, epoch, epoch === total - 1, epochs.length)) {
      epochs.push(epoch);
    }
  }
  return epochs;
}

/**
 * The configured evaluation, when {@link evaluationDue} says so.
 * `model_scores` takes the linear protocol's test accuracy, or the kNN
 * accuracy when no linear protocol is configured.
 */
export function evaluatorFor(
  config: ExperimentConfig,
  data: ExperimentData,
  session: SessionOptions,
): Evaluator {
  const evaluation = config.evaluation;
  const spec = contrastiveSpecFromConfig(config);
  let groupCounts: number[] | null | undefined;
  return {
    due: (epoch, last, done) => evaluationDue(evaluation, epoch, last, done),
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
