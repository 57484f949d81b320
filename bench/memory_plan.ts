/**
 * Where the memory of a training step goes: runs one profiled step of the
 * bench model in ONNX Runtime, takes the execution order and every node's
 * output sizes from ORT's profiler and the tensor edges from ORT's optimized
 * model, and replays the step: a tensor lives from the node that makes it to
 * the last node that reads it (graph inputs and outputs for the whole run).
 * Prints the peak of live intermediate bytes, what is live at the peak
 * (grouped by the kind of node that made it: forward value saved for the
 * backward, backward temporary, ...) and the largest single tensors.
 *
 *   deno run -A bench/memory_plan.ts --batch 32 [--model resnet50 --stem imagenet] [--method sdclr]
 *
 * The replay ignores ORT's in-place reuse and the arena's rounding, so it
 * bounds what ORT's planner needs; the process's peak RSS (also printed) is
 * the real figure.
 */
import { parseArgs } from "node:util";
import * as ort from "onnxruntime-node";
import onnxProto from "onnx-proto";
import { parseBenchConfig } from "../src/bench/config.ts";
import { peakRssBytes, prepareStep, stepFeeds } from "../src/bench/step_timing.ts";
import { sessionModelBytes, toOrt } from "../src/runtime/session.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    model: { type: "string" },
    stem: { type: "string" },
    width: { type: "string" },
    method: { type: "string" },
    loss: { type: "string" },
    batch: { type: "string" },
    size: { type: "string" },
    threads: { type: "string", default: "2" },
    top: { type: "string", default: "25" },
    "no-arena": { type: "boolean", default: false },
    "no-mem-pattern": { type: "boolean", default: false },
    keep: { type: "string" },
  },
});
const config = parseBenchConfig({ ...values, threads: values.threads });
const prepared = prepareStep(config);
const dir = values.keep ?? await Deno.makeTempDir({ prefix: "memory_plan_" });
await Deno.mkdir(dir, { recursive: true });
const optimizedPath = `${dir}/optimized.onnx`;
const session = await ort.InferenceSession.create(
  await sessionModelBytes(prepared.step.graph, { device: config.device }),
  {
    graphOptimizationLevel: "all",
    intraOpNumThreads: config.threads,
    interOpNumThreads: 1,
    executionMode: "sequential",
    enableCpuMemArena: !values["no-arena"],
    enableMemPattern: !values["no-mem-pattern"],
    executionProviders: ["cpu"],
    enableProfiling: true,
    profileFilePrefix: `${dir}/step`,
    optimizedModelFilePath: optimizedPath,
  },
);
const feeds = stepFeeds(prepared);
const ortFeeds: Record<string, ort.Tensor> = {};
for (const name of session.inputNames) ortFeeds[name] = toOrt(feeds[name]);
const t0 = performance.now();
await session.run(ortFeeds);
const firstMs = performance.now() - t0;
const t1 = performance.now();
await session.run(ortFeeds);
const secondMs = performance.now() - t1;
session.endProfiling();
const rss = peakRssBytes();

interface Event {
  cat: string;
  name: string;
  dur: number;
  args?: {
    op_name?: string;
    output_size?: string;
    output_type_shape?: Record<string, number[]>[];
  };
}
const profileFile = [...Deno.readDirSync(dir)].find((f) => f.name.endsWith(".json"))!;
const events = JSON.parse(await Deno.readTextFile(`${dir}/${profileFile.name}`)) as Event[];
const runs = events.map((e, i) => (e.cat === "Session" && e.name === "model_run" ? i : -1))
  .filter((i) => i >= 0);
// The last run's node events (model_run is logged at its end).
const lastRun = events.slice(runs[0] + 1, runs[1]);
const order: { node: string; op: string; outputs: number[] }[] = [];
for (const e of lastRun) {
  if (e.cat !== "Node" || !e.name.endsWith("_kernel_time")) continue;
  const shapes = e.args?.output_type_shape ?? [];
  const outputs = shapes.map((s) => {
    const [type, dims] = Object.entries(s)[0] ?? ["float", []];
    const bytes = type === "double" || type === "int64" ? 8 : type === "bool" ? 1 : 4;
    return dims.reduce((a, b) => a * b, 1) * bytes;
  });
  order.push({
    node: e.name.slice(0, -"_kernel_time".length),
    op: e.args?.op_name ?? "?",
    outputs,
  });
}

