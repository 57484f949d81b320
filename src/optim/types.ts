/**
 * The optimizer interface the fused training step builds on: an optimizer
 * adds the update of each parameter to the step graph, so new parameters and
 * new state tensors come out of the graph as outputs.
 */
import type { Tensor } from "../onnx/graph.ts";

/** What an optimizer needs to know about a parameter besides its values. */
export interface ParamMeta {
  /** Parameter name (used for node scopes and messages). */
  name: string;
  /** BN weights/biases and linear/conv biases: excluded from LARS adaptation and weight decay where the optimizer says so */
  isBnOrBias: boolean;
}

/** Names of the optimizers the toolkit implements. */
export const OPTIMIZER_KINDS = ["sgd", "adam", "adamw", "lars"] as const;

/** One of {@link OPTIMIZER_KINDS}. */
export type OptimizerKind = (typeof OPTIMIZER_KINDS)[number];

/** An optimizer whose update is a piece of an ONNX graph. */
export interface GraphOptimizer {
  readonly kind: OptimizerKind;
  /** Per-parameter state slots, each shaped like the parameter, e.g. ["momentum"] or ["exp_avg", "exp_avg_sq"]. Initial value 0. */
  readonly stateSlots: readonly string[];
  /** Per-step scalar graph inputs the update needs, e.g. ["lr"] or ["lr", "step"] (step = 1-based count after this update, as torch's state['step']). */
  readonly scalarInputs: readonly string[];
  /** Adds the update of one parameter to the graph; returns the new parameter and new state tensors (same order as stateSlots). */
  update(
    param: Tensor,
    grad: Tensor,
    state: Tensor[],
    scalars: Record<string, Tensor>,
    meta: ParamMeta,
  ): { param: Tensor; state: Tensor[] };
}

/**
 * SGD as torch.optim.SGD (dampening 0): g ← grad + wd·p;
 * buf ← momentum·buf + g (buf starts at 0, so the first step gives buf = g as in torch);
 * d ← nesterov ? g + momentum·buf : buf; p ← p − lr·d.
 * The learning rate is not part of the config: it is the per-step scalar input `lr`.
 */
export interface SgdConfig {
  kind: "sgd";
  /** Momentum factor (0: plain SGD, no state). */
  momentum: number;
  /** Only 0 is supported (torch's default); any other value is an error. */
  dampening?: number;
  /** L2 penalty added to the gradient, on every parameter. */
  weightDecay: number;
  /** Nesterov momentum (needs momentum > 0). */
  nesterov?: boolean;
}

/**
 * Adam as torch.optim.Adam: weight decay is an L2 term added to the gradient
 * (g ← grad + wd·p). Step size lr/(1 − β1^t), denominator √v/√(1 − β2^t) + eps.
 */
export interface AdamConfig {
  kind: "adam";
  betas: [number, number];
  eps: number;
  weightDecay: number;
}

/** AdamW as torch.optim.AdamW: decoupled decay p ← p·(1 − lr·wd) first, then the Adam update of the raw gradient. */
export interface AdamWConfig {
  kind: "adamw";
  betas: [number, number];
  eps: number;
  weightDecay: number;
}

/**
 * LARS as a wrapper over SGD with momentum (the SimCLR form; see
 * {@link createLars} for the exact formula).
 */
export interface LarsConfig {
  kind: "lars";
  /** Momentum of the SGD underneath. */
  momentum: number;
  /** Weight decay, added to the gradient before the trust ratio (not on excluded parameters). */
  weightDecay: number;
  /** η of the trust ratio η·‖p‖/‖g‖ (0.001 in SimCLR). */
  trustCoefficient: number;
  /** Leave BN and bias parameters out of adaptation and weight decay (default true). */
  excludeBnAndBias?: boolean;
}

/** Configuration of {@link GraphOptimizer}s, discriminated by `kind`. */
export type OptimizerConfig = SgdConfig | AdamConfig | AdamWConfig | LarsConfig;

/** Graph input (and checkpoint tensor) name of an optimizer state slot of a parameter: `<param>.<slot>`. */
export function optimizerStateKey(paramName: string, slot: string): string {
  return `${paramName}.${slot}`;
}
