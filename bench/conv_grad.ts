/**
 * Times the alternative Conv gradient graphs of src/autodiff/rules/conv.ts on
 * ORT CPU (2 intra-op threads): forward Conv, input-gradient strategies and
 * weight-gradient strategies, for the shapes of ResNet-18 (CIFAR stem at
 * batch 32, ImageNet stem) and a reference shape. Prints the median of
 * several runs after warm-up, in ms, and checks that the alternatives agree.
 *
 * Run: deno run -A bench/conv_grad.ts [--runs 7] [--threads 2] [--only substring]
 *   [--patience seconds] [--blocks 1,4] [--dw im2colGemm,tapGemm]
 */
import { Graph, ops, type Tensor } from "../src/onnx/mod.ts";
import { Session } from "../src/runtime/session.ts";
import type { HostTensor } from "../src/runtime/host_tensor.ts";
import { Rng } from "../src/util/rng.ts";
import { startLoadMeter } from "../src/bench/cpu_load.ts";
import {
  chooseInputGradStrategy,
  chooseWeightGradStrategy,
  type Conv2dGeometry,
  conv2dGeometry,
  convInputGrad,
  convWeightGrad,
  INPUT_GRAD_STRATEGIES,
  WEIGHT_GRAD_STRATEGIES,
} from "../src/autodiff/rules/conv.ts";

/** One benchmarked convolution. */
interface BenchCase {
  name: string;
  n: number;
  c: number;
  k: number;
  size: number;
  kernel: number;
  stride: number;
  pad: number;
}

const CASES: BenchCase[] = [
  {
    name: "ref 64x128->128 16x16 3x3",
    n: 64,
    c: 128,
    k: 128,
    size: 16,
    kernel: 3,
    stride: 1,
    pad: 1,
  },
  { name: "r18c stem 3->64 32x32 3x3", n: 32, c: 3, k: 64, size: 32, kernel: 3, stride: 1, pad: 1 },
  { name: "r18c 64->64 32x32 3x3", n: 32, c: 64, k: 64, size: 32, kernel: 3, stride: 1, pad: 1 },
  {
    name: "r18c 64->128 32x32 3x3 s2",
    n: 32,
    c: 64,
    k: 128,
    size: 32,
    kernel: 3,
    stride: 2,
    pad: 1,
  },
  {
    name: "r18c 64->128 32x32 1x1 s2",
    n: 32,
    c: 64,
    k: 128,
    size: 32,
    kernel: 1,
    stride: 2,
    pad: 0,
  },
  {
    name: "r18c 128->128 16x16 3x3",
    n: 32,
    c: 128,
    k: 128,
    size: 16,
    kernel: 3,
    stride: 1,
    pad: 1,
  },
  {
    name: "r18c 128->256 16x16 3x3 s2",
    n: 32,
    c: 128,
    k: 256,
    size: 16,
    kernel: 3,
    stride: 2,
    pad: 1,
  },
  {
    name: "r18c 128->256 16x16 1x1 s2",
    n: 32,
    c: 128,
    k: 256,
    size: 16,
    kernel: 1,
    stride: 2,
    pad: 0,
  },
  { name: "r18c 256->256 8x8 3x3", n: 32, c: 256, k: 256, size: 8, kernel: 3, stride: 1, pad: 1 },
  {
    name: "r18c 256->512 8x8 3x3 s2",
    n: 32,
    c: 256,
    k: 512,
    size: 8,
    kernel: 3,
    stride: 2,
    pad: 1,
  },
  {
    name: "r18c 256->512 8x8 1x1 s2",
    n: 32,
    c: 256,
    k: 512,
    size: 8,
    kernel: 1,
    stride: 2,
    pad: 0,
  },
  { name: "r18c 512->512 4x4 3x3", n: 32, c: 512, k: 512, size: 4, kernel: 3, stride: 1, pad: 1 },
  {
    name: "imagenet stem 3->64 224 7x7 s2",
    n: 32,
    c: 3,
    k: 64,
    size: 224,
    kernel: 7,
    stride: 2,
    pad: 3,
  },
];

let BATCH_BLOCKS = [1];
let PATIENCE_MS = 60_000;
let WEIGHT_FILTER: string | undefined;

