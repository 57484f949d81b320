/**
 * What the host↔runtime copies of the fused step cost, and how much several
 * steps per run (an ONNX Loop, src/train/multi_step.ts) save.
 *
 *   deno run -A bench/copies.ts                       # ResNet-18 cifar, batches 32 and 256, K 1/4/8/16 at 32
 *   deno run -A bench/copies.ts --width 0.25 --batches 32 --ks 1,4,8
 *   deno run -A bench/copies.ts --device cuda --batches 256,512 --loop-batch 512
 *   deno run -A bench/copies.ts --batches none --ks 8   # one K per process: its own peak RSS
 *
 * Table 1, per batch: MB fed and fetched per step (carried = parameters, BN
 * statistics and momenta, each way; plus the two views), the median time of
 * a copy-only twin of the step (same inputs and outputs, every carried value
 * through an Identity, the views touched by a one-element slice, no other
 * compute), the median full step, and the twin's share of the step.
 *
 * Table 2, at `--loop-batch`: for each K of `--ks`, K steps per run as the
 * runner does it (K = 1: the plain fused step; K > 1: the Loop): median ms
 * per step (run time / K), views/s at that median, the copy-only twin of
 * that graph per step and its share, the speed-up over K = 1, and the
 * process's peak RSS after that K (VmHWM only grows: read it as "at most").
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
import { peakRssBytes, prepareStep, timeOurStep } from "../src/bench/step_timing.ts";
import type { HostTensor } from "../src/runtime/host_tensor.ts";
import { carriedBytes } from "../src/train/multi_step.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    model: { type: "string", default: "resnet18" },
    stem: { type: "string", default: "cifar" },
    width: { type: "string", default: "1" },
    size: { type: "string", default: "32" },
    loss: { type: "string", default: "ntxent" },
    optimizer: { type: "string", default: "sgd" },
    head: { type: "string" },
    batches: { type: "string", default: "32,256" },
    "loop-batch": { type: "string", default: "32" },
    ks: { type: "string", default: "1,4,8,16" },
    steps: { type: "string", default: "16", short: "s" },
    warmup: { type: "string", default: "2" },
    threads: { type: "string", default: "0" },
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

function configFor(batch: number, stepsPerRun: number): BenchConfig {
  return parseBenchConfig({
    model: values.model,
    stem: values.stem,
    width: values.width,
    size: values.size,
    loss: values.loss,
    optimizer: values.optimizer,
    head: values.head,
    batch: String(batch),
    steps: values.steps,
    warmup: values.warmup,
    threads: values.threads,
    device: values.device,
    "steps-per-run": String(stepsPerRun),
  });
}

const MB = 1e6;

function tensorBytes(t: HostTensor): number {
  return t.data.byteLength;
}

function row(cells: (string | number)[], widths: number[]): string {
  return cells.map((c, i) => String(c).padStart(widths[i])).join("  ");
}

// `--batches none` skips table 1 (e.g. to read one K's peak RSS per process).
const batches = values.batches === "none" ? [] : intList("batches", values.batches!);
const ks = intList("ks", values.ks!);
const loopBatch = intList("loop-batch", values["loop-batch"]!)[0];

console.log(
  `copies: ${values.model}/${values.stem} width ${values.width} ${values.size}x${values.size}, ` +
    `${values.loss}, ${values.optimizer}, ${values.device}, threads ${values.threads} (0: default), ` +
    `medians of ${values.steps} steps after ${values.warmup} warm-up`,
);
const widths1 = [6, 12, 10, 13, 13, 9];
if (batches.length > 0) {
  console.log(
    row(["batch", "carried MB", "views MB", "copy-only ms", "full step ms", "fraction"], widths1),
  );
}
for (const batch of batches) {
  const config = configFor(batch, 1);
  const step = prepareStep(config);
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

console.log(`\nsteps per run at batch ${loopBatch}:`);
const widths2 = [10, 11, 10, 13, 9, 8, 12];
console.log(
  row(["K", "ms/step", "views/s", "copy ms/step", "fraction", "speedup", "peak RSS MB"], widths2),
);
let baseline: number | null = null;
for (const k of ks) {
  const config = configFor(loopBatch, k);
  const prepared = prepareStep(config);
  const timed = await timeOurStep(config, prepared);
  const copies = await timeCopies(config, prepared);
  baseline ??= timed.medianMs;
  console.log(row([
    k === 1 ? "1 (plain)" : `${k} (Loop)`,
    timed.medianMs.toFixed(1),
    timed.viewsPerSecond.toFixed(1),
    copies.medianMs.toFixed(1),
    `${(100 * copies.medianMs / timed.medianMs).toFixed(1)} %`,
    (baseline / timed.medianMs).toFixed(2),
    ((peakRssBytes() ?? NaN) / MB).toFixed(0),
  ], widths2));
}
