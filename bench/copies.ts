/**
 * What the host↔runtime copies of the fused step cost, and how much several
 * steps per run (an ONNX Loop, src/train/multi_step.ts) save.
 *
 *   deno run -A bench/copies.ts                       # ResNet-18 cifar, batches 32 and 256, K 1/4/8 at 32
 *   deno run -A bench/copies.ts --width 0.25 --batches 32 --ks 1,4,8
 *   deno run -A bench/copies.ts --device cuda --batches 256,512 --loop-batch 512
 *
 * Table 1, per batch: MB fed and fetched per step (carried = parameters, BN
 * statistics and momenta, each way; plus the two views), the median time of
 * a copy-only twin of the step (same inputs and outputs, every carried value
 * through an Identity, the views touched by a one-element slice, no other
 * compute), the median full step, and the twin's share of the step.
 *
 * Table 2, at `--loop-batch`: the plain single step, then K steps per run
 * through the Loop for each K of `--ks`: median ms per step (run time / K),
 * views/s at that median, the copy-only twin of the K-step graph per step
 * and its share, and the speed-up over the plain step.
 *
 * onnxruntime-node 1.29.0 offers no way to keep outputs on the GPU between
 * runs for the CUDA provider: its `preferredOutputLocation` session option
 * and IO binding accept only 'cpu' and 'gpu-buffer', and 'gpu-buffer' is
 * WebGPU's buffer ("WebGPU_Buf" memory info); 'cpu-pinned' tensors are not
 * accepted as inputs either. CPU inputs are passed to ORT without a copy
 * (the binding borrows the typed array); every output is copied into a new
 * JS buffer. So on CUDA each run copies all inputs host→device and all
 * outputs device→host, and the Loop is the lever.
 */
import { parseArgs } from "node:util";
import { type BenchConfig, parseBenchConfig } from "../src/bench/config.ts";
import { timeCopies } from "../src/bench/io_cost.ts";
import {
  type PreparedStep,
  prepareStep,
  summariseTimes,
  timeOurStep,
} from "../src/bench/step_timing.ts";
import { Graph, ops, type Tensor } from "../src/onnx/mod.ts";
import type { HostTensor } from "../src/runtime/host_tensor.ts";
import { Session } from "../src/runtime/session.ts";
import {
  buildMultiStep,
  carriedBytes,
  type MultiStep,
  MultiStepRunner,
} from "../src/train/multi_step.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    model: { type: "string", default: "resnet18" },
    stem: { type: "string", default: "cifar" },
    width: { type: "string", default: "1" },
    size: { type: "string", default: "32" },
    batches: { type: "string", default: "32,256" },
    "loop-batch": { type: "string", default: "32" },
    ks: { type: "string", default: "1,4,8" },
    steps: { type: "string", default: "3", short: "s" },
    warmup: { type: "string", default: "1" },
    runs: { type: "string", default: "2" },
    threads: { type: "string", default: "2" },
    device: { type: "string", default: "cpu" },
  },
});

function intList(key: string, text: string): number[] {
  const list = text.split(",").map((s) => Number(s.trim()));
  if (list.length === 0 || list.some((n) => !Number.isInteger(n) || n < 1)) {
    throw new Error(`--${key}: expected comma-separated integers >= 1, got "${text}"`);
  }
  return list;
}

function configFor(batch: number): BenchConfig {
  return parseBenchConfig({
    model: values.model,
    stem: values.stem,
    width: values.width,
    size: values.size,
    batch: String(batch),
    steps: values.steps,
    warmup: values.warmup,
    threads: values.threads,
    device: values.device,
  });
}

const MB = 1e6;

function tensorBytes(t: HostTensor): number {
  return t.data.byteLength;
}

function row(cells: (string | number)[], widths: number[]): string {
  return cells.map((c, i) => String(c).padStart(widths[i])).join("  ");
}

/** The copy-only twin of a multi-step graph: same inputs and outputs, no step compute. */
function multiCopyOnlyGraph(multi: MultiStep): Graph {
  const source = multi.graph;
  const graph = new Graph("multi_copy_only");
  const inputs = new Map<string, Tensor>();
  for (const t of source.inputs) inputs.set(t.name, graph.input(t.name, t.dtype, t.shape));
  const carried = new Map(multi.layout.carried.map((c) => [c.output, c.input]));
  const touched: Tensor[] = [];
  for (const s of [...multi.layout.stacked, ...multi.layout.scalars]) {
    const t = inputs.get(s.name)!;
    touched.push(
      ops.reduceSum(ops.slice(t, t.shape.map(() => 0), t.shape.map(() => 1)), undefined, false),
    );
  }
  for (const out of source.outputs) {
    const from = carried.get(out.name);
    if (from) graph.output(ops.identity(inputs.get(from)!), out.name);
    else if (out.name === multi.layout.loss) {
      const perStep = graph.constant(new Array(multi.layout.steps).fill(0), "float32", [
        multi.layout.steps,
      ]);
      graph.output(ops.add(perStep, ops.sum(touched)), out.name);
    } else {
      const shape = [multi.layout.steps, ...(out.shape.slice(1) as number[])];
      graph.output(
        graph.constant(new Array(shape.reduce((a, b) => a * b, 1)).fill(0), out.dtype, shape),
        out.name,
      );
    }
  }
  return graph;
}