function parseArgs(args: string[]): { runs: number; threads: number; only?: string } {
  const out: { runs: number; threads: number; only?: string } = { runs: 7, threads: 2 };
  for (let i = 0; i < args.length; i += 2) {
    const [flag, value] = [args[i], args[i + 1]];
    if (flag === "--runs") out.runs = Number(value);
    else if (flag === "--threads") out.threads = Number(value);
    else if (flag === "--only") out.only = value;
    else if (flag === "--patience") PATIENCE_MS = Number(value) * 1000;
    else if (flag === "--blocks") BATCH_BLOCKS = value.split(",").map(Number);
    else if (flag === "--dw") WEIGHT_FILTER = value;
    else {throw new Error(
        `bench/conv_grad.ts: unknown flag ${flag} (expected --runs, --threads, --only)`,
      );}
  }
  return out;
}

function randomHost(rng: Rng, shape: number[]): HostTensor {
  const count = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(count);
  // A block of normals repeated keeps set-up fast for the large shapes; timing does not depend on values.
  const block = Math.min(count, 1 << 16);
  for (let i = 0; i < block; i++) data[i] = rng.normal();
  for (let i = block; i < count; i++) data[i] = data[i - block];
  return { dtype: "float32", shape, data };
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

type Build = (x: Tensor, w: Tensor, dy: Tensor, geo: Conv2dGeometry) => Tensor;

/** A session for one alternative, with its timings. */
interface Timed {
  label: string;
  session: Session;
  feeds: Record<string, HostTensor>;
  times: number[];
  out: Float32Array;
  /** Runs per timed sample. */
  repeat: number;
}

async function prepare(
  bc: BenchCase,
  label: string,
  build: Build,
  feeds: Record<string, HostTensor>,
  threads: number,
): Promise<Timed> {
  // The forward Conv is not built here: ORT runs every node of a graph, used or not.
  const geo = conv2dGeometryOf(bc);
  const graph = new Graph("bench");
  const x = graph.input("x", "float32", [bc.n, bc.c, bc.size, bc.size]);
  const w = graph.input("w", "float32", [bc.k, bc.c, bc.kernel, bc.kernel]);
  const dy = graph.input("dy", "float32", [bc.n, bc.k, ...geo.outSize]);
  graph.output(build(x, w, dy, geo), "out");
  const session = await Session.create(graph, { threads });
  const used = Object.fromEntries(session.inputNames.map((n) => [n, feeds[n]]));
  let out: Float32Array = new Float32Array(0);
  for (let i = 0; i < 2; i++) out = (await session.run(used)).out.data as Float32Array;
  return { label, session, feeds: used, times: [], out, repeat: 1 };
}

/** CPU cores other processes kept busy while `work` ran, and its wall time in ms. */
async function measure(work: () => Promise<void>): Promise<{ ms: number; otherCores: number }> {
  const otherCores = startLoadMeter();
  const t0 = performance.now();
  await work();
  const ms = performance.now() - t0;
  const cores = otherCores();
  if (cores === null) throw new Error("cannot read /proc/stat to tell how busy the machine was");
  return { ms, otherCores: cores };
}

/** Other processes on an idle machine use about this many cores (kernel threads). */
const QUIET_OTHER_CORES = 0.4;

/**
 * Runs the alternatives round-robin so that load from other processes spreads
 * evenly. A sample repeats a run until it lasts ≥ 150 ms; samples during which
 * other processes kept more than {@link QUIET_OTHER_CORES} busy are dropped and
 * taken again, for at most `patienceMs`; after that the least disturbed ones fill in.
 * Returns how many samples had to be kept although disturbed.
 */
async function timeAll(alternatives: Timed[], runs: number, patienceMs: number): Promise<number> {
  for (const alt of alternatives) {
    const t0 = performance.now();
    await alt.session.run(alt.feeds);
    alt.repeat = Math.max(1, Math.ceil(150 / (performance.now() - t0)));
  }
  const disturbedSamples = new Map<Timed, { ms: number; otherCores: number }[]>(
    alternatives.map((a) => [a, []]),
  );
  const start = performance.now();
  while (
    performance.now() - start < patienceMs && alternatives.some((a) => a.times.length < runs)
  ) {
    for (const alt of alternatives.filter((a) => a.times.length < runs)) {
      const m = await measure(async () => {
        for (let i = 0; i < alt.repeat; i++) await alt.session.run(alt.feeds);
      });
      if (m.otherCores <= QUIET_OTHER_CORES) alt.times.push(m.ms / alt.repeat);
      else disturbedSamples.get(alt)!.push(m);
    }
  }
  let kept = 0;
  for (const alt of alternatives) {
    const spare = disturbedSamples.get(alt)!.sort((a, b) => a.otherCores - b.otherCores);
    while (alt.times.length < runs && spare.length > 0) {
      alt.times.push(spare.shift()!.ms / alt.repeat);
      kept++;
    }
    await alt.session.release();
  }
  return kept;
}

function maxRelDiff(a: Float32Array, b: Float32Array): number {
  let scale = 0;
  let diff = 0;
  for (let i = 0; i < a.length; i++) {
    scale = Math.max(scale, Math.abs(b[i]));
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
  }
  return diff / (scale || 1);
}

function applicable(strategy: string, bc: BenchCase): boolean {
  if (strategy === "pointwise") return bc.kernel === 1 && bc.pad === 0;
  return true;
}

/** Timing of one alternative: median and minimum over the runs, ms. */
interface Row {
  label: string;
  median: number;
  min: number;
}

async function benchCase(
  bc: BenchCase,
  runs: number,
  threads: number,
): Promise<{ rows: Row[]; disturbed: number }> {
  const rng = new Rng(7, bc.name);
  const geo = conv2dGeometryOf(bc);
  const feeds = {
    x: randomHost(rng, [bc.n, bc.c, bc.size, bc.size]),
    w: randomHost(rng, [bc.k, bc.c, bc.kernel, bc.kernel]),
    dy: randomHost(rng, [bc.n, bc.k, ...geo.outSize]),
  };
  const alternatives: Timed[] = [];
  const forward: Build = (x, w, _dy, g) =>
    ops.conv(x, w, null, { strides: g.strides, pads: g.pads });
  alternatives.push(await prepare(bc, "fwd", forward, feeds, threads));
  const inputChoice = chooseInputGradStrategy(geo);
  const weightChoice = chooseWeightGradStrategy(geo);
  const groups: Timed[][] = [[], []];
  for (const s of INPUT_GRAD_STRATEGIES.filter((s) => applicable(s, bc))) {
    const build: Build = (_x, w, dy, g) => convInputGrad(dy, w, g, s);
    groups[0].push(
      await prepare(bc, `dx:${s}${s === inputChoice ? "*" : ""}`, build, feeds, threads),
    );
  }
  for (
    const s of WEIGHT_GRAD_STRATEGIES.filter((s) =>
      !WEIGHT_FILTER || WEIGHT_FILTER.split(",").includes(s)
    )
  ) {
    for (const blocks of BATCH_BLOCKS) {
      const build: Build = (x, _w, dy, g) => convWeightGrad(x, dy, g, s, blocks);
      const label = `dw:${s}${blocks > 1 ? `/${blocks}` : ""}${s === weightChoice ? "*" : ""}`;
      groups[1].push(await prepare(bc, label, build, feeds, threads));
    }
  }
  for (const group of groups) {
    for (const alt of group) {
      const diff = maxRelDiff(alt.out, group[0].out);
      if (diff > 1e-4) {
        throw new Error(`${bc.name}: ${alt.label} differs from ${group[0].label} by ${diff}`);
      }
    }
  }
  alternatives.push(...groups[0], ...groups[1]);
  const disturbed = await timeAll(alternatives, runs, PATIENCE_MS);
  const rows = alternatives.map((a) => ({
    label: a.label,
    median: median(a.times),
    min: Math.min(...a.times),
  }));
  return { rows, disturbed };
}

function conv2dGeometryOf(bc: BenchCase): Conv2dGeometry {
  const graph = new Graph("geometry");
  const x = graph.input("x", "float32", [bc.n, bc.c, bc.size, bc.size]);
  const w = graph.input("w", "float32", [bc.k, bc.c, bc.kernel, bc.kernel]);
  const p = bc.pad;
  return conv2dGeometry(x, w, { strides: [bc.stride, bc.stride], pads: [p, p, p, p] });
}

if (import.meta.main) {
  const { runs, threads, only } = parseArgs(Deno.args);
  console.log(
    `ORT CPU, ${threads} threads, ${runs} interleaved runs after 2 warm-up runs: median (min) ms; * = used by the rule`,
  );
  for (const bc of CASES.filter((c) => !only || c.name.includes(only))) {
    const { rows, disturbed } = await benchCase(bc, runs, threads);
    const note = disturbed > 0 ? ` (${disturbed} samples taken while other processes ran)` : "";
    console.log(`\n${bc.name}${note}`);
    for (const r of rows) {
      console.log(
        `  ${r.label.padEnd(24)} ${r.median.toFixed(1).padStart(8)} (${r.min.toFixed(1)})`,
      );
    }
  }
}
