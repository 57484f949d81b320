/** LARS (layer-wise adaptive rate scaling) as a wrapper over SGD with momentum. */
import type { Tensor } from "../onnx/graph.ts";
import * as ops from "../onnx/ops.ts";
import { checkBoolean, checkNumber, l2Norm, momentumSgd } from "./common.ts";
import type { GraphOptimizer, LarsConfig } from "./types.ts";

/**
 * LARS in the form SimCLR uses (the LARS wrapper that rescales the gradient
 * and hands it to SGD with momentum), per parameter p with gradient g:
 *
 *     adapted = !(excludeBnAndBias && isBnOrBias)
 *     if adapted:
 *       g     ← g + wd·p
 *       trust ← η·‖p‖/‖g‖ when ‖p‖ > 0 and ‖g‖ > 0, else 1   (‖·‖ over the whole tensor; ‖g‖ after the decay term)
 *       g     ← trust·g
 *     (excluded parameters: g unchanged, no weight decay)
 *     buf ← momentum·buf + g                                  (torch SGD, dampening 0; buf starts at 0)
 *     p   ← p − lr·buf
 *
 * The learning rate multiplies the buffer (torch SGD), so under a schedule a
 * past step's gradient is applied with the current lr. Differences from
 * SDCLR's own `optimizer/lars.py`: that one uses η·‖p‖/(‖g‖ + wd·‖p‖), keeps
 * lr·trust inside the buffer and adapts every parameter.
 * State: ["momentum"] when momentum > 0, else none. Scalar inputs: ["lr"].
 */
export function createLars(config: LarsConfig, where = "optimizer"): GraphOptimizer {
  const momentum = checkNumber(where, "momentum", config.momentum, 0, 1);
  const weightDecay = checkNumber(where, "weightDecay", config.weightDecay, 0);
  const eta = checkNumber(where, "trustCoefficient", config.trustCoefficient, 0);
  if (eta === 0) throw new Error(`${where}.trustCoefficient: expected a number > 0, got 0`);
  const excludeBnAndBias = checkBoolean(where, "excludeBnAndBias", config.excludeBnAndBias, true);
  return momentumSgd("lars", momentum, false, (param, grad, meta) => {
    if (excludeBnAndBias && meta.isBnOrBias) return grad;
    const g = weightDecay > 0 ? ops.add(grad, ops.mul(param, weightDecay)) : grad;
    return ops.mul(g, trustRatio(param, g, eta), "scaled_grad");
  });
}

/** η·‖p‖/‖g‖ where both norms are positive, else 1 (a scalar). */
function trustRatio(param: Tensor, grad: Tensor, eta: number): Tensor {
  const paramNorm = l2Norm(param);
  const gradNorm = l2Norm(grad);
  const bothPositive = ops.and(ops.greater(paramNorm, 0), ops.greater(gradNorm, 0));
  const one = ops.scalarLike(paramNorm, 1);
  // A safe denominator keeps the unselected branch finite.
  const ratio = ops.div(ops.mul(paramNorm, eta), ops.where(bothPositive, gradNorm, one));
  return ops.where(bothPositive, ratio, one);
}
