/** SGD with momentum, weight decay and Nesterov, as torch.optim.SGD. */
import * as ops from "../onnx/ops.ts";
import { checkBoolean, checkNumber, momentumSgd } from "./common.ts";
import type { GraphOptimizer, SgdConfig } from "./types.ts";

/**
 * SGD as torch.optim.SGD with dampening 0, per parameter p with gradient g:
 *
 *     g   ← g + wd·p                          (when wd > 0, every parameter)
 *     buf ← momentum·buf + g                  (when momentum > 0; buf starts at 0)
 *     d   ← nesterov ? g + momentum·buf : buf (d = g when momentum is 0)
 *     p   ← p − lr·d
 *
 * torch sets buf = g at the first step, which equals momentum·0 + g.
 * State: ["momentum"] when momentum > 0, else none. Scalar inputs: ["lr"].
 */
export function createSgd(config: SgdConfig, where = "optimizer"): GraphOptimizer {
  const momentum = checkNumber(where, "momentum", config.momentum, 0, 1);
  const weightDecay = checkNumber(where, "weightDecay", config.weightDecay, 0);
  const dampening = config.dampening ?? 0;
  if (dampening !== 0) {
    throw new Error(
      `${where}.dampening: only 0 is supported (torch's default), got ${JSON.stringify(dampening)}`,
    );
  }
  const nesterov = checkBoolean(where, "nesterov", config.nesterov, false);
  if (nesterov && momentum === 0) {
    throw new Error(`${where}.nesterov: Nesterov momentum needs momentum > 0, got momentum 0`);
  }
  return momentumSgd(
    "sgd",
    momentum,
    nesterov,
    (param, grad) => weightDecay > 0 ? ops.add(grad, ops.mul(param, weightDecay)) : grad,
  );
}
