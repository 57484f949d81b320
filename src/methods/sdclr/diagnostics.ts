/**
 * SDCLR diagnostics beyond the paper, for the log and the report: per epoch,
 * the mask sparsity per layer, and the share of the contrastive loss carried
 * by the samples of the rarest classes (labels are used for logging only).
 * SDCLR's claim is that the pruned self-competitor makes long-tail samples
 * weigh more; a loss share above the sample share says they do.
 */
import { maskSparsity, totalSparsity } from "./masks.ts";

/** What {@link RareClassLossShare.result} reports for an epoch. */
export interface RareClassLossReport {
  /** The k rarest classes (ascending count in the pretraining split, ties by class index). */
  rareClasses: number[];
  /** Share of the epoch's summed per-anchor loss carried by anchors of the rare classes. */
  lossShare: number;
  /** Share of the epoch's anchors that belong to the rare classes. */
  sampleShare: number;
  /** Summed per-anchor loss of each class. */
  classLoss: number[];
  /** Number of anchors of each class (two per image: one per view). */
  classAnchors: number[];
  /** Summed per-anchor loss over all anchors. */
  totalLoss: number;
}

/**
 * Accumulates per-class sums of the per-anchor losses over an epoch and
 * reports the share carried by the k rarest classes. Anchors i and i + N of
 * a step's `per_anchor_loss` [2N] are the two views of image i.
 */
export class RareClassLossShare {
  readonly rareClasses: number[];
  readonly #classLoss: Float64Array;
  readonly #classAnchors: Float64Array;

  /**
   * `classCounts[c]` is the number of images of class c in the pretraining
   * split; `rareCount` (k) the number of rarest classes to follow.
   */
  constructor(readonly classCounts: readonly number[], readonly rareCount: number) {
    if (classCounts.length === 0) throw new Error("RareClassLossShare: classCounts is empty");
    classCounts.forEach((n, c) => {
      if (!Number.isInteger(n) || n < 0) {
        throw new Error(
          `RareClassLossShare: classCounts[${c}] = ${n} must be a non-negative integer`,
        );
      }
    });
    if (!Number.isInteger(rareCount) || rareCount < 1 || rareCount > classCounts.length) {
      throw new Error(
        `RareClassLossShare: rareCount ${rareCount} must be an integer in [1, ${classCounts.length}]`,
      );
    }
    this.rareClasses = classCounts
      .map((count, c) => ({ count, c }))
      .sort((a, b) => a.count - b.count || a.c - b.c)
      .slice(0, rareCount)
      .map((e) => e.c)
      .sort((a, b) => a - b);
    this.#classLoss = new Float64Array(classCounts.length);
    this.#classAnchors = new Float64Array(classCounts.length);
  }

  /** Adds one step: `perAnchorLoss` [2N] and the labels [N] of its images. */
  add(perAnchorLoss: ArrayLike<number>, labels: ArrayLike<number | bigint>): void {
    const n = labels.length;
    if (perAnchorLoss.length !== 2 * n) {
      throw new Error(
        `RareClassLossShare.add: per_anchor_loss has ${perAnchorLoss.length} values, expected 2 × ${n} labels`,
      );
    }
    const classes = this.classCounts.length;
    for (let i = 0; i < n; i++) {
      const label = Number(labels[i]);
      if (!Number.isInteger(label) || label < 0 || label >= classes) {
        throw new Error(
          `RareClassLossShare.add: label ${labels[i]} at ${i} is outside [0, ${classes})`,
        );
      }
      const a = perAnchorLoss[i];
      const b = perAnchorLoss[i + n];
      if (!Number.isFinite(a) || !Number.isFinite(b)) {
        throw new Error(`RareClassLossShare.add: per_anchor_loss of image ${i} is not finite`);
      }
      this.#classLoss[label] += a + b;
      this.#classAnchors[label] += 2;
    }
  }

  /** The report over everything added since construction or {@link reset}. */
  result(): RareClassLossReport {
    let totalLoss = 0;
    let totalAnchors = 0;
    let rareLoss = 0;
    let rareAnchors = 0;
    const rare = new Set(this.rareClasses);
    this.#classLoss.forEach((loss, c) => {
      totalLoss += loss;
      totalAnchors += this.#classAnchors[c];
      if (rare.has(c)) {
        rareLoss += loss;
        rareAnchors += this.#classAnchors[c];
      }
    });
    return {
      rareClasses: [...this.rareClasses],
      lossShare: totalLoss > 0 ? rareLoss / totalLoss : 0,
      sampleShare: totalAnchors > 0 ? rareAnchors / totalAnchors : 0,
      classLoss: Array.from(this.#classLoss),
      classAnchors: Array.from(this.#classAnchors),
      totalLoss,
    };
  }

  /** Continues from sums saved from {@link result} (a run resumed mid-epoch). */
  restore(classLoss: readonly number[], classAnchors: readonly number[]): void {
    if (
      classLoss.length !== this.classCounts.length ||
      classAnchors.length !== this.classCounts.length
    ) {
      throw new Error(`RareClassLossShare.restore: expected ${this.classCounts.length} classes`);
    }
    this.#classLoss.set(classLoss);
    this.#classAnchors.set(classAnchors);
  }

  /** Clears the sums (start of an epoch). */
  reset(): void {
    this.#classLoss.fill(0);
    this.#classAnchors.fill(0);
  }
}

/** One epoch's SDCLR diagnostics, as logged. */
export interface SdclrEpochDiagnostics {
  /** Fraction of pruned weights over all encoder conv weights. */
  sparsity: number;
  /** Fraction of pruned weights per conv weight name. */
  layerSparsity: Record<string, number>;
  /** The rare-class loss share of the epoch, when labels were available. */
  rareClasses?: RareClassLossReport;
}

/** Gathers an epoch's diagnostics from its masks and (optionally) its loss accumulator. */
export function epochDiagnostics(
  masks: ReadonlyMap<string, Float32Array>,
  rare?: RareClassLossShare,
): SdclrEpochDiagnostics {
  return {
    sparsity: totalSparsity(masks),
    layerSparsity: maskSparsity(masks),
    ...(rare ? { rareClasses: rare.result() } : {}),
  };
}

/** One log line: overall sparsity, its range over layers, and the rare-class shares. */
export function formatDiagnostics(d: SdclrEpochDiagnostics): string {
  const layers = Object.values(d.layerSparsity);
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  let text = `mask sparsity ${pct(d.sparsity)} (layers ${pct(Math.min(...layers))}–${
    pct(Math.max(...layers))
  })`;
  if (d.rareClasses) {
    const r = d.rareClasses;
    text += `; ${r.rareClasses.length} rarest classes carry ${pct(r.lossShare)} of the loss ` +
      `with ${pct(r.sampleShare)} of the samples`;
  }
  return text;
}
