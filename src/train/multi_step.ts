/**
 * Several training steps per ONNX Runtime run: an ONNX `Loop` whose body is
 * the fused step. onnxruntime-node copies every input and output of a run
 * (on CUDA: host↔device); carrying parameters, buffers and optimizer state
 * through the loop pays that copy once per K steps instead of once per step.
 *
 * The outer graph takes the carried values (same names as the single step),
 * each per-step input stacked over the steps of the run (`<name>_steps`,
 * [steps, ...]), each per-step scalar as a [steps] vector (`<name>_steps`),
 * and inputs shared by all steps under their own names. The number of steps
 * is the stacks' first dimension, so one graph (one session) runs any number
 * of steps: a run of fewer than K steps (the end of an epoch, a stop) takes
 * the same path as a full one. Iteration i reads slice i of the stacks with a
 * Gather on the loop counter; the stacks are outer-scope values of the body
 * (ONNX lets a subgraph read any value of its enclosing graph by name), so
 * they are not copied per iteration. Outputs: the carried values after the
 * last step (`<name>_new`, as the single step) and, per step, the loss
 * [steps] and each extra output [steps, ...].
 */
import { allocHost, bytesPerElement, type DType, type HostArray } from "../onnx/dtype.ts";
import { Graph, liveNodes, type Shape, Tensor } from "../onnx/mod.ts";
import type { HostTensor } from "../runtime/host_tensor.ts";
import type { Session } from "../runtime/session.ts";
import type { CarriedValue, FusedStepLayout } from "./fused_step.ts";
import { copyGraph } from "./graph_copy.ts";

/** Prefix of every value of the loop body (keeps its names apart from the outer graph's). */
const BODY = "step/";

/** A per-step input of the single step, fed to the multi-step graph stacked over the K steps. */
export interface StackedInput {
  /** Input of the multi-step graph, [K, ...shape]. */
  name: string;
  /** Input of the single step it feeds, one slice per step. */
  source: string;
  dtype: DType;
  /** Shape of one step's slice. */
  shape: number[];
}

/** Inputs and outputs of a multi-step graph, for {@link MultiStepRunner}. */
export interface MultiStepLayout {
  /** Most steps per run (K); the graph itself takes any number, the runner enforces this. */
  steps: number;
  /** Carried values, exactly as in the single step (same input and output names). */
  carried: CarriedValue[];
  /** Per-step tensor inputs (views, ...). */
  stacked: StackedInput[];
  /** Per-step scalars (lr, step, μ), each fed as a [K] vector. */
  scalars: { name: string; source: string; dtype: DType }[];
  /** Inputs every step reads unchanged (e.g. SDCLR masks), under their single-step names. */
  shared: string[];
  /** Output holding the K losses. */
  loss: string;
  /** Extra outputs of the single step, each stacked [K, ...]. */
  extras: string[];
}

/** A multi-step graph and its layout. */
export interface MultiStep {
  graph: Graph;
  layout: MultiStepLayout;
}

/** Options of {@link buildMultiStep}. */
export interface MultiStepOptions {
  /** Inputs read unchanged by all K steps instead of stacked per step. */
  shared?: string[];
  /** Name of the outer graph (default "multi_step"). */
  name?: string;
}

/** Symbolic first dimension of the stacked inputs: the steps of one run. */
export const STEPS_DIM = "steps";

/** Name of the stacked input (or [K] scalar vector) feeding step input `name`. */
export function stackedName(name: string): string {
  return `${name}_steps`;
}

function staticShape(t: Tensor, what: string): number[] {
  return t.shape.map((d) => {
    if (typeof d !== "number") {
      throw new Error(`buildMultiStep: ${what} ${t.name} ${t.shapeText} must have a static shape`);
    }
    return d;
  });
}

/** A value of the enclosing graph read by name from inside a subgraph (not a subgraph input). */
function outerScopeValue(body: Graph, outer: Tensor): Tensor {
  return new Tensor(body, outer.name, outer.dtype, outer.shape, "input");
}

/**
 * Builds the graph running up to `steps` fused steps per run (any number per
 * run, in fact: see the module comment): `stepGraph` and `layout` come from
 * {@link buildFusedStep} (the step graph is only read).
 * Every input of the step that is neither carried nor a scalar is stacked per
 * step, except those named in `options.shared`.
 */
