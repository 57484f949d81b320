/**
 * Gradient rules of BatchNormalization (inference form: mean and variance
 * are inputs). Two rules:
 * - `BatchNormalization`: mean and variance are independent inputs and take
 *   their own gradients (any graph, e.g. one read back from a file).
 * - `BatchNormalization/batchStatistics`: the node is fed the batch mean and
 *   biased variance of its own input over every axis but 1 (training-mode BN,
 *   see src/nn/batchnorm.ts). The rule is the whole composite's backward, as
 *   PyTorch's fused BN: it reads only the input and the per-channel
 *   statistics, so the graph keeps no centred or normalized copy of the
 *   activation for the backward, and the primitive ops that computed the
 *   statistics take no gradient.
 *
 * Both recompute x̂ = (x − mean)/√(var + ε) with the same op as the forward.
 */
import type { GradRule } from "../gradients.ts";
import type { Node, Tensor } from "../../onnx/graph.ts";
import * as ops from "../../onnx/ops.ts";

/** Name of the composite rule (select it with `node.gradRule`). */
export const BATCH_STATISTICS_RULE = "BatchNormalization/batchStatistics";

/** ε as ORT reads it (a float32 attribute). */
function epsilonOf(node: Node): number {
  const v = node.attrs.epsilon;
  return Math.fround(typeof v === "number" ? v : 1e-5);
}

/** Per-channel [C] values as [C, 1, ...] against an input of rank ≥ 3. */
function perChannel(t: Tensor, x: Tensor): Tensor {
  return x.rank > 2 ? ops.reshape(t, [-1, ...new Array(x.rank - 2).fill(1)]) : t;
}

/** Every axis but the channel axis 1. */
function statisticAxes(x: Tensor): number[] {
  return x.shape.map((_, i) => i).filter((i) => i !== 1);
}

/** The pieces both rules share: 1/√(var + ε), Σ dy and Σ dy·x̂ per channel ([C]). */
function sums(node: Node, dy: Tensor) {
  const [x, scale, , mean, variance] = node.inputs as Tensor[];
  const eps = epsilonOf(node);
  const axes = statisticAxes(x);
  const invStd = ops.reciprocal(ops.sqrt(ops.add(variance, eps)));
  const ones = ops.full(x.graph, scale.shape, 1, x.dtype);
  const zeros = ops.full(x.graph, scale.shape, 0, x.dtype);
  const xHat = ops.batchNormalization(x, ones, zeros, mean, variance, eps);
  const sumDy = ops.reduceSum(dy, axes, false);
  const sumDyXHat = ops.reduceSum(ops.mul(dy, xHat), axes, false);
  return { x, scale, mean, variance, eps, invStd, sumDy, sumDyXHat };
}

/** Rules for BatchNormalization and its batch-statistics composite. */
export const NORMALIZATION_RULES: Record<string, GradRule> = {
  BatchNormalization: (node, [dy]) => {
    if ((node.attrs.training_mode ?? 0) !== 0) {
      throw new Error(
        `BatchNormalization (node ${node.name}): training_mode 1 has no gradient rule`,
      );
    }
    const { x, scale, invStd, sumDy, sumDyXHat } = sums(node, dy!);
    const a = ops.mul(scale, invStd);
    const dx = ops.mul(dy!, perChannel(a, x));
    const dMean = ops.neg(ops.mul(sumDy, a));
    // ∂y/∂var = −½·scale·x̂/(var + ε)
    const dVariance = ops.mul(ops.mul(sumDyXHat, ops.mul(a, invStd)), -0.5);
    return [dx, sumDyXHat, sumDy, dMean, dVariance];
  },
  [BATCH_STATISTICS_RULE]: (node, [dy]) => {
    const { x, scale, mean, variance, eps, invStd, sumDy, sumDyXHat } = sums(node, dy!);
    // dx = a·(dy − Σdy/n − x̂·Σdy·x̂/n), a = scale/σ, as PyTorch's fused BN: dy is centred
    // before the scaling, which keeps the rounding of Σdx (0 in exact arithmetic) small. The
    // subtracted term is itself a BatchNormalization of x (the same x̂) with scale Σdy·x̂/n
    // and bias Σdy/n.
    const count = ops.countOver(x, statisticAxes(x));
    const centring = ops.batchNormalization(
      x,
      ops.div(sumDyXHat, count),
      ops.div(sumDy, count),
      mean,
      variance,
      eps,
    );
    const dx = ops.mul(ops.sub(dy!, centring), perChannel(ops.mul(scale, invStd), x));
    return [dx, sumDyXHat, sumDy, undefined, undefined];
  },
};
