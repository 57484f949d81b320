/**
 * BatchNorm builders against a plain-TypeScript computation (float64):
 * train-mode output and new running statistics, eval mode on running
 * statistics, symbolic batch, dual-BN naming and bad input.
 */
import { assert, assertAllClose, assertEquals, assertThrowsMessage } from "./assert.ts";
import { Graph, type Shape } from "../src/onnx/mod.ts";
import { Session } from "../src/runtime/session.ts";
import type { HostTensor } from "../src/runtime/host_tensor.ts";
import { batchNorm, exposeBufferUpdates, Module, ParamStore } from "../src/nn/mod.ts";
import { Rng } from "../src/util/rng.ts";

interface BnValues {
  x: number[];
  weight: number[];
  bias: number[];
  runningMean: number[];
  runningVar: number[];
}

function randomValues(shape: number[], seed: number): BnValues {
  const rng = new Rng(seed, "bn_test");
  const c = shape[1];
  const n = shape.reduce((a, b) => a * b, 1);
  const draw = (count: number, f: () => number) => Array.from({ length: count }, f);
  return {
    x: draw(n, () => 3 * rng.normal() + 1),
    weight: draw(c, () => rng.uniformIn(0.5, 1.5)),
    bias: draw(c, () => rng.normal()),
    runningMean: draw(c, () => rng.normal()),
    runningVar: draw(c, () => rng.uniformIn(0.5, 2)),
  };
}

/** Plain BN over axis 1 of [N, C, ...spatial]: output and new running stats as torch computes them. */
function referenceBn(shape: number[], v: BnValues, train: boolean) {
  const [n, c] = shape;
  const spatial = shape.slice(2).reduce((a, b) => a * b, 1);
  const count = n * spatial;
  const at = (i: number, ch: number, s: number) => (i * c + ch) * spatial + s;
  const y = new Array<number>(v.x.length);
  const newMean: number[] = [];
  const newVar: number[] = [];
  for (let ch = 0; ch < c; ch++) {
    let mean = 0;
    for (let i = 0; i < n; i++) for (let s = 0; s < spatial; s++) mean += v.x[at(i, ch, s)];
    mean /= count;
    let variance = 0;
    for (let i = 0; i < n; i++) {
      for (let s = 0; s < spatial; s++) variance += (v.x[at(i, ch, s)] - mean) ** 2;
    }
    variance /= count;
    const [m, vr] = train ? [mean, variance] : [v.runningMean[ch], v.runningVar[ch]];
    for (let i = 0; i < n; i++) {
      for (let s = 0; s < spatial; s++) {
        y[at(i, ch, s)] = ((v.x[at(i, ch, s)] - m) / Math.sqrt(vr + 1e-5)) * v.weight[ch] +
          v.bias[ch];
      }
    }
    newMean.push(0.9 * v.runningMean[ch] + 0.1 * mean);
    newVar.push(0.9 * v.runningVar[ch] + 0.1 * variance * count / (count - 1));
  }
  return { y, newMean, newVar };
}

const f64 = (data: number[], shape: number[]): HostTensor => ({
  dtype: "float64",
  shape,
  data: Float64Array.from(data),
});

async function runBn(inputShape: Shape, feedShape: number[], v: BnValues, train: boolean) {
  const graph = new Graph("bn");
  const store = new ParamStore(graph, { dtype: "float64" });
  const x = graph.input("x", "float64", inputShape);
  const m = Module.root(store, { train }, "bn");
  graph.output(batchNorm(m, x), "y");
  const outputs = exposeBufferUpdates(graph, m.updates);
  const c = feedShape[1];
  const session = await Session.create(graph);
  const result = await session.run({
    x: f64(v.x, feedShape),
    "bn.weight": f64(v.weight, [c]),
    "bn.bias": f64(v.bias, [c]),
    "bn.running_mean": f64(v.runningMean, [c]),
    "bn.running_var": f64(v.runningVar, [c]),
  });
  await session.release();
  return { result, outputs, store };
}

