/**
 * Long-tail splits as SDCLR's CIFAR split files are built (SPEC §B "Data splits"):
 * class of rank r (over a seeded class order) keeps floor(n_max · (1/imbalance)^(r/(C−1))) images;
 * the balanced D_b keeps floor(|D_i| / C) per class and the few-shot S_b the tail count per class.
 * Per class, one seeded shuffle of the pool gives all three as prefixes, so S_b ⊂ D_b, S_b ⊂ D_i and
 * |D_b ∩ D_i| = Σ_c min(n_c, |D_b|/C), which is how the shared SDCLR files relate. Files list the
 * classes in label order, each class's block in shuffled order. SDCLR's pool is the training set
 * minus valIdxList: n_max is 4,500 for CIFAR-10 and 450 for CIFAR-100 (sizes 11,165 and 9,754).
 */

import { Rng } from "../util/rng.ts";

/** Options of {@link makeLongTailSplit}. */
export interface LongTailOptions {
  /** Labels of the whole training set, official order (indices refer to it). */
  labels: ArrayLike<number>;
  /** Number of classes. */
  classes: number;
  /** n_max / n_min, e.g. 100 (r = 1/imbalance). */
  imbalance: number;
  seed: number;
  /** Indices the split draws from (SDCLR: all but valIdxList); default: every index. */
  pool?: ArrayLike<number>;
  /** Images of the head class; default: the smallest per-class count in the pool. */
  nMax?: number;
}

/** A long-tail split with its balanced and few-shot companions (indices into the training set). */
export interface LongTailSplit {
  /** classOrder[r] is the class of rank r (rank 0 keeps n_max images). */
  classOrder: Int32Array;
  /** Images per class in D_i, by class index. */
  counts: number[];
  /** D_i: the long-tail subset. */
  longTail: Int32Array;
  /** D_b: the same total split evenly over classes (floor). */
  balanced: Int32Array;
  /** S_b: the tail count per class. */
  fewShot: Int32Array;
  balancedPerClass: number;
  fewShotPerClass: number;
}

/** Per-rank counts floor(nMax · (1/imbalance)^(r/(C−1))), r = 0..C−1. */
export function longTailCounts(nMax: number, classes: number, imbalance: number): number[] {
  if (!(classes >= 2)) throw new Error(`long-tail split: need at least 2 classes, got ${classes}`);
  if (!(imbalance >= 1)) {
    throw new Error(`long-tail split: imbalance must be >= 1, got ${imbalance}`);
  }
  const ratio = 1 / imbalance;
  return Array.from(
    { length: classes },
    (_, r) => Math.floor(nMax * Math.pow(ratio, r / (classes - 1))),
  );
}

/** Pool indices grouped by class, each group in pool order. */
function poolByClass(
  labels: ArrayLike<number>,
  classes: number,
  pool: ArrayLike<number>,
): number[][] {
  const groups: number[][] = Array.from({ length: classes }, () => []);
  for (let i = 0; i < pool.length; i++) {
    const index = pool[i];
    if (!(Number.isInteger(index) && index >= 0 && index < labels.length)) {
      throw new Error(
        `long-tail split: pool index ${index} at position ${i} is outside [0, ${labels.length})`,
      );
    }
    const label = labels[index];
    if (!(label >= 0 && label < classes)) {
      throw new Error(
        `long-tail split: image ${index} has label ${label}, expected 0..${classes - 1}`,
      );
    }
    groups[label].push(index);
  }
  return groups;
}

