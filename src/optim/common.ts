/**
 * Shared pieces of the graph optimizers: operand checks, scalar inputs and
 * config value checks with messages that name the key.
 */
import { formatShape, type Graph, type Tensor } from "../onnx/graph.ts";
import * as ops from "../onnx/ops.ts";
import { type DType, isFloat } from "../onnx/dtype.ts";
import type { GraphOptimizer, ParamMeta } from "./types.ts";

/** Throws unless grad and every state tensor match the parameter's dtype and shape. */
export function checkOperands(
  kind: string,
  param: Tensor,
  grad: Tensor,
  state: Tensor[],
  slots: readonly string[],
  meta: ParamMeta,
): void {
  const where = `${kind} update of ${meta.name}`;
  if (!isFloat(param.dtype)) {
    throw new Error(
      `${where}: parameter ${param.name} has dtype ${param.dtype}, expected a float type`,
    );
  }
  if (state.length !== slots.length) {
    throw new Error(
      `${where}: ${state.length} state tensors given, expected ${slots.length} (${
        slots.join(", ") || "none"
      })`,
    );
  }
  const operands: [string, Tensor][] = [
    ["gradient", grad],
    ...slots.map((s, k): [string, Tensor] => [`state ${s}`, state[k]]),
  ];
  for (const [role, t] of operands) {
    if (t.dtype !== param.dtype || formatShape(t.shape) !== formatShape(param.shape)) {
      throw new Error(
        `${where}: ${role} ${t.name} is ${t.dtype} ${t.shapeText}, expected ${param.dtype} ${param.shapeText} like the parameter`,
      );
    }
  }
}

/** The scalar input `name`, cast to `dtype` when it differs. */
export function scalarInput(
  kind: string,
  scalars: Record<string, Tensor>,
  name: string,
  dtype: DType,
): Tensor {
  const t = scalars[name];
  if (!t) {
    throw new Error(
      `${kind} update: missing scalar input "${name}" (given: ${
        Object.keys(scalars).join(", ") || "none"
      })`,
    );
  }
  if (t.rank !== 0) {
    throw new Error(`${kind} update: scalar input "${name}" has shape ${t.shapeText}, expected []`);
  }
  return t.dtype === dtype ? t : ops.cast(t, dtype);
}

/** Checks that `config[key]` is a finite number in [min, max) (or [min, ∞)); returns it. */
export function checkNumber(
  where: string,
  key: string,
  value: unknown,
  min: number,
  maxExclusive = Infinity,
): number {
  if (
    typeof value !== "number" || !Number.isFinite(value) || value < min || value >= maxExclusive
  ) {
    const range = maxExclusive === Infinity ? `>= ${min}` : `in [${min}, ${maxExclusive})`;
    throw new Error(
      `${where}.${key}: expected a finite number ${range}, got ${JSON.stringify(value)}`,
    );
  }
  return value;
}

/** Checks an optional boolean; returns it or the default. */
export function checkBoolean(
  where: string,
  key: string,
  value: unknown,
  fallback: boolean,
): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== "boolean") {
    throw new Error(`${where}.${key}: expected true or false, got ${JSON.stringify(value)}`);
  }
  return value;
}

/** Checks a pair of betas, each in [0, 1). */
export function checkBetas(where: string, value: unknown): [number, number] {
  if (!Array.isArray(value) || value.length !== 2) {
    throw new Error(
      `${where}.betas: expected two numbers [beta1, beta2], got ${JSON.stringify(value)}`,
    );
  }
  return [
    checkNumber(where, "betas[0]", value[0], 0, 1),
    checkNumber(where, "betas[1]", value[1], 0, 1),
  ];
}

/** ‖x‖₂ over all elements, as a scalar. */
export function l2Norm(x: Tensor): Tensor {
  return ops.sqrt(ops.reduceSumSquare(x, undefined, false));
}

/**
 * Values an optimizer derives from its per-step scalar inputs (casts, bias
 * corrections, step sizes, the scalar reshaped to a parameter's rank), built
 * once per graph and shared by every parameter's update instead of once per
 * parameter: ResNet-50 has 161 parameters, so a per-parameter `Pow` is 161
 * nodes run every step for one number.
 *
 * One cache serves every graph the optimizer updates (the runner builds a
 * step per batch size with one optimizer); values are kept per graph.
 */
export class StepScalars {
  readonly #graphs = new WeakMap<Graph, Map<string, Tensor>>();

  constructor(readonly kind: string) {}

  /** The value `key` of `graph`, made by `make` (in the scope `<kind>/step_scalars`) on first use. */
  get(graph: Graph, key: string, make: () => Tensor): Tensor {
    let values = this.#graphs.get(graph);
    if (!values) this.#graphs.set(graph, values = new Map());
    let value = values.get(key);
    if (!value) {
      value = graph.scope(`${this.kind}/step_scalars`, make);
      values.set(key, value);
    }
    return value;
  }

  /**
   * `value` (a rank-0 tensor of `graph`, cached under `key`) reshaped to rank
   * `rank` ([1, …, 1]), once per rank: elementwise ops against a parameter
   * then need no Reshape of their own (see ops' binary).
   */
  ofRank(graph: Graph, key: string, rank: number, value: () => Tensor): Tensor {
    const scalar = this.get(graph, key, value);
    if (rank < 2) return scalar;
    return this.get(
      graph,
      `${key}@rank${rank}`,
      () => ops.reshape(scalar, new Array(rank).fill(1)),
    );
  }
}

/**
 * An optimizer of torch SGD's shape (dampening 0): `gradient` turns each parameter's
 * gradient into the step direction g (weight decay, LARS scaling...); then
 * buf ← momentum·buf + g (buf starts at 0), d ← nesterov ? g + momentum·buf : buf
 * (d = g when momentum is 0), p ← p − lr·d, in a `<kind>/<param>` scope.
 * State: ["momentum"] when momentum > 0, else none. Scalar inputs: ["lr"].
 */
export function momentumSgd(
  kind: "sgd" | "lars",
  momentum: number,
  nesterov: boolean,
  gradient: (param: Tensor, grad: Tensor, meta: ParamMeta) => Tensor,
): GraphOptimizer {
  const stateSlots = momentum > 0 ? ["momentum"] : [];
  // lr (cast and reshaped to each parameter's rank) is shared by all parameters of a graph.
  const shared = new StepScalars(kind);
  return {
    kind,
    stateSlots,
    scalarInputs: ["lr"],
    update(param, grad, state, scalars, meta) {
      checkOperands(kind, param, grad, state, stateSlots, meta);
      const lr = shared.ofRank(
        param.graph,
        `lr/${param.dtype}`,
        param.rank,
        () => scalarInput(kind, scalars, "lr", param.dtype),
      );
      return param.graph.scope(`${kind}/${meta.name}`, () => {
        const g = gradient(param, grad, meta);
        if (momentum === 0) return { param: ops.sub(param, ops.mul(g, lr), "param"), state: [] };
        const buf = ops.add(ops.mul(state[0], momentum), g, "momentum");
        const direction = nesterov ? ops.add(g, ops.mul(buf, momentum)) : buf;
        return { param: ops.sub(param, ops.mul(direction, lr), "param"), state: [buf] };
      });
    },
  };
}