Deno.test("batchNorm 2-d train mode: batch statistics and torch's running-stat update", async () => {
  const shape = [3, 4, 2, 3];
  const v = randomValues(shape, 1);
  const { result, outputs } = await runBn(shape, shape, v, true);
  const ref = referenceBn(shape, v, true);
  assertEquals(outputs, ["bn.running_mean_new", "bn.running_var_new"]);
  assertAllClose(result.y.data as Float64Array, ref.y, 1e-12, 1e-12, "y");
  assertAllClose(
    result["bn.running_mean_new"].data as Float64Array,
    ref.newMean,
    1e-12,
    1e-12,
    "running_mean",
  );
  assertAllClose(
    result["bn.running_var_new"].data as Float64Array,
    ref.newVar,
    1e-12,
    1e-12,
    "running_var",
  );
  // The output is normalised per channel: mean = bias, biased variance = weight² (up to eps).
  const y = result.y.data as Float64Array;
  const ch0 = [0, 1, 2].flatMap((i) => Array.from(y.slice(i * 24, i * 24 + 6)));
  const mean = ch0.reduce((a, b) => a + b, 0) / ch0.length;
  assert(Math.abs(mean - v.bias[0]) < 1e-12, `channel 0 mean ${mean} != bias ${v.bias[0]}`);
});

Deno.test("batchNorm 1-d train mode over [N, C]", async () => {
  const shape = [5, 3];
  const v = randomValues(shape, 2);
  const { result } = await runBn(shape, shape, v, true);
  const ref = referenceBn(shape, v, true);
  assertAllClose(result.y.data as Float64Array, ref.y, 1e-12, 1e-12, "y");
  assertAllClose(
    result["bn.running_var_new"].data as Float64Array,
    ref.newVar,
    1e-12,
    1e-12,
    "running_var",
  );
});

Deno.test("batchNorm eval mode normalises with the running statistics and reports no updates", async () => {
  const shape = [2, 3, 2, 2];
  const v = randomValues(shape, 3);
  const { result, outputs, store } = await runBn(shape, shape, v, false);
  const ref = referenceBn(shape, v, false);
  assertEquals(outputs, []);
  assertAllClose(result.y.data as Float64Array, ref.y, 1e-12, 1e-12, "y");
  const batchStats = referenceBn(shape, v, true).y;
  assert(
    Math.abs(batchStats[0] - ref.y[0]) > 1e-3,
    "eval output differs from a batch-statistics output",
  );
  assertEquals(store.buffers().map((b) => b.name), ["bn.running_mean", "bn.running_var"]);
});

Deno.test("batchNorm with a symbolic batch computes n/(n-1) in the graph", async () => {
  const v = randomValues([6, 2, 2, 2], 4);
  const { result } = await runBn(["batch", 2, 2, 2], [6, 2, 2, 2], v, true);
  const ref = referenceBn([6, 2, 2, 2], v, true);
  assertAllClose(
    result["bn.running_var_new"].data as Float64Array,
    ref.newVar,
    1e-12,
    1e-12,
    "running_var",
  );
  assertAllClose(result.y.data as Float64Array, ref.y, 1e-12, 1e-12, "y");
});

Deno.test("batchNorm names, flags and dual-BN branches", () => {
  const graph = new Graph("dual");
  const store = new ParamStore(graph, { bnBranches: 2 });
  const x = graph.input("x", "float32", [4, 8]);
  batchNorm(Module.root(store, { train: true, branch: 0 }, "head.bn1"), x);
  batchNorm(Module.root(store, { train: true, branch: 1 }, "head.bn1"), x);
  assertEquals(store.entries().map((e) => e.name), [
    "head.bn1.bn_list.0.weight",
    "head.bn1.bn_list.0.bias",
    "head.bn1.bn_list.0.running_mean",
    "head.bn1.bn_list.0.running_var",
    "head.bn1.bn_list.1.weight",
    "head.bn1.bn_list.1.bias",
    "head.bn1.bn_list.1.running_mean",
    "head.bn1.bn_list.1.running_var",
  ]);
  const w = store.get("head.bn1.bn_list.1.weight");
  assertEquals([w.role, w.noWeightDecay, w.noLarsAdapt], ["bn_weight", true, true]);
  assertEquals(store.buffers().map((b) => b.role), ["buffer", "buffer", "buffer", "buffer"]);
});

Deno.test("batchNorm rejects bad input, branches and a single value per channel", async () => {
  const graph = new Graph("bad");
  const store = new ParamStore(graph);
  await assertThrowsMessage(
    () => Module.root(store, { train: true, branch: 1 }, "bn"),
    "branch 1 is out of range",
    "bnBranches: 2",
  );
  const x3 = graph.input("x3", "float32", [2, 3, 4]);
  await assertThrowsMessage(
    () => batchNorm(Module.root(store, { train: true }, "a"), x3),
    "a: input x3",
    "[N, C]",
  );
  const single = graph.input("single", "float32", [1, 3]);
  await assertThrowsMessage(
    () => batchNorm(Module.root(store, { train: true }, "b"), single),
    "b: train mode needs more than one value per channel",
  );
});
