/**
 * Contrastive losses as ONNX subgraphs, in log-sum-exp form (SPEC §A):
 * NT-Xent and the weighted NT-Xent of the ETH method, for interleaved views
 * (rows 2k, 2k+1 a positive pair) or two branches stacked (SDCLR: row i and
 * row i + N are a pair).
 */
import type { Tensor } from "../onnx/graph.ts";
import * as ops from "../onnx/ops.ts";
import { NORM_EPS, OUT_OF_BOUNDS_FACTOR, WEIGHT_EPS } from "./reference.ts";

/** How the 2N rows pair up into positives. */
export type Pairing = "interleaved" | "halves";

/** Options shared by both losses. */
export interface NtXentGraphOptions {
  temperature: number;
  pairing?: Pairing;
}

/** Options of the weighted loss; μ is a graph input (a scalar tensor). */
export interface WeightedNtXentGraphOptions extends NtXentGraphOptions {
  sigma: number;
  lowerBound: number;
  upperBound: number;
  normalization: "negatives_constant_total_weight" | "None";
  /** Factor on the weights of similarities outside (lowerBound, upperBound); default 1e-3 (SPEC §A). */
  outOfBoundsFactor?: number;
}

/** Loss value and the per-anchor losses it averages. */
export interface LossOutputs {
  loss: Tensor;
  perAnchor: Tensor;
}

const EXCLUDED = -1e30;

/** Index of the positive partner of row `i` among `rows` rows. */
export function partnerOf(i: number, rows: number, pairing: Pairing): number {
  if (pairing === "interleaved") return i ^ 1;
  const n = rows / 2;
  return i < n ? i + n : i - n;
}

function rowCount(z: Tensor): number {
  const rows = z.shape[0];
  if (z.rank !== 2 || typeof rows !== "number" || rows % 2 !== 0 || rows < 4) {
    throw new Error(
      `contrastive loss: embeddings must be [2N, d] with static even 2N >= 4, got ${z.shapeText}`,
    );
  }
  return rows;
}

function masks(z: Tensor, pairing: Pairing) {
  // Built from two index vectors (O(N) constants) rather than 2N×2N constants, so graphs stay small.
  const rows = rowCount(z);
  const g = z.graph;
  const index = Array.from({ length: rows }, (_, i) => i);
  const rowIndex = g.constant(index, "int64", [rows, 1]);
  const columnIndex = g.constant(index, "int64", [1, rows]);
  const partner = g.constant(index.map((i) => partnerOf(i, rows, pairing)), "int64", [rows, 1]);
  const isPositive = ops.equal(partner, columnIndex);
  return {
    rows,
    isSelf: ops.equal(rowIndex, columnIndex),
    isPositive,
    positiveWeight: ops.cast(isPositive, z.dtype),
  };
}

/** Cosine similarities s = n nᵀ with n = z / (‖z‖ + 1e-10). */
export function cosineSimilarities(z: Tensor): Tensor {
  // Rows are first divided by their largest |value| (a constant for the gradient: the result does
  // not depend on it), so ‖z‖² cannot overflow float32 for rows of any magnitude.
  const largest = ops.reduceMax(ops.abs(z), [1], true);
  const scale = z.graph.stopGradient(
    ops.where(ops.greater(largest, 0), largest, ops.scalarLike(z, 1)),
  );
  const scaled = ops.div(z, scale);
  const norm = ops.sqrt(ops.reduceSumSquare(scaled, [1], true));
  const unit = ops.div(scaled, ops.add(norm, ops.div(ops.scalarLike(z, NORM_EPS), scale)));
  return ops.matmul(unit, ops.transpose(unit, [1, 0]));
}

function finish(
  logits: Tensor,
  offsets: Tensor,
  positiveWeight: Tensor,
  isPositive: Tensor,
): LossOutputs {
  // ℓ_i = log(1 + Σ_k exp(x_ik)) with x_ik = s_ik/τ − s_ij/τ + c_ik over the negatives (c = −∞
  // on the diagonal). Shifted by max(0, max_k x_ik) where that is positive; otherwise log1p in
  // Kahan's form, so tiny losses keep their relative precision in float32 too.
  const g = logits.graph;
  const positive = ops.reduceSum(ops.mul(logits, positiveWeight), [1], true);
  const excluded = ops.scalarLike(logits, EXCLUDED);
  const zero = ops.scalarLike(logits, 0);
  const one = ops.scalarLike(logits, 1);
  const x = ops.where(isPositive, excluded, ops.add(ops.sub(logits, positive), offsets));
  const shift = g.stopGradient(ops.max(ops.reduceMax(x, [1], true), zero));
  const shifted = ops.add(
    shift,
    ops.log(ops.add(ops.exp(ops.neg(shift)), ops.reduceSum(ops.exp(ops.sub(x, shift)), [1], true))),
  );
  const sum = ops.reduceSum(ops.exp(ops.where(ops.greater(x, zero), zero, x)), [1], true);
  const u = ops.add(sum, one);
  const exact = ops.equal(u, one);
  const log1p = ops.where(
    exact,
    sum,
    ops.div(ops.mul(ops.log(u), sum), ops.where(exact, one, ops.sub(u, one))),
  );
  const perAnchor = ops.reshape(ops.where(ops.greater(shift, zero), shifted, log1p), [-1]);
  return { loss: ops.reduceMean(perAnchor, [0], false), perAnchor };
}

