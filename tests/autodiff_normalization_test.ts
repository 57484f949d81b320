/**
 * Gradients of BatchNormalization: the plain rule (mean and variance as
 * independent inputs) and the batch-statistics composite that training-mode
 * BN uses, against finite differences (float64), against torch's fused BN
 * backward (tests/fixtures/nn/bn_golden.json, tools/bn_golden.py), against
 * the chain rule through the statistics ops, and the property the composite
 * exists for: its backward reads the input x, not a centred copy.
 */
import { assert, assertAllClose, assertEquals, assertThrowsMessage } from "./assert.ts";
import { BATCH_STATISTICS_RULE, gradients } from "../src/autodiff/mod.ts";
import { batchNorm, batchNormRelu, conv2d, Module, ParamStore } from "../src/nn/mod.ts";
import { encodeModel, Graph, ops, type Shape, type Tensor } from "../src/onnx/mod.ts";
import { Rng } from "../src/util/rng.ts";
import onnxProto from "onnx-proto";
import { f32, f64 } from "../src/runtime/host_tensor.ts";
import { Session } from "../src/runtime/session.ts";
import { type CheckInput, gradCheck } from "./gradcheck.ts";

/** Node names of an ONNX model's graph (ORT's optimized model may hold ops our builder lacks). */
function decodeModelNodeNames(bytes: Uint8Array): string[] {
  return onnxProto.onnx.ModelProto.decode(bytes).graph!.node!.map((n) => n.name ?? "");
}

const positive = (n: number, seed: number) =>
  Array.from({ length: n }, (_, i) => 0.3 + ((i * 7919 + seed * 104729) % 97) / 50);

for (const shape of [[3, 4, 2, 3], [5, 3]]) {
  Deno.test(`BatchNormalization gradient w.r.t. all five inputs, ${shape.length}-d input`, async () => {
    const c = shape[1];
    const r = await gradCheck(
      [
        { name: "x", shape },
        { name: "scale", shape: [c] },
        { name: "bias", shape: [c] },
        { name: "mean", shape: [c] },
        { name: "var", shape: [c], values: positive(c, 1) },
      ],
      ([x, scale, bias, mean, variance]) =>
        ops.batchNormalization(x, scale, bias, mean, variance, 1e-3),
    );
    assertEquals(r.checked, shape.reduce((a, b) => a * b, 1) + 4 * c);
  });
}

/** The BN parameters and buffers a `batchNorm` under path "bn" declares, as gradCheck inputs. */
function bnDeclared(c: number): CheckInput[] {
  const constant = (values: number[]) => ({ dtype: "float64" as const, values });
  return [
    { name: "bn.weight", shape: [c], values: positive(c, 2) },
    { name: "bn.bias", shape: [c] },
    { name: "bn.running_mean", shape: [c], constant: constant(new Array(c).fill(0)) },
    { name: "bn.running_var", shape: [c], constant: constant(new Array(c).fill(1)) },
  ];
}

function trainBn(x: Tensor): Tensor {
  const store = new ParamStore(x.graph, { dtype: "float64" });
  return batchNorm(Module.root(store, { train: true }, "bn"), x);
}

for (const shape of [[3, 4, 2, 3], [6, 3]]) {
  Deno.test(`train-mode batchNorm (composite rule) against finite differences, ${shape.length}-d`, async () => {
    // A square after BN makes the loss non-linear in the normalized values.
    const r = await gradCheck(
      [{ name: "x", shape }],
      ([x]) => {
        const y = trainBn(x);
        return ops.mul(y, y);
      },
      { declared: bnDeclared(shape[1]) },
    );
    assertEquals(r.checked, shape.reduce((a, b) => a * b, 1) + 2 * shape[1]);
  });
}

interface GoldenCase {
  name: string;
  shape: number[];
  inputs: Record<"x" | "dy" | "weight" | "bias" | "running_mean" | "running_var", number[]>;
  y: number[];
  dx: number[];
  dweight: number[];
  dbias: number[];
  running_mean: number[];
  running_var: number[];
}

const GOLDEN = JSON.parse(
  Deno.readTextFileSync(new URL("./fixtures/nn/bn_golden.json", import.meta.url)),
) as { cases: GoldenCase[] };

