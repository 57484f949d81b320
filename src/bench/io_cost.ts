/**
 * The cost of moving a step's inputs into ONNX Runtime and its outputs back,
 * measured with a graph that has the step's exact inputs and outputs but
 * (almost) no compute: every carried value passes through an Identity, the
 * per-step inputs (views, masks, scalars) are each read through a one-element
 * slice so that the runtime must place them where the compute runs (the
 * device, on CUDA).
 */
import { Graph, ops, type Tensor } from "../onnx/mod.ts";
import type { HostTensor } from "../runtime/host_tensor.ts";
import { Session } from "../runtime/session.ts";
import { buildMultiStep, type MultiStep, stackTensors, STEPS_DIM } from "../train/multi_step.ts";
import type { BenchConfig } from "./config.ts";
import { type PreparedStep, stepFeeds, type StepTimes, summariseTimes } from "./step_timing.ts";

/** Builds the copy-only twin of a step graph. */
export function copyOnlyGraph(prepared: PreparedStep): Graph {
  const step = prepared.step.graph;
  const graph = new Graph("bench_copy_only");
  const inputs = new Map<string, Tensor>();
  for (const t of step.inputs) inputs.set(t.name, graph.input(t.name, t.dtype, t.shape));
  const carriedByOutput = new Map(prepared.step.layout.carried.map((c) => [c.output, c.input]));
  const carriedInputs = new Set(carriedByOutput.values());

  const touched: Tensor[] = [];
  for (const [name, t] of inputs) {
    if (carriedInputs.has(name)) continue;
    const first = t.rank === 0
      ? t
      : ops.reduceSum(ops.slice(t, t.shape.map(() => 0), t.shape.map(() => 1)), undefined, false);
    touched.push(t.dtype === "float32" ? first : ops.cast(first, "float32"));
  }
  for (const out of step.outputs) {
    const source = carriedByOutput.get(out.name);
    if (source) {
      graph.output(ops.identity(inputs.get(source)!), out.name);
    } else if (out.name === prepared.step.layout.loss && touched.length > 0) {
      graph.output(touched.length === 1 ? ops.identity(touched[0]) : ops.sum(touched), out.name);
    } else {
      const shape = out.shape as number[];
      graph.output(
        graph.constant(new Array(shape.reduce((a, b) => a * b, 1)).fill(0), out.dtype, shape),
        out.name,
      );
    }
  }
  return graph;
}

/**
 * The copy-only twin of a multi-step graph running `steps` steps per run: the
 * same inputs and outputs (carried values through an Identity, the stacks and
 * scalar vectors touched by a one-element slice, per-step outputs as zeros).
 */
export function multiCopyOnlyGraph(multi: MultiStep, steps: number): Graph {
  const source = multi.graph;
  const graph = new Graph("multi_copy_only");
  const inputs = new Map<string, Tensor>();
  for (const t of source.inputs) {
    const shape = t.shape.map((d) => (d === STEPS_DIM ? steps : d));
    inputs.set(t.name, graph.input(t.name, t.dtype, shape));
  }
  const carried = new Map(multi.layout.carried.map((c) => [c.output, c.input]));
  const touched: Tensor[] = [];
  for (const s of [...multi.layout.stacked, ...multi.layout.scalars]) {
    const t = inputs.get(s.name)!;
    const first = ops.reduceSum(
      ops.slice(t, t.shape.map(() => 0), t.shape.map(() => 1)),
      undefined,
      false,
    );
    touched.push(t.dtype === "float32" ? first : ops.cast(first, "float32"));
  }
  for (const out of source.outputs) {
    const from = carried.get(out.name);
    if (from) {
      graph.output(ops.identity(inputs.get(from)!), out.name);
      continue;
    }
    const shape = [steps, ...(out.shape.slice(1) as number[])];
    const zeros = graph.constant(
      new Array(shape.reduce((a, b) => a * b, 1)).fill(0),
      out.dtype,
      shape,
    );
    graph.output(
      out.name === multi.layout.loss && touched.length > 0
        ? ops.add(zeros, ops.sum(touched))
        : zeros,
      out.name,
    );
  }
  return graph;
}

/**
 * Times the copy-only twin of the step as the bench runs it (`stepsPerRun`
 * steps per run), fed the step's initial values (same sizes, same conversion
 * path through {@link Session.run}); times are per step.
 */
export async function timeCopies(config: BenchConfig, prepared: PreparedStep): Promise<StepTimes> {
  const k = config.stepsPerRun;
  const single = stepFeeds(prepared);
  let graph: Graph;
  let feeds: Record<string, HostTensor>;
  if (k === 1) {
    graph = copyOnlyGraph(prepared);
    feeds = single;
  } else {
    const multi = buildMultiStep(prepared.step.graph, prepared.step.layout, k, {
      shared: prepared.step.inputs.masks,
    });
    graph = multiCopyOnlyGraph(multi, k);
    feeds = { ...prepared.shared };
    for (const c of multi.layout.carried) feeds[c.input] = single[c.input];
    for (const s of multi.layout.stacked) {
      feeds[s.name] = stackTensors(new Array(k).fill(single[s.source]), s.source);
    }
    for (const s of multi.layout.scalars) {
      feeds[s.name] = stackTensors(new Array(k).fill(single[s.source]), s.source);
    }
  }
  const session = await Session.create(graph, { device: config.device, threads: config.threads });
  try {
    for (let i = 0; i < Math.max(1, config.warmup); i++) await session.run(feeds);
    const perStepMs: number[] = [];
    const runs = Math.ceil(config.steps / k);
    for (let i = 0; i < runs; i++) {
      const start = performance.now();
      await session.run(feeds);
      const ms = (performance.now() - start) / k;
      for (let j = 0; j < k; j++) perStepMs.push(ms);
    }
    return summariseTimes(perStepMs, config.batch);
  } finally {
    await session.release();
  }
}