function validate(options: NtXentGraphOptions): void {
  if (!(options.temperature > 0)) {
    throw new Error(`loss.temperature: must be > 0, got ${options.temperature}`);
  }
}

/** NT-Xent (SimCLR) over 2N embeddings. */
export function ntXentGraph(z: Tensor, options: NtXentGraphOptions): LossOutputs {
  validate(options);
  return z.graph.scope("nt_xent", () => {
    const { isSelf, isPositive, positiveWeight } = masks(z, options.pairing ?? "interleaved");
    const logits = ops.div(cosineSimilarities(z), options.temperature);
    const zero = ops.scalarLike(z, 0);
    const offsets = ops.where(isSelf, ops.scalarLike(z, EXCLUDED), zero);
    return finish(logits, offsets, positiveWeight, isPositive);
  });
}

/**
 * Weighted NT-Xent: negatives weighted by α = exp(−(s − μ)²/σ²), ×1e-3 outside
 * (b_l, b_u), normalized by ρ_i; weights and ρ are constants for the gradient.
 * Computed as log-weights added to the logits, so nothing overflows.
 */
export function weightedNtXentGraph(
  z: Tensor,
  mu: Tensor,
  options: WeightedNtXentGraphOptions,
): LossOutputs {
  validate(options);
  if (!(options.sigma > 0)) throw new Error(`loss.sigma: must be > 0, got ${options.sigma}`);
  if (!(options.lowerBound < options.upperBound)) {
    throw new Error(
      `loss bounds: lower ${options.lowerBound} must be < upper ${options.upperBound}`,
    );
  }
  if (
    options.normalization !== "negatives_constant_total_weight" && options.normalization !== "None"
  ) {
    throw new Error(
      `loss.weight_normalization: expected negatives_constant_total_weight or None, got ${options.normalization}`,
    );
  }
  return z.graph.scope("weighted_nt_xent", () => {
    const { rows, isSelf, isPositive, positiveWeight } = masks(z, options.pairing ?? "interleaved");
    const similarity = cosineSimilarities(z);
    const logits = ops.div(similarity, options.temperature);
    const fixed = z.graph.stopGradient(similarity);
    const excluded = ops.scalarLike(z, EXCLUDED);

    const distance = ops.sub(fixed, mu.dtype === z.dtype ? mu : ops.cast(mu, z.dtype));
    const gaussian = ops.neg(ops.div(ops.mul(distance, distance), options.sigma * options.sigma));
    const outside = ops.or(
      ops.less(fixed, options.lowerBound),
      ops.greater(fixed, options.upperBound),
    );
    const factor = options.outOfBoundsFactor ?? OUT_OF_BOUNDS_FACTOR;
    if (!(factor > 0)) throw new Error(`loss.out_of_bounds_factor: must be > 0, got ${factor}`);
    const penalty = ops.where(outside, ops.scalarLike(z, Math.log(factor)), ops.scalarLike(z, 0));
    const isNegative = ops.not(ops.or(isSelf, isPositive));
    const logAlpha = ops.where(isNegative, ops.add(gaussian, penalty), excluded);

    let logWeights = logAlpha;
    if (options.normalization === "negatives_constant_total_weight") {
      // log ρ_i = log(2N − 2 + ε) − log(Σ_k α_ik + ε), the sum taken in log space.
      const logEps = z.graph.constant(new Array(rows).fill(Math.log(WEIGHT_EPS)), z.dtype, [
        rows,
        1,
      ]);
      const logTotal = ops.reduceLogSumExp(ops.concat([logAlpha, logEps], 1), [1], true);
      const logRho = ops.sub(ops.scalarLike(z, Math.log(rows - 2 + WEIGHT_EPS)), logTotal);
      logWeights = ops.add(logAlpha, logRho);
    }
    const offsets = ops.where(
      isPositive,
      ops.scalarLike(z, 0),
      ops.where(isNegative, logWeights, excluded),
    );
    return finish(logits, offsets, positiveWeight, isPositive);
  });
}
