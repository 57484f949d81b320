/**
 * The SDCLR linear protocol (SPEC §B "Evaluation"): a linear probe on the
 * frozen encoder (eval-mode BN), fc initialised N(0, 0.01) with bias 0, SGD
 * (lr 30, momentum 0.9, no weight decay), batch 128, step decay ×0.1 at the
 * milestone epochs, augmentation applied on the fly so the features are
 * recomputed for every step: RandomCrop(pad 4) + flip on fixed-size images
 * (CIFAR, train_cifar.py), RandomResizedCrop(image size) + flip from whole
 * images (ImageNet, train_imagenet.py). After every `testFreq`-th epoch the
 * model is validated and kept when its validation top-1 (CIFAR) or top-5
 * (ImageNet) accuracy beats the best so far; the kept model is reported on
 * the test set. Few-shot is the same on `S_b` with its own epochs and milestones.
 *
 * The frozen encoder runs as its own eval graph and the head as the fused
 * step graph on its features: the same arithmetic as one graph whose encoder
 * takes no gradient, with the encoder left behind the {@link Encoder}
 * interface.
 */
import type { EvaluationConfig } from "../config/mod.ts";
import type { ImageDataset } from "../data/dataset.ts";
import {
  type FullImageSet,
  gatherCanvas,
  type ImageSource,
  isFullImageSet,
} from "../data/full_images.ts";
import { Augmenter } from "../augment/runner.ts";
import type { Recipe } from "../augment/recipes.ts";
import type { HostTensor } from "../runtime/host_tensor.ts";
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
import { accuracy, perClassAccuracy, topKAccuracy } from "./metrics.ts";

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
  /**
   * Augment the training images (true): RandomCrop(pad 4) + flip on fixed-size images,
   * RandomResizedCrop + flip on whole images.
   */
  augment: boolean;
  /** Validate after every testFreq-th epoch (1-based epochs divisible by it; default 1). */
  testFreq?: number;
  /** Validation accuracy that picks the kept model (default "top1"). */
  selectOn?: "top1" | "top5";
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
  /** Validation accuracy after the epoch (null without a validation set or when not validated). */
  valAccuracy: number | null;
  /** Validation top-5 accuracy (null as valAccuracy). */
  valTop5Accuracy: number | null;
}

/** Outcome of {@link sdclrLinearProbe}. */
export interface SdclrProbeResult {
  protocol: "sdclr";
  /** Test accuracy of the selected epoch's classifier, in [0, 1]. */
  testAccuracy: number;
  /** Its test top-5 accuracy. */
  testTop5Accuracy: number;
  /** Its test accuracy per class (NaN for a class absent from the test set). */
  perClassAccuracy: number[];
  /** The selected epoch (1-based). */
  bestEpoch: number;
  /** Its validation accuracy (null without a validation set). */
  valAccuracy: number | null;
  /**
   * best_val: first validated epoch with the highest validation accuracy (`selectOn`); last: no
   * validation set.
   */
  selection: "best_val" | "last";
  /** The validation accuracy the selection used. */
  selectOn: "top1" | "top5";
  /** Validation period in epochs. */
  testFreq: number;
  /** Training-time augmentation: none, random crop (pad 4) + flip, or random resized crop + flip. */
  augmentation: "none" | "random_crop_flip" | "random_resized_crop_flip";
  epochs: SdclrEpochRecord[];
  counts: { train: number; val: number; test: number };
  seconds: number;
}

