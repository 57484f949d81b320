/**
 * The ETH linear protocol (SPEC §A "Evaluation"): features of the train and
 * test sets are extracted once; a stratified 90/10 split of the train
 * features picks Adam's weight decay (L2) from logspace(log_min, log_max,
 * n_steps) by validation accuracy; a classifier retrained on all train
 * features with that weight decay gives the test accuracy.
 */
import type { EvaluationConfig } from "../config/mod.ts";
import type { ImageDataset } from "../data/dataset.ts";
import type { SessionOptions } from "../runtime/session.ts";
import { ProgressBar } from "../util/progress.ts";
import { Rng } from "../util/rng.ts";
import {
  ClassifierPredictor,
  type ClassifierWeights,
  LinearClassifier,
  torchLinearInit,
} from "./classifier.ts";
import {
  checkFeatureSet,
  type Encoder,
  extractFeatures,
  type FeatureSet,
  gatherRows,
  type ImageNormalization,
} from "./features.ts";
import { accuracy, perClassAccuracy } from "./metrics.ts";

/** The `evaluation.linear` section with `protocol: eth`. */
export type EthLinearConfig = Extract<NonNullable<EvaluationConfig["linear"]>, { protocol: "eth" }>;

/** Options of {@link ethLinearEval}. */
export interface EthLinearOptions {
  /** Fraction of the train features held out for the weight-decay search (0.1). */
  valFraction: number;
  /** Weight decays 10^logMin .. 10^logMax, nSteps values (−6, −1, 5). */
  logMin: number;
  logMax: number;
  nSteps: number;
  /** Epochs of every classifier fit (60). */
  epochs: number;
  /** Batch size; the last partial batch is kept (256). */
  batchSize: number;
  /** Adam learning rate (1e-3). */
  lr: number;
  /** Seed of the split, the initialisations and the shuffles (the config seed). */
  seed: number;
  session?: SessionOptions;
  /** Draw a progress bar per fit on stderr (default false). */
  progress?: boolean;
}

/** One row of the weight-decay search. */
export interface EthSearchRow {
  weightDecay: number;
  valAccuracy: number;
  /** Mean training loss of the last epoch. */
  trainLoss: number;
}

/** Outcome of {@link ethLinearEval}. */
export interface EthLinearResult {
  protocol: "eth";
  /** Test accuracy of the retrained classifier, in [0, 1] (the ETH `model_scores` entry). */
  testAccuracy: number;
  /** Test accuracy per class, in [0, 1] (NaN for a class absent from the test set). */
  perClassAccuracy: number[];
  /** The chosen weight decay. */
  weightDecay: number;
  search: EthSearchRow[];
  /** Mean training loss per epoch of the final fit on all train features. */
  trainLossPerEpoch: number[];
  counts: { train: number; val: number; test: number };
  seconds: number;
}

/** Options of the ETH protocol from its config section and the run seed. */
export function ethLinearOptions(
  config: EthLinearConfig,
  seed: number,
  session?: SessionOptions,
): EthLinearOptions {
  return {
    valFraction: config.val_fraction,
    logMin: config.log_min,
    logMax: config.log_max,
    nSteps: config.n_steps,
    epochs: config.epochs,
    batchSize: config.batch_size,
    lr: config.lr,
    seed,
    session,
  };
}

/** `n` values 10^min .. 10^max, evenly spaced in the exponent (torch.logspace; n = 1 gives [10^min]). */
export function logspace(min: number, max: number, n: number): number[] {
  if (!(Number.isInteger(n) && n >= 1)) {
    throw new Error(`logspace: n_steps must be an integer ≥ 1, got ${n}`);
  }
  if (n === 1) return [10 ** min];
  return Array.from({ length: n }, (_, i) => 10 ** (min + (i * (max - min)) / (n - 1)));
}

/** A stratified train/validation split: indices into the labelled set, each ascending. */
export interface StratifiedSplit {
  train: Int32Array;
  val: Int32Array;
}

