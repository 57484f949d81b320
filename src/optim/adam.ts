/** Adam (L2 weight decay) and AdamW (decoupled weight decay), as torch.optim.Adam/AdamW. */
import type { Tensor } from "../onnx/graph.ts";
import * as ops from "../onnx/ops.ts";
import { checkBetas, checkNumber, checkOperands, scalarInput, StepScalars } from "./common.ts";
import type { AdamConfig, AdamWConfig, GraphOptimizer, ParamMeta } from "./types.ts";

/**
 * Adam and AdamW as torch.optim.Adam / torch.optim.AdamW (amsgrad off), per
 * parameter p with gradient g at step t (1-based, the scalar input `step`):
 *
 *     adamw: p ← p·(1 − lr·wd)                (decoupled decay, before the update)
 *     adam:  g ← g + wd·p                     (L2 term added to the gradient)
 *     m ← β1·m + (1 − β1)·g
 *     v ← β2·v + (1 − β2)·g²
 *     p ← p − lr/(1 − β1^t) · m / (√v / √(1 − β2^t) + eps)
 *
 * State: ["exp_avg", "exp_avg_sq"] (m, v; 0 at the start). Scalar inputs: ["lr", "step"].
 */
export function createAdam(config: AdamConfig | AdamWConfig, where = "optimizer"): GraphOptimizer {
  const kind = config.kind;
  const [beta1, beta2] = checkBetas(where, config.betas);
  const eps = checkNumber(where, "eps", config.eps, 0);
  const weightDecay = checkNumber(where, "weightDecay", config.weightDecay, 0);
  const stateSlots = ["exp_avg", "exp_avg_sq"];
  // The scalar factors (bias corrections, step size, decay) depend on lr and step only: made
  // once per graph and shared by all parameters.
  const shared = new StepScalars(kind);
  return {
    kind,
    stateSlots,
    scalarInputs: ["lr", "step"],
    update(
      param: Tensor,
      grad: Tensor,
      state: Tensor[],
      scalars: Record<string, Tensor>,
      meta: ParamMeta,
    ) {
      checkOperands(kind, param, grad, state, stateSlots, meta);
      const graph = param.graph;
      const dtype = param.dtype;
      // Scalar factors in float64, as torch computes them in Python floats:
      // 1 − β2^t in float32 would lose ~1e-5 of its value to the rounding of β2.
      const lr = () => shared.get(graph, "lr", () => scalarInput(kind, scalars, "lr", "float64"));
      const step = () =>
        shared.get(graph, "step", () => scalarInput(kind, scalars, "step", "float64"));
      const biasCorrection = (beta: number) => {
        const t = step();
        return ops.sub(ops.scalarLike(t, 1), ops.pow(ops.scalarLike(t, beta), t));
      };
      const asParam = (t: Tensor) => (dtype === "float64" ? t : ops.cast(t, dtype));
      const factor = (name: string, make: () => Tensor) =>
        shared.ofRank(graph, `${name}/${dtype}`, param.rank, () => asParam(make()));
      const stepSize = factor("step_size", () => ops.div(lr(), biasCorrection(beta1)));
      const sqrtBiasCorrection2 = factor(
        "sqrt_bias_correction2",
        () => ops.sqrt(biasCorrection(beta2)),
      );
      const decay = weightDecay > 0 && kind === "adamw"
        ? factor("decay", () => ops.sub(ops.scalarLike(lr(), 1), ops.mul(lr(), weightDecay)))
        : undefined;
      return graph.scope(`${kind}/${meta.name}`, () => {
        let p = param;
        let g = grad;
        if (decay) p = ops.mul(p, decay);
        if (weightDecay > 0 && kind === "adam") g = ops.add(g, ops.mul(p, weightDecay));
        const m = ops.add(ops.mul(state[0], beta1), ops.mul(g, 1 - beta1), "exp_avg");
        const v = ops.add(
          ops.mul(state[1], beta2),
          ops.mul(ops.mul(g, g), 1 - beta2),
          "exp_avg_sq",
        );
        const denom = ops.add(ops.div(ops.sqrt(v), sqrtBiasCorrection2), eps);
        const newParam = ops.sub(p, ops.mul(ops.div(m, denom), stepSize), "param");
        return { param: newParam, state: [m, v] };
      });
    },
  };
}