function median(xs: number[]): number {
  return summariseTimes(xs, 1).medianMs;
}

async function timeRuns(
  runOnce: () => Promise<unknown>,
  warmup: number,
  runs: number,
): Promise<number[]> {
  for (let i = 0; i < warmup; i++) await runOnce();
  const ms: number[] = [];
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    await runOnce();
    ms.push(performance.now() - start);
  }
  return ms;
}

const batches = intList("batches", values.batches!);
const ks = intList("ks", values.ks!);
const loopBatch = intList("loop-batch", values["loop-batch"]!)[0];
const runs = intList("runs", values.runs!)[0];
const warmup = Number(values.warmup);

console.log(
  `copies: ${values.model}/${values.stem} width ${values.width} ${values.size}x${values.size}, ` +
    `${values.device}, ${values.threads} threads, medians of ${values.steps} steps after ${warmup} warm-up`,
);
const widths1 = [6, 12, 10, 13, 13, 9];
console.log(
  row(["batch", "carried MB", "views MB", "copy-only ms", "full step ms", "fraction"], widths1),
);
const prepared = new Map<number, PreparedStep>();
for (const batch of batches) {
  const config = configFor(batch);
  const step = prepareStep(config);
  if (batch === loopBatch) prepared.set(batch, step);
  const copies = await timeCopies(config, step);
  const full = await timeOurStep(config, step);
  const viewsBytes = Object.values(step.batch).reduce((n, t) => n + tensorBytes(t), 0);
  console.log(row([
    batch,
    (carriedBytes(step.step.layout.carried) / MB).toFixed(1),
    (viewsBytes / MB).toFixed(1),
    copies.medianMs.toFixed(1),
    full.medianMs.toFixed(1),
    `${(100 * copies.medianMs / full.medianMs).toFixed(1)} %`,
  ], widths1));
}

const config = configFor(loopBatch);
const base = prepared.get(loopBatch) ?? prepareStep(config);
console.log(
  `\nsteps per run at batch ${loopBatch} (${runs} timed runs after ${warmup} warm-up each):`,
);
const widths2 = [10, 11, 10, 13, 9, 8];
console.log(row(["K", "ms/step", "views/s", "copy ms/step", "fraction", "speedup"], widths2));
const single = await timeOurStep(config, base);
const singleCopies = await timeCopies(config, base);
console.log(row([
  "1 (plain)",
  single.medianMs.toFixed(1),
  (2 * loopBatch * 1000 / single.medianMs).toFixed(1),
  singleCopies.medianMs.toFixed(1),
  `${(100 * singleCopies.medianMs / single.medianMs).toFixed(1)} %`,
  "1.00",
], widths2));
const options = { device: config.device, threads: config.threads };
for (const k of ks) {
  const multi = buildMultiStep(base.step.graph, base.step.layout, k, {
    shared: base.step.inputs.masks,
  });
  const session = await Session.create(multi.graph, options);
  const runner = new MultiStepRunner(session, multi.layout, new Map(base.initial));
  const shared = Object.fromEntries(base.step.inputs.masks.map((m) => [m, base.batch[m]]));
  const stepBatches = Array.from({ length: k }, () => base.batch);
  const stepScalars = Array.from({ length: k }, () => base.scalars);
  const runMs = await timeRuns(() => runner.run(stepBatches, stepScalars, shared), warmup, runs);
  await session.release();

  const twin = await Session.create(multiCopyOnlyGraph(multi), options);
  const feeds: Record<string, HostTensor> = { ...shared };
  for (const [name, value] of runner.values) feeds[name] = value;
  for (const s of multi.layout.stacked) {
    const one = base.batch[s.source];
    const data = new Float32Array(one.data.length * k);
    feeds[s.name] = { dtype: s.dtype, shape: [k, ...one.shape], data };
  }
  for (const s of multi.layout.scalars) {
    feeds[s.name] = { dtype: s.dtype, shape: [k], data: new Float32Array(k) };
  }
  const copyMs = await timeRuns(() => twin.run(feeds), warmup, runs);
  await twin.release();

  const perStep = median(runMs) / k;
  const copyPerStep = median(copyMs) / k;
  console.log(row([
    `${k} (Loop)`,
    perStep.toFixed(1),
    (2 * loopBatch * 1000 / perStep).toFixed(1),
    copyPerStep.toFixed(1),
    `${(100 * copyPerStep / perStep).toFixed(1)} %`,
    (single.medianMs / perStep).toFixed(2),
  ], widths2));
}
