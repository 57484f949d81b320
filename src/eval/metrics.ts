/** Accuracy, per-class accuracy and the summary statistics the evaluation reports. */

function checkLengths(
  predictions: ArrayLike<number>,
  labels: ArrayLike<number>,
  where: string,
): void {
  if (predictions.length !== labels.length) {
    throw new Error(
      `${where}: ${predictions.length} predictions for ${labels.length} labels (expected equal counts)`,
    );
  }
}

/** Fraction of `predictions` equal to `labels`, in [0, 1]; throws on an empty set. */
export function accuracy(predictions: ArrayLike<number>, labels: ArrayLike<number>): number {
  checkLengths(predictions, labels, "accuracy");
  if (labels.length === 0) throw new Error("accuracy: no samples (expected at least one label)");
  let correct = 0;
  for (let i = 0; i < labels.length; i++) if (predictions[i] === labels[i]) correct++;
  return correct / labels.length;
}

/**
 * Accuracy of each class k over the samples labelled k, in [0, 1]; NaN for a
 * class without samples (it has no accuracy; JSON writes it as null).
 */
export function perClassAccuracy(
  predictions: ArrayLike<number>,
  labels: ArrayLike<number>,
  classCount: number,
): number[] {
  checkLengths(predictions, labels, "perClassAccuracy");
  const right = new Array<number>(classCount).fill(0);
  const total = new Array<number>(classCount).fill(0);
  for (let i = 0; i < labels.length; i++) {
    const label = labels[i];
    if (!(Number.isInteger(label) && label >= 0 && label < classCount)) {
      throw new Error(`perClassAccuracy: label ${label} at ${i} is outside [0, ${classCount})`);
    }
    total[label]++;
    if (predictions[i] === label) right[label]++;
  }
  return right.map((r, k) => (total[k] > 0 ? r / total[k] : NaN));
}

/**
 * Top-k accuracy of `logits` ([n, classes] row-major) against `labels`: a sample counts when
 * fewer than k classes score strictly higher than its label (k ≥ classes: every sample counts).
 */
export function topKAccuracy(
  logits: Float32Array,
  labels: ArrayLike<number>,
  classes: number,
  k: number,
): number {
  const n = labels.length;
  if (n === 0) throw new Error("topKAccuracy: no samples (expected at least one label)");
  if (logits.length !== n * classes) {
    throw new Error(`topKAccuracy: ${logits.length} logits for ${n} samples of ${classes} classes`);
  }
  let hits = 0;
  for (let i = 0; i < n; i++) {
    const row = logits.subarray(i * classes, (i + 1) * classes);
    const own = row[labels[i]];
    let above = 0;
    for (let c = 0; c < classes && above < k; c++) if (row[c] > own) above++;
    if (above < k) hits++;
  }
  return hits / n;
}

/** Arithmetic mean; NaN for no values. */
export function mean(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  return values.reduce((a, b) => a + b, 0) / values.length;
}

/**
 * Population standard deviation √(Σ(x − x̄)²/n), numpy's `np.std` default
 * (ddof 0), which SDCLR's `exp_analyse.py` uses for balancedness and for the
 * spread over splits. NaN for no values.
 */
export function populationStd(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const m = mean(values);
  return Math.sqrt(values.reduce((s, v) => s + (v - m) ** 2, 0) / values.length);
}