/**
 * Splits samples into train and validation sets with the class proportions
 * kept, as sklearn's `train_test_split(stratify=labels)`: ceil(fraction·n)
 * validation samples, allocated to classes by their share with the rounding
 * remainder going to the largest fractional parts (ties: lower class first),
 * so each class gets floor or ceil of fraction·n·(n_k/n); members drawn by a
 * seeded shuffle per class.
 */
export function stratifiedSplit(
  labels: ArrayLike<number>,
  classCount: number,
  valFraction: number,
  seed: number,
): StratifiedSplit {
  const n = labels.length;
  if (!(valFraction > 0 && valFraction < 1)) {
    throw new Error(
      `evaluation.linear.val_fraction: expected a number in (0, 1), got ${valFraction}`,
    );
  }
  const members: number[][] = Array.from({ length: classCount }, () => []);
  for (let i = 0; i < n; i++) {
    const label = labels[i];
    if (!(Number.isInteger(label) && label >= 0 && label < classCount)) {
      throw new Error(`stratifiedSplit: label ${label} at ${i} is outside [0, ${classCount})`);
    }
    members[label].push(i);
  }
  const nVal = Math.ceil(valFraction * n);
  if (nVal >= n) {
    throw new Error(
      `stratifiedSplit: ${n} samples leave none for training with val_fraction ${valFraction}`,
    );
  }
  const shares = members.map((m) => (m.length * nVal) / n);
  const take = shares.map(Math.floor);
  let remaining = nVal - take.reduce((a, b) => a + b, 0);
  const byRemainder = shares.map((_, k) => k).sort((a, b) =>
    (shares[b] - take[b]) - (shares[a] - take[a]) || a - b
  );
  for (const k of byRemainder) {
    if (remaining === 0) break;
    if (take[k] < members[k].length) {
      take[k]++;
      remaining--;
    }
  }
  const rng = new Rng(seed, "eval/eth/split");
  const train: number[] = [];
  const val: number[] = [];
  members.forEach((m, k) => {
    const order = rng.permutation(m.length);
    order.forEach((j, r) => (r < take[k] ? val : train).push(m[j]));
  });
  const sorted = (xs: number[]) => Int32Array.from(xs).sort();
  return { train: sorted(train), val: sorted(val) };
}

interface FitResult {
  weights: ClassifierWeights;
  lossPerEpoch: number[];
}

/** Trains Linear(D, K) with Adam (L2 `weightDecay`) on `indices` of `set`, shuffled every epoch. */
async function fitAdam(
  set: FeatureSet,
  indices: Int32Array,
  weightDecay: number,
  options: EthLinearOptions,
  tag: string,
): Promise<FitResult> {
  const rng = new Rng(options.seed, `eval/eth/${tag}`);
  const initial = torchLinearInit(set.dim, set.classCount, rng.fork("init"));
  const classifier = await LinearClassifier.create(
    initial,
    { kind: "adam", betas: [0.9, 0.999], eps: 1e-8, weightDecay },
    options.session,
  );
  const shuffle = rng.fork("shuffle");
  const { batchSize, epochs } = options;
  const stepsPerEpoch = Math.ceil(indices.length / batchSize);
  const bar = options.progress
    ? new ProgressBar(`eth linear ${tag}`, epochs * stepsPerEpoch)
    : null;
  const lossPerEpoch: number[] = [];
  try {
    for (let epoch = 0; epoch < epochs; epoch++) {
      const order = shuffle.permutation(indices.length);
      let total = 0;
      for (let start = 0; start < order.length; start += batchSize) {
        const rows = Array.from(
          { length: Math.min(batchSize, order.length - start) },
          (_, i) => indices[order[start + i]],
        );
        const labels = rows.map((r) => set.labels[r]);
        const loss = await classifier.step(
          gatherRows(set.features, set.dim, rows),
          labels,
          options.lr,
        );
        total += loss * rows.length;
        bar?.tick(1, { loss });
      }
      lossPerEpoch.push(total / indices.length);
    }
    bar?.finish({ loss: lossPerEpoch[lossPerEpoch.length - 1] });
    return { weights: classifier.snapshot(), lossPerEpoch };
  } finally {
    await classifier.release();
  }
}