/** Makes D_i, D_b and S_b (see the module comment). */
export function makeLongTailSplit(options: LongTailOptions): LongTailSplit {
  const { labels, classes, imbalance, seed } = options;
  const pool = options.pool ?? Array.from({ length: labels.length }, (_, i) => i);
  const groups = poolByClass(labels, classes, pool);
  const smallest = Math.min(...groups.map((g) => g.length));
  const nMax = options.nMax ?? smallest;
  if (nMax > smallest) {
    const c = groups.findIndex((g) => g.length === smallest);
    throw new Error(
      `long-tail split: n_max ${nMax} but class ${c} has only ${smallest} images in the pool`,
    );
  }
  const rankCounts = longTailCounts(nMax, classes, imbalance);
  const rng = new Rng(seed, "long-tail");
  const classOrder = rng.fork("class-order").permutation(classes);
  const counts = new Array<number>(classes);
  classOrder.forEach((c, rank) => (counts[c] = rankCounts[rank]));
  const total = rankCounts.reduce((a, b) => a + b, 0);
  const balancedPerClass = Math.floor(total / classes);
  const fewShotPerClass = rankCounts[classes - 1];
  if (balancedPerClass > smallest) {
    throw new Error(
      `long-tail split: D_b needs ${balancedPerClass} images per class, the pool has ${smallest}`,
    );
  }
  const longTail: number[] = [];
  const balanced: number[] = [];
  const fewShot: number[] = [];
  for (let c = 0; c < classes; c++) {
    const order = rng.fork(`class-${c}`).permutation(groups[c].length);
    const shuffled = Array.from(order, (k) => groups[c][k]);
    longTail.push(...shuffled.slice(0, counts[c]));
    balanced.push(...shuffled.slice(0, balancedPerClass));
    fewShot.push(...shuffled.slice(0, fewShotPerClass));
  }
  return {
    classOrder,
    counts,
    longTail: Int32Array.from(longTail),
    balanced: Int32Array.from(balanced),
    fewShot: Int32Array.from(fewShot),
    balancedPerClass,
    fewShotPerClass,
  };
}

/** Options of {@link makeTrainValSplit}. */
export interface TrainValOptions {
  labels: ArrayLike<number>;
  classes: number;
  trainPerClass: number;
  valPerClass: number;
  seed: number;
}

/** Index lists of a train/val split (see {@link makeTrainValSplit}). */
export interface TrainValSplit {
  /** Linear-probe training list (trainIdxList). */
  train: Int32Array;
  /** Validation list (valIdxList). */
  val: Int32Array;
  /** Every index not in `val`, ascending: what long-tail splits draw from. */
  pool: Int32Array;
}

/**
 * A class-balanced train/val split like SDCLR's trainIdxList/valIdxList (CIFAR-10: 4,500/500 per
 * class; CIFAR-100: 400/50), lists in seeded shuffled order. SDCLR draws its long-tail splits from
 * everything outside val (CIFAR-10: 4,500 per class; CIFAR-100: 450, i.e. n_max = 450 although
 * trainIdxList holds 400 per class), returned as `pool`.
 */
export function makeTrainValSplit(options: TrainValOptions): TrainValSplit {
  const { labels, classes, trainPerClass, valPerClass } = options;
  const all = Array.from({ length: labels.length }, (_, i) => i);
  const groups = poolByClass(labels, classes, all);
  const rng = new Rng(options.seed, "train-val");
  const train: number[] = [];
  const val: number[] = [];
  groups.forEach((group, c) => {
    if (group.length < trainPerClass + valPerClass) {
      throw new Error(
        `train/val split: class ${c} has ${group.length} images, need ${trainPerClass} + ${valPerClass}`,
      );
    }
    const order = rng.fork(`class-${c}`).permutation(group.length);
    order.slice(0, valPerClass).forEach((k) => val.push(group[k]));
    order.slice(valPerClass, valPerClass + trainPerClass).forEach((k) => train.push(group[k]));
  });
  const shuffle = (list: number[], name: string) =>
    Int32Array.from(rng.fork(name).permutation(list.length), (k) => list[k]);
  return {
    train: shuffle(train, "train-order"),
    val: shuffle(val, "val-order"),
    pool: complement(labels.length, val),
  };
}

/** The indices in [0, size) that are not in `excluded`, ascending. */
export function complement(size: number, excluded: ArrayLike<number>): Int32Array {
  const taken = new Uint8Array(size);
  for (let i = 0; i < excluded.length; i++) taken[excluded[i]] = 1;
  const out: number[] = [];
  for (let i = 0; i < size; i++) if (!taken[i]) out.push(i);
  return Int32Array.from(out);
}
