/**
 * The cost of moving a step's inputs into ONNX Runtime and its outputs back,
 * measured with a graph that has the step's exact inputs and outputs but
 * (almost) no compute: every carried value passes through an Identity, the
 * per-step inputs (views, masks, scalars) are each read through a one-element
 * slice so that the runtime must place them where the compute runs (the
 * device, on CUDA).
 */
import { Graph, ops, type Tensor } from "../onnx/mod.ts";
import { Session } from "../runtime/session.ts";
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
 * Times the copy-only twin of the step, fed the step's initial values (same
 * sizes, same conversion path through {@link Session.run}).
 */
export async function timeCopies(config: BenchConfig, prepared: PreparedStep): Promise<StepTimes> {
  const session = await Session.create(copyOnlyGraph(prepared), {
    device: config.device,
    threads: config.threads,
  });
  try {
    const feeds = stepFeeds(prepared);
    for (let i = 0; i < Math.max(1, config.warmup); i++) await session.run(feeds);
    const perStepMs: number[] = [];
    for (let i = 0; i < config.steps; i++) {
      const start = performance.now();
      await session.run(feeds);
      perStepMs.push(performance.now() - start);
    }
    return summariseTimes(perStepMs, config.batch);
  } finally {
    await session.release();
  }
}