/**
 * Builds train-mode BN on `inputShape` with loss Σ y·dy and returns y, the
 * gradients and the new running statistics for the golden case's values;
 * `composite: false` drops the composite rule (chain rule through the
 * statistics ops instead).
 */
async function bnGradients(c: GoldenCase, inputShape: Shape, composite = true) {
  const graph = new Graph("bn_golden");
  const store = new ParamStore(graph, { dtype: "float64" });
  const x = graph.input("x", "float64", inputShape);
  const dy = graph.input("dy", "float64", inputShape);
  const m = Module.root(store, { train: true }, "bn");
  const y = batchNorm(m, x);
  if (!composite) {
    assertEquals(y.producer!.gradRule, BATCH_STATISTICS_RULE);
    delete y.producer!.gradRule;
  }
  const weight = store.get("bn.weight").tensor;
  const bias = store.get("bn.bias").tensor;
  const grads = gradients(ops.reduceSum(ops.mul(y, dy), undefined, false), [x, weight, bias]);
  graph.output(y, "y");
  graph.output(grads.get(x)!, "dx");
  graph.output(grads.get(weight)!, "dweight");
  graph.output(grads.get(bias)!, "dbias");
  for (const u of m.updates) graph.output(u.updated, `${u.input.name}_new`);
  const ch = c.shape[1];
  const session = await Session.create(graph);
  const out = await session.run({
    x: f64(c.inputs.x, c.shape),
    dy: f64(c.inputs.dy, c.shape),
    "bn.weight": f64(c.inputs.weight, [ch]),
    "bn.bias": f64(c.inputs.bias, [ch]),
    "bn.running_mean": f64(c.inputs.running_mean, [ch]),
    "bn.running_var": f64(c.inputs.running_var, [ch]),
  });
  await session.release();
  return out;
}

for (const c of GOLDEN.cases) {
  Deno.test(`train-mode batchNorm forward and backward match torch's fused BN: ${c.name}`, async () => {
    const out = await bnGradients(c, c.shape);
    assertAllClose(out.y.data as Float64Array, c.y, 1e-12, 1e-12, "y");
    assertAllClose(out.dx.data as Float64Array, c.dx, 1e-10, 1e-10, "dx");
    assertAllClose(out.dweight.data as Float64Array, c.dweight, 1e-10, 1e-10, "dweight");
    assertAllClose(out.dbias.data as Float64Array, c.dbias, 1e-10, 1e-10, "dbias");
    assertAllClose(
      out["bn.running_mean_new"].data as Float64Array,
      c.running_mean,
      1e-12,
      1e-12,
      "running_mean",
    );
    assertAllClose(
      out["bn.running_var_new"].data as Float64Array,
      c.running_var,
      1e-12,
      1e-12,
      "running_var",
    );
  });
}

Deno.test("batchNorm composite equals the chain rule through the statistics ops, static and symbolic batch", async () => {
  for (const c of GOLDEN.cases) {
    const composite = await bnGradients(c, c.shape);
    const chain = await bnGradients(c, c.shape, false);
    const symbolic = await bnGradients(c, ["batch", ...c.shape.slice(1)]);
    for (const name of ["dx", "dweight", "dbias"]) {
      const expected = Array.from(chain[name].data as Float64Array);
      assertAllClose(
        composite[name].data as Float64Array,
        expected,
        1e-10,
        1e-10,
        `${c.name} ${name}`,
      );
      assertAllClose(
        symbolic[name].data as Float64Array,
        expected,
        1e-10,
        1e-10,
        `${c.name} ${name} symbolic`,
      );
    }
  }
});

/** Forward values of `x`'s full size that the backward reads, by the op that made them. */
function keptByBackward(build: (x: Tensor, store: ParamStore) => Tensor) {
  const graph = new Graph("saved");
  const store = new ParamStore(graph);
  const x = graph.input("x", "float32", [4, 3, 5, 5]);
  const y = build(x, store);
  const loss = ops.reduceSum(ops.mul(ops.reduceSum(y, [1, 2, 3]), 0.5), undefined, false);
  const n0 = graph.nodes.length;
  gradients(loss, [x, store.get("bn.weight").tensor]);
  const backward = graph.nodes.slice(n0);
  const read = new Set(backward.flatMap((n) => n.inputs).filter((t) => t !== null));
  const forward = graph.nodes.slice(0, n0).flatMap((n) => n.outputs)
    .filter((t) => t.shape.join() === x.shape.join());
  return {
    kept: forward.filter((t) => read.has(t)).map((t) => t.producer!.opType).sort(),
    readsX: read.has(x),
    recomputed: backward.filter((n) => n.name.endsWith(".recompute")).map((n) => n.opType),
  };
}