/** The images of the probe: train (augmented on the fly), optional validation, test. */
export interface ProbeSets {
  /** Fixed-size images, or whole images (augment must then be on: RandomResizedCrop). */
  train: ImageSource;
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
    testFreq: config.test_freq,
    selectOn: config.select_on,
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

/**
 * SDCLR's ImageNet probe transform (train_imagenet.py): RandomResizedCrop(size) with torchvision's
 * defaults (scale 0.08–1, ratio 3/4–4/3, bilinear) and a horizontal flip, on whole images.
 */
export function probeResizedCropRecipe(
  height: number,
  width: number,
  normalization: ImageNormalization | null = null,
): Recipe {
  return {
    name: "probe_resized_crop_flip",
    transforms: [
      {
        kind: "random_resized_crop",
        size: [height, width],
        scale: [0.08, 1],
        ratio: [3 / 4, 4 / 3],
        interpolation: "bilinear",
        p: 1,
      },
      { kind: "horizontal_flip", p: 0.5 },
      ...(normalization
        ? [{
          kind: "normalize" as const,
          mean: [...normalization.mean] as [number, number, number],
          std: [...normalization.std] as [number, number, number],
        }]
        : []),
    ],
  };
}

/** Training batches of the probe: the augmented images of a batch of indices. */
interface ProbeBatches {
  augmentation: SdclrProbeResult["augmentation"];
  images(indices: Int32Array): Promise<HostTensor>;
  release(): Promise<void>;
}

async function probeBatches(
  train: ImageSource,
  test: ImageDataset,
  options: SdclrProbeOptions,
  rng: Rng,
): Promise<ProbeBatches> {
  const normalization = options.normalization ?? null;
  if (!isFullImageSet(train)) {
    return {
      augmentation: "random_crop_flip",
      images: (indices) => Promise.resolve(probeImages(train, indices, rng, normalization)),
      release: () => Promise.resolve(),
    };
  }
  const whole: FullImageSet = train;
  const augmenter = await Augmenter.create(
    probeResizedCropRecipe(test.height, test.width, normalization),
    { ...options.session, height: whole.height, width: whole.width, views: 1 },
  );
  return {
    augmentation: "random_resized_crop_flip",
    async images(indices) {
      const batch = gatherCanvas(whole, indices);
      const out = await augmenter.augment(batch.images, indices.length, rng, batch.sizes);
      return out.views[0];
    },
    release: () => augmenter.release(),
  };
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
  const testFreq = options.testFreq ?? 1;
  const selectOn = options.selectOn ?? "top1";
  if (!(Number.isInteger(options.batchSize) && options.batchSize > 0)) {
    throw new Error(
      `evaluation.${tag}.batch_size: expected a positive integer, got ${options.batchSize}`,
    );
  }
  if (!(Number.isInteger(options.epochs) && options.epochs > 0)) {
    throw new Error(`evaluation.${tag}.epochs: expected a positive integer, got ${options.epochs}`);
  }
  if (!(Number.isInteger(testFreq) && testFreq > 0)) {
    throw new Error(`evaluation.${tag}.test_freq: expected a positive integer, got ${testFreq}`);
  }
  if (val && testFreq > options.epochs) {
    throw new Error(
      `evaluation.${tag}.test_freq: ${testFreq} exceeds the ${options.epochs} epochs; no epoch would be validated`,
    );
  }
  if (isFullImageSet(train) && !options.augment) {
    throw new Error(
      `evaluation.${tag}.augment: ${train.source} holds whole images of different sizes, which only ` +
        "the RandomResizedCrop augmentation reads; without augment the probe needs the evaluation transform",
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
  const fixedTrain = options.augment
    ? null
    : await extractFeatures(encoder, train as ImageDataset, extract);
  const dim = testFeatures.dim;

  const rng = new Rng(options.seed, `eval/sdclr/${tag}`);
  const classifier = await LinearClassifier.create(
    normalLinearInit(dim, classCount, options.initStd, rng.fork("init")),
    { kind: "sgd", momentum: options.momentum, weightDecay: options.weightDecay, nesterov: false },
    options.session,
  );
  const predictor = await ClassifierPredictor.create(dim, classCount, options.session);
  const shuffle = rng.fork("shuffle");
  const batches = fixedTrain ? null : await probeBatches(train, test, options, rng.fork("augment"));
  const stepsPerEpoch = Math.ceil(train.count / options.batchSize);
  const schedule = probeSchedule(options, stepsPerEpoch);
  const epochs: SdclrEpochRecord[] = [];
  let best:
    | { epoch: number; valAccuracy: number | null; score: number; weights: ClassifierWeights }
    | null = null;
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
          : await encoder.features(await batches!.images(idx));
        const stepLr = lrAt(schedule, classifier.updates);
        if (s === 0) lr = stepLr;
        const loss = await classifier.step(features, labels, stepLr);
        total += loss * idx.length;
        bar?.tick(1, { loss, lr: stepLr });
      }
      const weights = classifier.snapshot();
      // As the original: validate after epochs divisible by test_freq (1-based).
      const validated = valFeatures !== null && (e + 1) % testFreq === 0;
      let valAccuracy: number | null = null;
      let valTop5Accuracy: number | null = null;
      if (validated) {
        const { predicted, logits } = await predictor.scores(valFeatures.features, weights);
        valAccuracy = accuracy(predicted, valFeatures.labels);
        valTop5Accuracy = topKAccuracy(logits, valFeatures.labels, classCount, 5);
      }
      epochs.push({
        epoch: e + 1,
        lr,
        trainLoss: total / train.count,
        valAccuracy,
        valTop5Accuracy,
      });
      bar?.finish({
        loss: total / train.count,
        ...(valAccuracy === null ? {} : { val: valAccuracy }),
        ...(valTop5Accuracy === null || selectOn !== "top5"
          ? {}
          : { "val top-5": valTop5Accuracy }),
      });
      if (valFeatures === null) {
        best = { epoch: e + 1, valAccuracy: null, score: NaN, weights };
      } else if (validated) {
        // As the original: a strictly better validation accuracy replaces the kept model.
        const score = selectOn === "top5" ? valTop5Accuracy! : valAccuracy!;
        if (best === null || score > best.score) {
          best = { epoch: e + 1, valAccuracy, score, weights };
        }
      }
    }
    const { predicted, logits } = await predictor.scores(testFeatures.features, best!.weights);
    return {
      protocol: "sdclr",
      testAccuracy: accuracy(predicted, testFeatures.labels),
      testTop5Accuracy: topKAccuracy(logits, testFeatures.labels, classCount, 5),
      perClassAccuracy: perClassAccuracy(predicted, testFeatures.labels, classCount),
      bestEpoch: best!.epoch,
      valAccuracy: best!.valAccuracy,
      selection: valFeatures ? "best_val" : "last",
      selectOn,
      testFreq,
      augmentation: fixedTrain ? "none" : batches!.augmentation,
      epochs,
      counts: { train: train.count, val: val?.count ?? 0, test: test.count },
      seconds: (performance.now() - start) / 1000,
    };
  } finally {
    await batches?.release();
    await classifier.release();
    await predictor.release();
  }
}
