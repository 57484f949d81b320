/**
 * The SDCLR linear protocol (SPEC §B "Evaluation"): a linear probe on the
 * frozen encoder (eval-mode BN), fc initialised N(0, 0.01) with bias 0, SGD
 * (lr 30, momentum 0.9, no weight decay), batch 128, step decay ×0.1 at the
 * milestone epochs, RandomCrop(32, pad 4) + flip applied on the fly so the
 * features are recomputed for every step; the epoch with the best validation
 * accuracy is kept and reported on the test set. Few-shot is the same on
 * `S_b` with its own epochs and milestones.
 *
 * The frozen encoder runs as its own eval graph and the head as the fused
 * step graph on its features: the same arithmetic as one graph whose encoder
 * takes no gradient, with the encoder left behind the {@link Encoder}
 * interface.
 */
import type { EvaluationConfig } from "../config/mod.ts";
import type { ImageDataset } from "../data/dataset.ts";
import type { SessionOptions } from "../runtime/session.ts";
import { lrAt, type StepDecayLr, validateLrSchedule } from "../schedules/lr.ts";
import { ProgressBar } from "../util/progress.ts";
import { Rng } from "../util/rng.ts";
import {
  ClassifierPredictor,
  type ClassifierWeights,
  LinearClassifier,
  normalLinearInit,
} from "./classifier.ts";
import {
  type Encoder,
  extractFeatures,
  gatherRows,
  type ImageNormalization,
  probeImages,
} from "./features.ts";
import { accuracy, perClassAccuracy } from "./metrics.ts";

/** The `evaluation.linear` section with `protocol: sdclr`. */
export type SdclrLinearConfig = Extract<
  NonNullable<EvaluationConfig["linear"]>,
  { protocol: "sdclr" }
>;
/** The `evaluation.few_shot` section. */
export type FewShotConfig = NonNullable<EvaluationConfig["few_shot"]>;

/** Options of {@link sdclrLinearProbe}. */
export interface SdclrProbeOptions {
  /** Base learning rate (30). */
  lr: number;
  /** SGD momentum (0.9). */
  momentum: number;
  /** L2 weight decay (0). */
  weightDecay: number;
  /** Batch size; the last partial batch is kept (128). */
  batchSize: number;
  /** Learning-rate factor per milestone (0.1). */
  gamma: number;
  /** 1-based epochs whose steps first use the decayed rate (linear [10, 20]; few-shot [40, 60]). */
  milestones: number[];
  epochs: number;
  /** std of the N(0, std) weight initialisation (0.01). */
  initStd: number;
  /** RandomCrop(32, pad 4) + flip on the training images (true). */
  augment: boolean;
  /** Seed of the initialisation, shuffles and augmentation (the config seed). */
  seed: number;
  /** Names the random streams and progress bars, e.g. "linear" or "few_shot" (default "linear"). */
  tag?: string;
  session?: SessionOptions;
  /** Images per encoder call when extracting val/test features (default 256). */
  featureBatchSize?: number;
  /** Host-side normalization of [0, 1] images (default none: the encoder normalizes). */
  normalization?: ImageNormalization | null;
  /** Number of classes (default the train set's). */
  classCount?: number;
  /** Draw a progress bar per epoch on stderr (default false). */
  progress?: boolean;
}

/** One epoch of the probe. */
export interface SdclrEpochRecord {
  /** 1-based epoch number, as in the original loop. */
  epoch: number;
  /** Learning rate fed to the epoch's first step (step decay keeps it for the whole epoch). */
  lr: number;
  /** Mean training loss over the epoch's samples. */
  trainLoss: number;
  /** Validation accuracy after the epoch (null without a validation set). */
  valAccuracy: number | null;
}

/** Outcome of {@link sdclrLinearProbe}. */
export interface SdclrProbeResult {
  protocol: "sdclr";
  /** Test accuracy of the selected epoch's classifier, in [0, 1]. */
  testAccuracy: number;
  /** Its test accuracy per class (NaN for a class absent from the test set). */
  perClassAccuracy: number[];
  /** The selected epoch (1-based). */
  bestEpoch: number;
  /** Its validation accuracy (null without a validation set). */
  valAccuracy: number | null;
  /** best_val: first epoch with the highest validation accuracy; last: no validation set. */
  selection: "best_val" | "last";
  epochs: SdclrEpochRecord[];
  counts: { train: number; val: number; test: number };
  seconds: number;
}

/** The images of the probe: train (augmented on the fly), optional validation, test. */
export interface ProbeSets {
  train: ImageDataset;
  val: ImageDataset | null;
  test: ImageDataset;
}

/** Options of the probe from `evaluation.linear` (protocol sdclr) or `evaluation.few_shot`. */
export function sdclrProbeOptions(
  config: SdclrLinearConfig | FewShotConfig,
  seed: number,
  extra: Partial<SdclrProbeOptions> = {},
): SdclrProbeOptions {
  return {
    lr: config.lr,
    momentum: config.momentum,
    weightDecay: config.weight_decay,
    batchSize: config.batch_size,
    gamma: config.gamma,
    milestones: [...config.milestones],
    epochs: config.epochs,
    initStd: config.init_std,
    augment: config.augment,
    seed,
    ...extra,
  };
}