Deno.test("the backward of BN then ReLU keeps x and the ReLU output, no centred or pre-ReLU copy", () => {
  const r = keptByBackward((x, store) =>
    ops.relu(batchNorm(Module.root(store, { train: true }, "bn"), x))
  );
  assertEquals(r.kept, ["Relu"]);
  assert(r.readsX, "the BN backward reads its input x");
  assertEquals(r.recomputed, []);
});

Deno.test("batchNormRelu: the backward recomputes the ReLU output and keeps only x", () => {
  const r = keptByBackward((x, store) => {
    const m = Module.root(store, { train: true }, "");
    return batchNormRelu(m, m.child("bn"), x);
  });
  assertEquals(r.kept, []);
  assert(r.readsX, "the BN backward reads its input x");
  assertEquals(r.recomputed, ["BatchNormalization", "Relu"]);
});

/** Gradients of Σ w·conv(relu(bn(conv(x)))) w.r.t. everything, with the ReLU output recomputed or kept. */
async function convBnReluConv(recompute: boolean) {
  const graph = new Graph("remat");
  // float32: ORT's CPU provider has no float64 Conv.
  const store = new ParamStore(graph);
  const x = graph.input("x", "float32", [2, 3, 6, 6]);
  const m = Module.root(store, { train: true }, "");
  let h = conv2d(m.child("conv1"), x, { outChannels: 4, kernel: 3, padding: 1 });
  h = batchNormRelu(m, m.child("bn"), h);
  if (!recompute) { for (const n of graph.nodes) delete n.recompute; }
  h = conv2d(m.child("conv2"), h, { outChannels: 2, kernel: 3, padding: 1 });
  const weights = graph.constant(
    Array.from({ length: h.size }, (_, i) => Math.sin(i)),
    "float32",
    h.shape,
  );
  const loss = ops.reduceSum(ops.mul(h, weights), undefined, false);
  const params = [x, ...store.entries().filter((e) => e.role !== "buffer").map((e) => e.tensor)];
  const grads = gradients(loss, params);
  params.forEach((p) => graph.output(grads.get(p)!, `${p.name}_grad`));
  const dir = await Deno.makeTempDir();
  try {
    const session = await Session.create(graph, { threads: 1 });
    const rng = new Rng(3, "remat");
    const feeds = Object.fromEntries(
      graph.inputs.map((t) => {
        const shape = t.shape as number[];
        const data = Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.normal());
        if (t.name.endsWith("running_var")) data.fill(1);
        return [t.name, f32(data, shape)];
      }),
    );
    const out = await session.run(feeds);
    await session.release();
    // The optimized model ORT runs: common-subexpression elimination must not merge the copies.
    const optimized = `${dir}/optimized.onnx`;
    const ort = await import("onnxruntime-node");
    const s = await ort.InferenceSession.create(encodeModel(graph), {
      graphOptimizationLevel: "all",
      optimizedModelFilePath: optimized,
    });
    await s.release();
    const names = decodeModelNodeNames(await Deno.readFile(optimized));
    return { out, recomputedInOrt: names.filter((n) => n.endsWith(".recompute")).length };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("recomputed conv→BN→ReLU: gradients bit-identical to keeping the ReLU output; ORT keeps the copies", async () => {
  const kept = await convBnReluConv(false);
  const remat = await convBnReluConv(true);
  assertEquals(kept.recomputedInOrt, 0);
  assertEquals(remat.recomputedInOrt, 2);
  for (const [name, t] of Object.entries(kept.out)) {
    assertEquals(
      Array.from(remat.out[name].data as Float32Array),
      Array.from(t.data as Float32Array),
      name,
    );
  }
});

Deno.test("a recompute node that reads only forward values needs an attribute to tell its copy apart", async () => {
  const graph = new Graph("bad_remat");
  const x = graph.input("x", "float64", [3]);
  const y = ops.relu(x);
  y.producer!.recompute = true;
  const loss = ops.reduceSum(ops.mul(y, y), undefined, false);
  await assertThrowsMessage(() => gradients(loss, [x]), "is marked recompute", "(Relu)");
});
