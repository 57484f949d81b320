/**
 * Mixed-precision training steps: float16 compute in the matrix ops (Conv,
 * MatMul, Gemm, as PyTorch's autocast), float32 master weights, BN and loss,
 * and loss scaling with a skipped update when a gradient overflows.
 *
 * Two compute modes:
 * - `float16`: the op's inputs are cast to float16, the op (and its gradient,
 *   through the Cast gradient rule) runs in float16, the output is cast back.
 *   This is the graph for CUDA. ONNX Runtime 1.29's CPU provider has no
 *   float16 Conv or ConvTranspose kernel (MatMul and Gemm it has): it runs
 *   those in float32 through inserted casts and drops the rounding, so on CPU
 *   this graph does not behave like float16.
 * - `float16_simulated`: each input and the output of the op is rounded to
 *   float16 and back (Cast to float16, Cast to float32) and the op runs in
 *   float32. The values entering and leaving the op, and by the Cast gradient
 *   rule the gradients flowing back through it, are rounded exactly as in
 *   float16 compute (including overflow to ±inf above 65504); only the
 *   accumulation inside the op is float32, as float16 GEMM/conv kernels
 *   accumulate anyway. This is the mode the CPU tests run.
 *
 * Loss scaling: the gradient walk starts from S instead of 1 (gradients of
 * S·loss), the gradients are multiplied by 1/S before the optimizer, and when
 * any of them is inf or NaN the parameters and optimizer state keep their
 * values (BN statistics are updated, as with torch's GradScaler). Dynamic
 * scaling follows torch.cuda.amp.GradScaler: S is carried between steps
 * (`amp.loss_scale`), halved on overflow, doubled after `growthInterval`
 * good steps in a row (counted in `amp.good_steps`).
 */
import {
  buildContrastiveGraph,
  type ContrastiveSpec,
  type ContrastiveStep,
} from "../methods/contrastive.ts";
import { Graph, type Node, ops, type Tensor } from "../onnx/mod.ts";
import type { GraphOptimizer } from "../optim/mod.ts";
import type { HostTensor } from "../runtime/host_tensor.ts";
import {
  buildFusedStep,
  type FusedStepLayout,
  type FusedStepSpec,
  nextName,
} from "./fused_step.ts";
import { copyGraph } from "./graph_copy.ts";

/** How the matrix ops compute. */
export type HalfCompute = "float16" | "float16_simulated";

/** The compute modes, for config checks. */
export const HALF_COMPUTE_MODES: readonly HalfCompute[] = ["float16", "float16_simulated"];

/** Ops run in float16 by default (PyTorch autocast's matrix ops). */
export const HALF_OPS: readonly string[] = ["Conv", "MatMul", "Gemm"];

/** A fixed loss scale. */
export interface StaticLossScaling {
  kind: "static";
  scale: number;
}

/** torch.cuda.amp.GradScaler's dynamic loss scale; defaults are torch's. */
export interface DynamicLossScaling {
  kind: "dynamic";
  /** Scale of the first step (default 65536). */
  initialScale?: number;
  /** Factor after `growthInterval` good steps (default 2). */
  growthFactor?: number;
  /** Factor after an overflow (default 0.5). */
  backoffFactor?: number;
  /** Good steps in a row before growing (default 2000). */
  growthInterval?: number;
}

/** Loss scaling of a mixed-precision step. */
export type LossScaling = StaticLossScaling | DynamicLossScaling;

/** Options of a mixed-precision step. */
export interface MixedPrecisionOptions {
  compute: HalfCompute;
  lossScaling: LossScaling;
  /** Op types computed in float16 (default {@link HALF_OPS}). */
  ops?: readonly string[];
}

/** Carried loss scale of dynamic scaling (float32 scalar). */
export const LOSS_SCALE = "amp.loss_scale";
/** Carried count of good steps since the last change of the scale (float32 scalar, starts at 0). */
export const GOOD_STEPS = "amp.good_steps";
/** Extra output: 1 when every gradient was finite and the update was applied, else 0. */
export const GRADS_FINITE = "amp.grads_finite";