const model = onnxProto.onnx.ModelProto.decode(await Deno.readFile(optimizedPath));
const protoNodes = new Map(model.graph!.node!.map((n) => [n.name!, n]));
const graphOutputs = new Set(model.graph!.output!.map((o) => o.name!));
const lastUse = new Map<string, number>();
order.forEach((o, i) => {
  for (const input of protoNodes.get(o.node)?.input ?? []) if (input) lastUse.set(input, i);
});

/** What kind of value a tensor is, from the node that made it. */
function kindOf(node: string, op: string): string {
  const phase = node.startsWith("grad/")
    ? "backward"
    : node.startsWith("optimizer/")
    ? "update"
    : "forward";
  return `${phase} ${op}`;
}

const live = new Map<string, { bytes: number; kind: string; node: string }>();
let liveBytes = 0;
let peak = 0;
let peakAt = -1;
let peakSnapshot: { name: string; bytes: number; kind: string; node: string }[] = [];
const largest: { name: string; bytes: number; kind: string }[] = [];
order.forEach((o, i) => {
  const proto = protoNodes.get(o.node);
  const outNames = proto?.output ?? [];
  o.outputs.forEach((bytes, k) => {
    const name = outNames[k];
    if (!name) return;
    live.set(name, { bytes, kind: kindOf(o.node, o.op), node: o.node });
    liveBytes += bytes;
    largest.push({ name, bytes, kind: kindOf(o.node, o.op) });
  });
  if (liveBytes > peak) {
    peak = liveBytes;
    peakAt = i;
    peakSnapshot = [...live].map(([name, v]) => ({ name, ...v }));
  }
  for (const input of proto?.input ?? []) {
    if (!input || lastUse.get(input) !== i || graphOutputs.has(input)) continue;
    const v = live.get(input);
    if (v) {
      liveBytes -= v.bytes;
      live.delete(input);
    }
  }
  for (const name of outNames) {
    if (name && !lastUse.has(name) && !graphOutputs.has(name) && live.has(name)) {
      liveBytes -= live.get(name)!.bytes;
      live.delete(name);
    }
  }
});

const mb = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
const inputBytes = Object.values(feeds).reduce((a, t) => a + t.data.byteLength, 0);
console.log(
  `${config.model}/${config.stem} ${config.method} batch ${config.batch}: ${order.length} nodes run; ` +
    `first run ${firstMs.toFixed(0)} ms, second ${secondMs.toFixed(0)} ms; peak RSS ${
      rss === null ? "?" : mb(rss)
    }; inputs ${mb(inputBytes)}`,
);
console.log(
  `replayed peak of live intermediates: ${mb(peak)} at node ${peakAt} (${order[peakAt]?.node})`,
);
const byKind = new Map<string, { bytes: number; count: number }>();
for (const t of peakSnapshot) {
  const e = byKind.get(t.kind) ?? { bytes: 0, count: 0 };
  e.bytes += t.bytes;
  e.count++;
  byKind.set(t.kind, e);
}
console.log("live at the peak, by the kind of node that made it:");
for (
  const [kind, e] of [...byKind].sort((a, b) => b[1].bytes - a[1].bytes).slice(
    0,
    Number(values.top),
  )
) {
  console.log(`  ${mb(e.bytes).padStart(12)}  ${String(e.count).padStart(4)} × ${kind}`);
}
console.log("largest tensors live at the peak:");
for (const t of peakSnapshot.sort((a, b) => b.bytes - a.bytes).slice(0, Number(values.top))) {
  console.log(`  ${mb(t.bytes).padStart(12)}  ${t.kind}  ${t.name}`);
}
await session.release();
if (!values.keep) await Deno.remove(dir, { recursive: true });
