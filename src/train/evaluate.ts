/** When and how the runner evaluates the encoder it is training, and its dry run before training. */
import type { ExperimentConfig } from "../config/mod.ts";
import { subsetDataset } from "../data/dataset.ts";
import { type ImageSource, isFullImageSet, subsetFullImages } from "../data/full_images.ts";
import { type EvalData, evaluateEncoder, GraphEncoder, headlineScore } from "../eval/mod.ts";
import { contrastiveSpecFromConfig } from "../methods/from_config.ts";
import type { HostTensor } from "../runtime/host_tensor.ts";
import type { SessionOptions } from "../runtime/session.ts";
import type { ExperimentData } from "./experiment_data.ts";
import type { EvaluationRecord } from "./run_state.ts";

/** Decides when to evaluate and runs the evaluation. */
export interface Evaluator {
  /**
   * Whether to evaluate after `epoch` (0-based); `last` is the run's final epoch and
   * `done` how many evaluations the run has had so far.
   */
  due(epoch: number, last: boolean, done: number): boolean;
  run(epoch: number, values: ReadonlyMap<string, HostTensor>): Promise<EvaluationRecord>;
  /**
   * Runs every configured protocol once on a few images of each set, with one probe epoch:
   * the graphs, sessions, augmentations and data the real evaluations use, so what would fail
   * after hours of pretraining fails now. Returns a one-line summary.
   */
  check(values: ReadonlyMap<string, HostTensor>): Promise<string>;
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

/** The configured protocols, by name, for messages. */
export function evaluationProtocols(evaluation: ExperimentConfig["evaluation"]): string[] {
  return [
    evaluation.linear ? `linear (${evaluation.linear.protocol})` : null,
    evaluation.few_shot ? "few-shot" : null,
    evaluation.knn ? "kNN" : null,
    evaluation.groups ? "groups" : null,
  ].filter((name): name is string => name !== null);
}

/** Images of a dry run per set: enough for the ETH protocol's validation split to keep a train part. */
function dryRunSize(config: ExperimentConfig): number {
  const linear = config.evaluation.linear;
  const fraction = linear?.protocol === "eth" ? linear.val_fraction : 0;
  return Math.max(8, Math.ceil(2 / (1 - fraction)));
}

function firstImages<T extends ImageSource>(set: T, count: number): T {
  const n = Math.min(count, set.count);
  const indices = Array.from({ length: n }, (_, i) => i);
  const what = `first ${n} images`;
  return (isFullImageSet(set)
    ? subsetFullImages(set, indices, what)
    : subsetDataset(set, indices, what)) as T;
}

/** The data sets of a dry run: the first few images of each. */
export function dryRunData(data: EvalData, count: number): EvalData {
  const few = <T extends ImageSource>(set: T | null | undefined) =>
    set ? firstImages(set, count) : null;
  return {
    train: few(data.train),
    trainFull: few(data.trainFull),
    val: few(data.val),
    fewShot: few(data.fewShot),
    test: few(data.test),
    classes: data.classes,
  };
}

/** The evaluation section of a dry run: one epoch per probe, validated, one wd value. */
export function dryRunEvaluation(
  evaluation: ExperimentConfig["evaluation"],
): ExperimentConfig["evaluation"] {
  const linear = evaluation.linear;
  return {
    ...evaluation,
    linear: linear === null
      ? null
      : linear.protocol === "eth"
      ? { ...linear, epochs: 1, n_steps: 1 }
      : { ...linear, epochs: 1, test_freq: 1 },
    few_shot: evaluation.few_shot && { ...evaluation.few_shot, epochs: 1, test_freq: 1 },
  };
}

/**
 * The configured evaluation, when {@link evaluationDue} says so. `model_scores` takes the
 * linear probe's test accuracy, else the few-shot probe's, else kNN's (the record's `metric`
 * says which).
 */
export function evaluatorFor(
  config: ExperimentConfig,
  data: ExperimentData,
  session: SessionOptions,
): Evaluator {
  const evaluation = config.evaluation;
  const spec = contrastiveSpecFromConfig(config);
  const evaluate = async (
    values: ReadonlyMap<string, HostTensor>,
    sets: EvalData,
    section: ExperimentConfig["evaluation"],
    progress: boolean,
  ) => {
    const encoder = await GraphEncoder.create(spec, values, session);
    try {
      return await evaluateEncoder(encoder, sets, section, {
        seed: config.seed,
        session,
        groupCounts: data.groupCounts,
        progress,
      });
    } finally {
      await encoder.release();
    }
  };
  return {
    due: (epoch, last, done) => evaluationDue(evaluation, epoch, last, done),
    async run(epoch, values) {
      const report = await evaluate(values, data, evaluation, true);
      const score = headlineScore(report);
      if (score === null) {
        throw new Error("evaluation: no protocol is configured (evaluation.linear, few_shot, knn)");
      }
      return {
        epoch,
        accuracy: score.accuracy,
        metric: score.metric,
        details: report as unknown as Record<string, unknown>,
      };
    },
    async check(values) {
      const start = performance.now();
      const count = dryRunSize(config);
      const report = await evaluate(
        values,
        dryRunData(data, count),
        dryRunEvaluation(evaluation),
        false,
      );
      if (headlineScore(report) === null) {
        throw new Error("evaluation: no protocol is configured (evaluation.linear, few_shot, knn)");
      }
      const seconds = (performance.now() - start) / 1000;
      return `checked the evaluation (${
        evaluationProtocols(evaluation).join(", ")
      }) on ${count} images per set in ${seconds.toFixed(1)} s`;
    },
  };
}