function positive(
  where: string,
  key: string,
  value: unknown,
  fallback: number,
  integer = false,
): number {
  const v = value ?? fallback;
  if (typeof v !== "number" || !Number.isFinite(v) || v <= 0 || (integer && !Number.isInteger(v))) {
    throw new Error(
      `${where}.${key}: expected a ${integer ? "whole " : ""}number > 0, got ${
        JSON.stringify(value)
      }`,
    );
  }
  return v;
}

/** Loss scaling with its defaults filled in; throws an Error naming the key on a bad value. */
export function resolveLossScaling(
  scaling: LossScaling,
  where = "loss_scaling",
): Required<DynamicLossScaling> | StaticLossScaling {
  if (scaling?.kind === "static") {
    return { kind: "static", scale: positive(where, "scale", scaling.scale, NaN) };
  }
  if (scaling?.kind !== "dynamic") {
    throw new Error(
      `${where}.kind: expected "static" or "dynamic", got ${
        JSON.stringify((scaling as { kind?: unknown })?.kind)
      }`,
    );
  }
  const backoff = positive(where, "backoffFactor", scaling.backoffFactor, 0.5);
  if (backoff >= 1) {
    throw new Error(`${where}.backoffFactor: expected a number in (0, 1), got ${backoff}`);
  }
  const growth = positive(where, "growthFactor", scaling.growthFactor, 2);
  if (growth < 1) throw new Error(`${where}.growthFactor: expected a number >= 1, got ${growth}`);
  return {
    kind: "dynamic",
    initialScale: positive(where, "initialScale", scaling.initialScale, 65536),
    growthFactor: growth,
    backoffFactor: backoff,
    growthInterval: positive(where, "growthInterval", scaling.growthInterval, 2000, true),
  };
}

/**
 * A copy of `source` (forward graph, before gradients) whose `ops` compute in
 * float16 or simulated float16; `map` gives the copy of any source value
 * (inputs keep their names, so parameters keep theirs).
 */
export function halfPrecisionGraph(
  source: Graph,
  compute: HalfCompute,
  opTypes: readonly string[] = HALF_OPS,
): { graph: Graph; map: (t: Tensor) => Tensor } {
  if (!HALF_COMPUTE_MODES.includes(compute)) {
    throw new Error(
      `precision.compute: expected one of ${HALF_COMPUTE_MODES.join(", ")}, got ${
        JSON.stringify(compute)
      }`,
    );
  }
  const graph = new Graph(source.name);
  const inputs = new Map(source.inputs.map((t) => [t, graph.input(t.name, t.dtype, t.shape)]));
  const half = new Set(opTypes);
  const roundTrip = (t: Tensor) => ops.cast(ops.cast(t, "float16"), "float32");
  const rewrite = (node: Node, mapped: (Tensor | null)[]): Tensor[] | undefined => {
    if (!half.has(node.opType)) return undefined;
    for (const t of mapped) {
      if (t && t.dtype !== "float32") {
        throw new Error(
          `mixed precision: ${node.opType} node ${node.name} reads ${t.name} of dtype ${t.dtype}; only float32 graphs are converted`,
        );
      }
    }
    return graph.scope(`amp/${node.name}`, () => {
      const simulated = compute === "float16_simulated";
      const operands = mapped.map((
        t,
      ) => (t ? (simulated ? roundTrip(t) : ops.cast(t, "float16")) : null));
      const out = graph.node(node.opType, operands, node.attrs, {
        name: node.opType.toLowerCase(),
        outputs: node.outputs.length,
      });
      return out.map((y) => (simulated ? roundTrip(y) : ops.cast(y, "float32")));
    });
  };
  const copies = copyGraph(source, graph, { input: (t) => inputs.get(t)!, rewrite });
  const map = (t: Tensor): Tensor => {
    const copy = copies.get(t) ?? inputs.get(t);
    if (!copy) throw new Error(`mixed precision: ${t.name} is not a value of graph ${source.name}`);
    return copy;
  };
  return { graph, map };
}

/**
 * {@link buildFusedStep} with loss scaling: gradients of S·loss, unscaled by
 * 1/S, the update applied only when all of them are finite; for dynamic
 * scaling S and the good-step count are carried values. Outputs as the fused
 * step (`loss` unscaled) plus the extra {@link GRADS_FINITE}.
 */