export function buildMultiStep(
  stepGraph: Graph,
  layout: FusedStepLayout,
  steps: number,
  options: MultiStepOptions = {},
): MultiStep {
  if (!Number.isInteger(steps) || steps < 1) {
    throw new Error(`buildMultiStep: steps must be an integer >= 1, got ${steps}`);
  }
  const carriedInputs = new Set(layout.carried.map((c) => c.input));
  const scalarNames = new Set(layout.scalars.map((s) => s.name));
  const sharedNames = new Set(options.shared ?? []);
  for (const name of sharedNames) {
    if (!stepGraph.findInput(name)) {
      throw new Error(`buildMultiStep: shared input ${name} is not an input of ${stepGraph.name}`);
    }
    if (carriedInputs.has(name) || scalarNames.has(name)) {
      throw new Error(
        `buildMultiStep: ${name} is carried or a per-step scalar; it cannot be shared`,
      );
    }
  }
  const outputOf = (name: string): Tensor => {
    const t = stepGraph.outputs.find((o) => o.name === name);
    if (!t) throw new Error(`buildMultiStep: ${stepGraph.name} has no output ${name}`);
    return t;
  };

  const outer = new Graph(options.name ?? "multi_step");
  const body = new Graph(`${stepGraph.name}_body`);
  const iteration = body.input(`${BODY}iteration`, "int64", []);
  const condition = body.input(`${BODY}condition`, "bool", []);

  const bodyInputs = new Map<string, Tensor>();
  const outerCarried: Tensor[] = [];
  for (const c of layout.carried) {
    const t = stepGraph.findInput(c.input);
    if (!t) {
      throw new Error(
        `buildMultiStep: carried value ${c.input} is not an input of ${stepGraph.name}`,
      );
    }
    outerCarried.push(outer.input(c.input, c.dtype, c.shape));
    bodyInputs.set(c.input, body.input(`${BODY}${c.input}`, c.dtype, c.shape));
  }

  const stacked: StackedInput[] = [];
  const scalars: MultiStepLayout["scalars"] = [];
  const shared: string[] = [];
  for (const t of stepGraph.inputs) {
    if (carriedInputs.has(t.name)) continue;
    if (sharedNames.has(t.name)) {
      bodyInputs.set(t.name, outerScopeValue(body, outer.input(t.name, t.dtype, t.shape)));
      shared.push(t.name);
      continue;
    }
    const isScalar = scalarNames.has(t.name);
    if (isScalar && t.rank !== 0) {
      throw new Error(
        `buildMultiStep: scalar input ${t.name} has shape ${t.shapeText}, expected []`,
      );
    }
    const shape = staticShape(t, "per-step input");
    const all = outer.input(stackedName(t.name), t.dtype, [STEPS_DIM, ...shape]);
    const slice = body.op(
      "Gather",
      [outerScopeValue(body, all), iteration],
      { axis: 0 },
      `${BODY}${t.name}`,
    );
    bodyInputs.set(t.name, slice);
    if (isScalar) scalars.push({ name: all.name, source: t.name, dtype: t.dtype });
    else stacked.push({ name: all.name, source: t.name, dtype: t.dtype, shape });
  }

  const copies = copyGraph(stepGraph, body, {
    input: (t) => {
      const mapped = bodyInputs.get(t.name);
      if (!mapped) {
        throw new Error(`buildMultiStep: step input ${t.name} has no value in the loop body`);
      }
      return mapped;
    },
    rename: (name) => `${BODY}${name}`,
    nodes: liveNodes(stepGraph),
  });
  const bodyValue = (name: string): Tensor => {
    const source = outputOf(name);
    return copies.get(source) ?? bodyInputs.get(source.name)!;
  };
  body.output(body.op("Identity", [condition], {}, `${BODY}condition_out`));
  for (const c of layout.carried) body.output(bodyValue(c.output), `${BODY}${c.output}`);
  const perStep = [layout.loss, ...layout.extras];
  for (const name of perStep) body.output(bodyValue(name), `${BODY}${name}`);

  // The trip count is the stacks' first dimension (every step graph has a per-step input: lr).
  const first = outer.inputs.find((t) => t.shape[0] === STEPS_DIM);
  if (!first) {
    throw new Error(
      `buildMultiStep: ${stepGraph.name} has no per-step input to count the steps by`,
    );
  }
  const tripCount = outer.op(
    "Gather",
    [outer.op("Shape", [first], {}, "stack_shape"), outer.constant(0, "int64", [])],
    { axis: 0 },
    "step_count",
  );
  const always = outer.constant(1, "bool", []);
  const results = outer.node("Loop", [tripCount, always, ...outerCarried], { body }, {
    name: "loop",
    outputs: layout.carried.length + perStep.length,
    outputNames: [...layout.carried.map((c) => c.output), ...perStep],
  });
  for (const t of results) outer.output(t);
  return {
    graph: outer,
    layout: {
      steps,
      carried: layout.carried,
      stacked,
      scalars,
      shared,
      loss: layout.loss,
      extras: layout.extras,
    },
  };
}

/** Result of one run of steps. */
export interface MultiStepResult {
  /** Loss of each step, in order. */
  losses: number[];
  /** Each extra output, stacked [K, ...]. */
  extras: Record<string, HostTensor>;
}

