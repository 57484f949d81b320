/**
 * Everything `evaluation` in a config asks for, on one frozen encoder: the
 * linear protocol (ETH or SDCLR), few-shot, the kNN monitor and the
 * many/medium/few groups of the per-class test accuracies.
 */
import type { EvaluationConfig } from "../config/mod.ts";
import type { ImageDataset } from "../data/dataset.ts";
import type { FullImageSet, ImageSource } from "../data/full_images.ts";
import type { SessionOptions } from "../runtime/session.ts";
import {
  type Encoder,
  extractFeatures,
  type FeatureSet,
  type ImageNormalization,
} from "./features.ts";
import {
  type ClassGroup,
  classGroups,
  type GroupReport,
  groupReport,
  groupRuleFromConfig,
} from "./groups.ts";
import { knnEval, type KnnResult } from "./knn.ts";
import { ethLinearEval, ethLinearOptions, type EthLinearResult } from "./linear_eth.ts";
import { sdclrLinearProbe, sdclrProbeOptions, type SdclrProbeResult } from "./linear_sdclr.ts";

/** The data sets of an evaluation (the shape of the runner's experiment data); null: not loaded. */
export interface EvalData {
  /** Training set of the linear probe (and the kNN bank), evaluation transform. */
  train: ImageDataset | null;
  /** The same as whole images: the SDCLR probe's RandomResizedCrop reads these when present. */
  trainFull?: FullImageSet | null;
  /** Validation set of the SDCLR protocol (null: keep the last epoch). */
  val: ImageDataset | null;
  /** Training set of the few-shot probe (S_b). */
  fewShot: ImageSource | null;
  test: ImageDataset | null;
  /** Number of classes. */
  classes: number;
}

/** Which accuracy an evaluation's headline score is. */
export type ScoreMetric = "linear" | "few_shot" | "knn";

/**
 * The headline test accuracy of a report (the ETH `model_scores` entry): the linear probe's, else
 * the few-shot probe's, else kNN's; null when nothing was measured.
 */
export function headlineScore(
  report: Pick<EvaluationReport, "linear" | "fewShot" | "knn">,
): { metric: ScoreMetric; accuracy: number } | null {
  if (report.linear) return { metric: "linear", accuracy: report.linear.testAccuracy };
  if (report.fewShot) return { metric: "few_shot", accuracy: report.fewShot.testAccuracy };
  if (report.knn) return { metric: "knn", accuracy: report.knn.accuracy };
  return null;
}

function loaded<T>(set: T | null | undefined, what: string): T {
  if (!set) throw new Error(`evaluation: no ${what} was loaded`);
  return set;
}

/** Options of {@link evaluateEncoder}. */
export interface EvaluateOptions {
  /** The config seed (split, initialisations, shuffles, augmentation). */
  seed: number;
  session?: SessionOptions;
  /** Images per class in `evaluation.groups.reference_split` (needed when groups are configured). */
  groupCounts?: readonly number[] | null;
  /** Host-side normalization of [0, 1] images (default none: the encoder normalizes). */
  normalization?: ImageNormalization | null;
  /** Images per encoder call when extracting features (default 256). */
  featureBatchSize?: number;
  /** Progress bars on stderr (default false). */
  progress?: boolean;
  /** Skip the linear and few-shot probes (e.g. a per-epoch kNN-only check). */
  knnOnly?: boolean;
}

/** What {@link evaluateEncoder} measured; null where the config asked for nothing. */
export interface EvaluationReport {
  /** Linear test accuracy in [0, 1]: the ETH `model_scores` entry. */
  modelScore: number | null;
  linear: EthLinearResult | SdclrProbeResult | null;
  fewShot: SdclrProbeResult | null;
  knn: KnnResult | null;
  groups: {
    classes: ClassGroup[];
    linear: GroupReport | null;
    fewShot: GroupReport | null;
  } | null;
  seconds: number;
}

/** Runs the evaluation of `config` on `encoder`. */
export async function evaluateEncoder(
  encoder: Encoder,
  data: EvalData,
  config: EvaluationConfig,
  options: EvaluateOptions,
): Promise<EvaluationReport> {
  const start = performance.now();
  const { seed, session } = options;
  const extract = {
    batchSize: options.featureBatchSize,
    normalization: options.normalization,
    classCount: data.classes,
  };
  let trainFeatures: FeatureSet | null = null;
  let testFeatures: FeatureSet | null = null;
  const test = loaded(data.test, "test set");
  const features = async () => {
    const bar = (split: string) => options.progress ? `features ${split}` : undefined;
    trainFeatures ??= await extractFeatures(encoder, loaded(data.train, "probe training set"), {
      ...extract,
      progress: bar("train"),
    });
    testFeatures ??= await extractFeatures(encoder, test, {
      ...extract,
      progress: bar("test"),
    });
    return { train: trainFeatures, test: testFeatures };
  };
  const probeExtra = {
    session,
    featureBatchSize: options.featureBatchSize,
    normalization: options.normalization,
    classCount: data.classes,
    progress: options.progress,
  };

  let linear: EthLinearResult | SdclrProbeResult | null = null;
  if (config.linear && !options.knnOnly) {
    if (config.linear.protocol === "eth") {
      const { train, test } = await features();
      linear = await ethLinearEval(train, test, {
        ...ethLinearOptions(config.linear, seed, session),
        progress: options.progress,
      });
    } else {
      const train = config.linear.augment && data.trainFull ? data.trainFull : data.train;
      linear = await sdclrLinearProbe(
        encoder,
        { train: loaded(train, "probe training set"), val: data.val, test },
        sdclrProbeOptions(config.linear, seed, { ...probeExtra, tag: "linear" }),
      );
    }
  }

  let fewShot: SdclrProbeResult | null = null;
  if (config.few_shot && !options.knnOnly) {
    if (!data.fewShot) {
      throw new Error(
        "evaluation.few_shot: no few-shot training set was loaded (set data.few_shot_split)",
      );
    }
    fewShot = await sdclrLinearProbe(
      encoder,
      { train: data.fewShot, val: data.val, test },
      sdclrProbeOptions(config.few_shot, seed, { ...probeExtra, tag: "few_shot" }),
    );
  }

  let knn: KnnResult | null = null;
  if (config.knn) {
    const { train, test } = await features();
    knn = await knnEval(train, test, {
      k: config.knn.k,
      temperature: config.knn.temperature,
      session,
    });
  }

  let groups: EvaluationReport["groups"] = null;
  if (config.groups && !options.knnOnly) {
    if (!options.groupCounts) {
      throw new Error(
        `evaluation.groups: the class counts of reference_split ${config.groups.reference_split} were not given`,
      );
    }
    if (options.groupCounts.length !== data.classes) {
      throw new Error(
        `evaluation.groups.reference_split: ${options.groupCounts.length} class counts for ${data.classes} classes`,
      );
    }
    const classes = classGroups(options.groupCounts, groupRuleFromConfig(config.groups));
    groups = {
      classes,
      linear: linear ? groupReport(linear.perClassAccuracy, classes) : null,
      fewShot: fewShot ? groupReport(fewShot.perClassAccuracy, classes) : null,
    };
  }

  return {
    modelScore: linear?.testAccuracy ?? null,
    linear,
    fewShot,
    knn,
    groups,
    seconds: (performance.now() - start) / 1000,
  };
}