/**
 * The ETH protocol on extracted features: weight-decay search on a stratified
 * split of `train`, retraining on all of `train`, accuracy on `test`.
 */
export async function ethLinearEval(
  train: FeatureSet,
  test: FeatureSet,
  options: EthLinearOptions,
): Promise<EthLinearResult> {
  const start = performance.now();
  checkFeatureSet(train, "ethLinearEval train features");
  checkFeatureSet(test, "ethLinearEval test features");
  if (train.dim !== test.dim || train.classCount !== test.classCount) {
    throw new Error(
      `ethLinearEval: train features are ${train.dim}-d with ${train.classCount} classes, test ` +
        `features ${test.dim}-d with ${test.classCount}`,
    );
  }
  if (options.logMin > options.logMax) {
    throw new Error(
      `evaluation.linear.log_min: ${options.logMin} must not exceed log_max ${options.logMax}`,
    );
  }
  const split = stratifiedSplit(train.labels, train.classCount, options.valFraction, options.seed);
  const predictor = await ClassifierPredictor.create(train.dim, train.classCount, options.session);
  try {
    const valFeatures = gatherRows(train.features, train.dim, split.val);
    const valLabels = Int32Array.from(split.val, (i) => train.labels[i]);
    const search: EthSearchRow[] = [];
    const decays = logspace(options.logMin, options.logMax, options.nSteps);
    for (const [k, weightDecay] of decays.entries()) {
      const fit = await fitAdam(train, split.train, weightDecay, options, `search-${k}`);
      const predicted = await predictor.predict(valFeatures, fit.weights);
      search.push({
        weightDecay,
        valAccuracy: accuracy(predicted, valLabels),
        trainLoss: fit.lossPerEpoch[fit.lossPerEpoch.length - 1],
      });
    }
    // The first of equally good weight decays wins, as torch.argmax.
    const best = search.reduce((b, row, k) => (row.valAccuracy > search[b].valAccuracy ? k : b), 0);
    const all = Int32Array.from({ length: train.count }, (_, i) => i);
    const final = await fitAdam(train, all, search[best].weightDecay, options, "final");
    const predicted = await predictor.predict(test.features, final.weights);
    return {
      protocol: "eth",
      testAccuracy: accuracy(predicted, test.labels),
      perClassAccuracy: perClassAccuracy(predicted, test.labels, test.classCount),
      weightDecay: search[best].weightDecay,
      search,
      trainLossPerEpoch: final.lossPerEpoch,
      counts: { train: split.train.length, val: split.val.length, test: test.count },
      seconds: (performance.now() - start) / 1000,
    };
  } finally {
    await predictor.release();
  }
}

/** Options of {@link ethLinearEvalImages}: the protocol's plus feature extraction. */
export interface EthImagesOptions extends EthLinearOptions {
  /** Images per encoder call (default 256). */
  featureBatchSize?: number;
  /** Host-side normalization of [0, 1] images (default none: the encoder normalizes). */
  normalization?: ImageNormalization | null;
  /** Number of classes (default the train set's). */
  classCount?: number;
}

/**
 * The ETH protocol from images: extracts train and test features once (eval
 * transform, no augmentation), then {@link ethLinearEval}. Also returns the
 * features (for the kNN monitor).
 */
export async function ethLinearEvalImages(
  encoder: Encoder,
  train: ImageDataset,
  test: ImageDataset,
  options: EthImagesOptions,
): Promise<{ result: EthLinearResult; train: FeatureSet; test: FeatureSet }> {
  const extract = {
    batchSize: options.featureBatchSize,
    normalization: options.normalization,
    classCount: options.classCount ?? train.classes.length,
  };
  const trainFeatures = await extractFeatures(encoder, train, extract);
  const testFeatures = await extractFeatures(encoder, test, extract);
  const result = await ethLinearEval(trainFeatures, testFeatures, options);
  return { result, train: trainFeatures, test: testFeatures };
}