/** Stacks K equally shaped host tensors into one [K, ...] tensor. */
export function stackTensors(parts: HostTensor[], what: string): HostTensor {
  if (parts.length === 0) throw new Error(`stackTensors: no tensors for ${what}`);
  const first = parts[0];
  const size = first.data.length;
  const data = allocHost(first.dtype, size * parts.length);
  parts.forEach((p, k) => {
    if (p.dtype !== first.dtype || p.shape.join(",") !== first.shape.join(",")) {
      throw new Error(
        `${what}: step ${k} has ${p.dtype} [${p.shape}], step 0 has ${first.dtype} [${first.shape}]`,
      );
    }
    (data as Float32Array).set(p.data as Float32Array, k * size);
  });
  return { dtype: first.dtype, shape: [parts.length, ...first.shape], data };
}

function scalarVector(dtype: DType, values: number[]): HostArray {
  return dtype === "float64" ? Float64Array.from(values) : Float32Array.from(values);
}

/**
 * Fills `values` with the carried values of `carried`: given ones are checked
 * against their shapes, missing optimizer state starts at zero, anything
 * else missing is an error.
 */
export function initCarriedValues(carried: CarriedValue[], values: Map<string, HostTensor>): void {
  for (const c of carried) {
    const given = values.get(c.input);
    const shape = c.shape as number[];
    if (given) {
      if (given.shape.join(",") !== shape.join(",")) {
        throw new Error(
          `${c.input}: initial value has shape [${given.shape}], the graph expects [${shape}]`,
        );
      }
    } else if (c.role === "optimizer_state") {
      values.set(c.input, {
        dtype: c.dtype,
        shape,
        data: allocHost(c.dtype, shape.reduce((a, b) => a * b, 1)),
      });
    } else {
      throw new Error(`no initial value for ${c.role} ${c.input}`);
    }
  }
}

/**
 * Runs a multi-step session: K steps per `session.run`, parameters, buffers
 * and optimizer state carried on the host between runs. `values` is used and
 * updated in place, as {@link StepRunner} does, so a single-step runner on
 * the same map can take the steps left over when an epoch is not a multiple
 * of K.
 */
export class MultiStepRunner {
  constructor(
    readonly session: Session,
    readonly layout: MultiStepLayout,
    readonly values: Map<string, HostTensor>,
  ) {
    initCarriedValues(layout.carried, values);
  }

  /**
   * Runs `batches.length` steps (1 to K): `batches[k]` holds step k's
   * per-step inputs by their single-step names, `scalars[k]` its scalars;
   * `shared` the inputs all steps read.
   */
  async run(
    batches: Record<string, HostTensor>[],
    scalars: Record<string, number>[],
    shared: Record<string, HostTensor> = {},
  ): Promise<MultiStepResult> {
    const k = batches.length;
    if (k < 1 || k > this.layout.steps || scalars.length !== k) {
      throw new Error(
        `multi-step run: expected 1 to ${this.layout.steps} batches and as many scalar sets, got ${batches.length} and ${scalars.length}`,
      );
    }
    const feeds: Record<string, HostTensor> = {};
    for (const [name, value] of this.values) feeds[name] = value;
    for (const s of this.layout.stacked) {
      feeds[s.name] = stackTensors(
        batches.map((b, i) => {
          const t = b[s.source];
          if (!t) throw new Error(`multi-step run: batch ${i} has no input ${s.source}`);
          return t;
        }),
        s.source,
      );
    }
    for (const s of this.layout.scalars) {
      const values = scalars.map((set, i) => {
        const v = set[s.source];
        if (v === undefined) throw new Error(`multi-step run: step ${i} has no scalar ${s.source}`);
        return v;
      });
      feeds[s.name] = { dtype: s.dtype, shape: [k], data: scalarVector(s.dtype, values) };
    }
    for (const name of this.layout.shared) {
      if (!shared[name]) throw new Error(`multi-step run: missing shared input ${name}`);
      feeds[name] = shared[name];
    }
    const out = await this.session.run(feeds);
    for (const c of this.layout.carried) this.values.set(c.input, out[c.output]);
    const extras: Record<string, HostTensor> = {};
    for (const name of this.layout.extras) extras[name] = out[name];
    return { losses: Array.from(out[this.layout.loss].data as Float32Array, Number), extras };
  }
}

/** Bytes of the carried values of a layout (what each run copies in, and again out). */
export function carriedBytes(carried: CarriedValue[]): number {
  let bytes = 0;
  for (const c of carried) {
    const count = (c.shape as Shape).reduce<number>((n, d) => n * (d as number), 1);
    bytes += count * bytesPerElement(c.dtype);
  }
  return bytes;
}