/** The probe's learning-rate schedule (MultiStepLR stepped at the start of every 1-based epoch). */
export function probeSchedule(options: SdclrProbeOptions, stepsPerEpoch: number): StepDecayLr {
  return validateLrSchedule({
    kind: "step",
    base: options.lr,
    gamma: options.gamma,
    milestones: [...options.milestones],
    iterationsPerEpoch: stepsPerEpoch,
  }, `evaluation.${options.tag ?? "linear"}`);
}

/** The SDCLR probe: trains on `sets.train`, selects on `sets.val`, reports on `sets.test`. */
export async function sdclrLinearProbe(
  encoder: Encoder,
  sets: ProbeSets,
  options: SdclrProbeOptions,
): Promise<SdclrProbeResult> {
  const start = performance.now();
  const tag = options.tag ?? "linear";
  const { train, val, test } = sets;
  if (!(Number.isInteger(options.batchSize) && options.batchSize > 0)) {
    throw new Error(
      `evaluation.${tag}.batch_size: expected a positive integer, got ${options.batchSize}`,
    );
  }
  if (!(Number.isInteger(options.epochs) && options.epochs > 0)) {
    throw new Error(`evaluation.${tag}.epochs: expected a positive integer, got ${options.epochs}`);
  }
  if (options.augment && (train.height !== 32 || train.width !== 32)) {
    throw new Error(
      `evaluation.${tag}.augment: the on-the-fly probe augmentation is RandomCrop(32, pad 4) + flip for ` +
        `32x32 images; ${train.height}x${train.width} images (ImageNet's RandomResizedCrop probe) are not ` +
        `implemented, set augment: false`,
    );
  }
  if (train.count === 0) {
    throw new Error(`evaluation.${tag}: the training set ${train.source} is empty`);
  }
  const classCount = options.classCount ?? train.classes.length;
  const extract = {
    batchSize: options.featureBatchSize,
    normalization: options.normalization,
    classCount,
  };
  const testFeatures = await extractFeatures(encoder, test, extract);
  const valFeatures = val ? await extractFeatures(encoder, val, extract) : null;
  // Without augmentation the training features never change: extract them once.
  const fixedTrain = options.augment ? null : await extractFeatures(encoder, train, extract);
  const dim = testFeatures.dim;

  const rng = new Rng(options.seed, `eval/sdclr/${tag}`);
  const classifier = await LinearClassifier.create(
    normalLinearInit(dim, classCount, options.initStd, rng.fork("init")),
    { kind: "sgd", momentum: options.momentum, weightDecay: options.weightDecay, nesterov: false },
    options.session,
  );
  const predictor = await ClassifierPredictor.create(dim, classCount, options.session);
  const shuffle = rng.fork("shuffle");
  const augment = rng.fork("augment");
  const stepsPerEpoch = Math.ceil(train.count / options.batchSize);
  const schedule = probeSchedule(options, stepsPerEpoch);
  const epochs: SdclrEpochRecord[] = [];
  let best: { epoch: number; valAccuracy: number | null; weights: ClassifierWeights } | null = null;
  try {
    for (let e = 0; e < options.epochs; e++) {
      const order = shuffle.permutation(train.count);
      let lr = NaN;
      const bar = options.progress
        ? new ProgressBar(`${tag} probe epoch ${e + 1}/${options.epochs}`, stepsPerEpoch)
        : null;
      let total = 0;
      for (let s = 0; s < order.length; s += options.batchSize) {
        const idx = order.subarray(s, Math.min(s + options.batchSize, order.length));
        const labels = Int32Array.from(idx, (i) => train.labels[i]);
        const features = fixedTrain
          ? gatherRows(fixedTrain.features, dim, idx)
          : await encoder.features(probeImages(train, idx, augment, options.normalization ?? null));
        const stepLr = lrAt(schedule, classifier.updates);
        if (s === 0) lr = stepLr;
        const loss = await classifier.step(features, labels, stepLr);
        total += loss * idx.length;
        bar?.tick(1, { loss, lr: stepLr });
      }
      const weights = classifier.snapshot();
      const valAccuracy = valFeatures
        ? accuracy(await predictor.predict(valFeatures.features, weights), valFeatures.labels)
        : null;
      epochs.push({ epoch: e + 1, lr, trainLoss: total / train.count, valAccuracy });
      bar?.finish({
        loss: total / train.count,
        ...(valAccuracy === null ? {} : { val: valAccuracy }),
      });
      // As the original: a strictly better validation accuracy replaces the kept model.
      if (best === null || valAccuracy === null || valAccuracy > best.valAccuracy!) {
        best = { epoch: e + 1, valAccuracy, weights };
      }
    }
    const predicted = await predictor.predict(testFeatures.features, best!.weights);
    return {
      protocol: "sdclr",
      testAccuracy: accuracy(predicted, testFeatures.labels),
      perClassAccuracy: perClassAccuracy(predicted, testFeatures.labels, classCount),
      bestEpoch: best!.epoch,
      valAccuracy: best!.valAccuracy,
      selection: valFeatures ? "best_val" : "last",
      epochs,
      counts: { train: train.count, val: val?.count ?? 0, test: test.count },
      seconds: (performance.now() - start) / 1000,
    };
  } finally {
    await classifier.release();
    await predictor.release();
  }
}