export function buildLossScaledStep(
  spec: FusedStepSpec,
  lossScaling: LossScaling,
): FusedStepLayout {
  const { graph, loss } = spec;
  if (loss.dtype !== "float32") {
    throw new Error(`loss scaling: loss ${loss.name} must be float32, got ${loss.dtype}`);
  }
  const scaling = resolveLossScaling(lossScaling);
  const dynamic = scaling.kind === "dynamic";
  const scale = dynamic
    ? graph.input(LOSS_SCALE, "float32", [])
    : graph.constant(scaling.scale, "float32", []);
  const goodSteps = dynamic ? graph.input(GOOD_STEPS, "float32", []) : undefined;
  let finite: Tensor | undefined;
  const layout = buildFusedStep({
    ...spec,
    gradientSeed: scale,
    prepareGradients: (scaled) =>
      graph.scope("loss_scaling", () => {
        const inverse = ops.reciprocal(scale);
        const grads = scaled.map((g) => ops.mul(g, inverse));
        const sums = grads.map((g) => ops.reduceSum(g, undefined, false));
        const total = sums.length === 1 ? sums[0] : ops.sum(sums);
        finite = ops.not(ops.or(graph.op("IsNaN", [total]), graph.op("IsInf", [total])));
        return { grads, apply: finite };
      }),
  });
  const { carried, extras } = layout;
  if (dynamic && goodSteps) {
    graph.scope("loss_scaling", () => {
      const next = ops.add(goodSteps, 1);
      const grow = ops.greaterOrEqual(next, scaling.growthInterval);
      const zero = ops.scalarLike(goodSteps, 0);
      const newScale = ops.where(
        finite!,
        ops.where(grow, ops.mul(scale, scaling.growthFactor), scale),
        ops.mul(scale, scaling.backoffFactor),
      );
      graph.output(newScale, nextName(LOSS_SCALE));
      graph.output(ops.where(finite!, ops.where(grow, zero, next), zero), nextName(GOOD_STEPS));
    });
    // The scale must be given (see lossScaleValues); the count starts at 0 like optimizer state.
    carried.push({
      input: LOSS_SCALE,
      output: nextName(LOSS_SCALE),
      dtype: "float32",
      shape: [],
      role: "buffer",
    });
    carried.push({
      input: GOOD_STEPS,
      output: nextName(GOOD_STEPS),
      dtype: "float32",
      shape: [],
      role: "optimizer_state",
    });
  }
  graph.output(ops.cast(finite!, "float32"), GRADS_FINITE);
  extras.push(GRADS_FINITE);
  return layout;
}

/** Initial carried values of the loss scaling (the scale, for dynamic scaling; nothing for static). */
export function lossScaleValues(lossScaling: LossScaling): Map<string, HostTensor> {
  const scaling = resolveLossScaling(lossScaling);
  const values = new Map<string, HostTensor>();
  if (scaling.kind === "dynamic") {
    values.set(LOSS_SCALE, {
      dtype: "float32",
      shape: [],
      data: Float32Array.of(scaling.initialScale),
    });
  }
  return values;
}

/**
 * The mixed-precision twin of `buildContrastiveStep`: the same forward graph
 * with its matrix ops in (simulated) float16, completed by
 * {@link buildLossScaledStep}. Initial values: the parameters and buffers of
 * `step.store` plus {@link lossScaleValues}.
 */
export function buildMixedPrecisionContrastiveStep(
  spec: ContrastiveSpec,
  optimizer: GraphOptimizer,
  options: MixedPrecisionOptions & { outputGradients?: boolean; name?: string },
): ContrastiveStep {
  const built = buildContrastiveGraph(spec, options.name);
  const { graph, map } = halfPrecisionGraph(built.graph, options.compute, options.ops);
  const params = built.params.map((p) => ({ tensor: map(p.tensor), meta: p.meta }));
  const buffers = built.buffers.map((b) => ({
    ...b,
    input: map(b.input),
    updated: map(b.updated),
  }));
  const loss = map(built.loss);
  const perAnchor = map(built.perAnchor);
  const layout = buildLossScaledStep({
    graph,
    loss,
    params,
    buffers,
    optimizer,
    extraOutputs: { per_anchor_loss: perAnchor },
    stepScalars: built.inputs.mu ? [graph.findInput(built.inputs.mu)!] : [],
    outputGradients: options.outputGradients,
  }, options.lossScaling);
  return { ...built, graph, loss, perAnchor, params, buffers, layout };
}
