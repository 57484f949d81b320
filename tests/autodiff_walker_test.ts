import { assert, assertAllClose, assertEquals, assertThrowsMessage } from "./assert.ts";
import { gradients } from "../src/autodiff/mod.ts";
import { Graph, ops, type Tensor } from "../src/onnx/mod.ts";
import { f64, type HostTensor, i64 } from "../src/runtime/host_tensor.ts";
import { Session } from "../src/runtime/session.ts";
import { Rng } from "../src/util/rng.ts";

const X = [0.5, -1.25, 2, 3.5, -0.75, 1];

/** Builds `loss(x)`, adds d loss/d params as outputs, runs at x = X; returns the gradients. */
async function gradsAt(
  build: (g: Graph, x: Tensor, z: Tensor) => Tensor,
  params: "x" | "xz" = "xz",
) {
  const g = new Graph("walker");
  const x = g.input("x", "float64", [2, 3]);
  const z = g.input("z", "float64", [3]);
  const loss = build(g, x, z);
  const grads = gradients(loss, params === "x" ? [x] : [x, z]);
  g.output(loss, "loss");
  g.output(grads.get(x)!, "dx");
  if (params === "xz") g.output(grads.get(z)!, "dz");
  const session = await Session.create(g);
  const r = await session.run({ x: f64(X, [2, 3]), z: f64([1, 2, 3], [3]) });
  await session.release();
  return r;
}

Deno.test("walker: a stopGradient input takes no gradient (x · stopGradient(x) gives x, not 2x)", async () => {
  const r = await gradsAt(
    (g, x) => ops.reduceSum(ops.mul(x, g.stopGradient(x)), undefined, false),
    "x",
  );
  assertAllClose(r.dx.data as Float64Array, X, 1e-15);
});

Deno.test("walker: a tensor used twice gets the summed gradient", async () => {
  // loss = Σ x·x + Σ 3x: x feeds Mul twice and Mul once more; dx = 2x + 3.
  const r = await gradsAt(
    (_g, x) =>
      ops.add(
        ops.reduceSum(ops.mul(x, x), undefined, false),
        ops.reduceSum(ops.mul(x, 3), undefined, false),
      ),
    "x",
  );
  assertAllClose(r.dx.data as Float64Array, X.map((v) => 2 * v + 3), 1e-15);
});

Deno.test("walker: parameters that do not reach the loss get zeros of their shape", async () => {
  // z reaches the loss only through stopGradient: it must get zeros too.
  const r = await gradsAt((g, x, z) =>
    ops.reduceSum(ops.mul(x, g.stopGradient(z)), undefined, false)
  );
  assertAllClose(r.dx.data as Float64Array, [1, 2, 3, 1, 2, 3], 1e-15);
  assertEquals(r.dz.shape, [3]);
  assertAllClose(r.dz.data as Float64Array, [0, 0, 0], 0);
  const unused = await gradsAt((_g, x) => ops.reduceSum(ops.exp(x), undefined, false));
  assertAllClose(unused.dx.data as Float64Array, X.map(Math.exp), 1e-15);
  assertAllClose(unused.dz.data as Float64Array, [0, 0, 0], 0);
});

Deno.test("walker: an op without a gradient rule gives an error naming the op and node", async () => {
  const g = new Graph("missing");
  const x = g.input("x", "float64", [3]);
  const loss = ops.reduceSum(ops.mul(g.op("Round", [x], {}, "rounding"), x), undefined, false);
  await assertThrowsMessage(
    () => gradients(loss, [x]),
    "no gradient rule for op Round",
    "rounding",
  );
});

/**
 * A model with a symbolic batch: MatMuls (one batched against a shared weight), bias
 * broadcast, activations, log-softmax, slicing, gathering, concat, padding, transposes,
 * and means over the symbolic axis alone and together with static axes.
 */
function buildBatchModel(g: Graph): { loss: Tensor; params: Tensor[] } {
  const x = g.input("x", "float64", ["batch", 4]);
  const w = g.input("w", "float64", [4, 3]);
  const b = g.input("b", "float64", [3]);
  const w2 = g.input("w2", "float64", [2, 3]);
  const labels = g.input("labels", "int64", ["batch"]);
  const h = ops.tanh(ops.add(ops.matmul(x, w), b)); // [batch, 3]
  const pairs = ops.matmul(ops.reshape(x, [0, 2, 2]), w2); // [batch, 2, 3]: shared-weight path
  const picked = ops.gather(h, g.constant([2, 0, 2], "int64", [3]), 1); // [batch, 3]
  const joined = ops.concat([h, ops.max(picked, 0.1)], 1); // [batch, 6]
  const strided = ops.pad(ops.slice(joined, [5], [-100], [1], [-2]), [0, 1, 0, 0]); // [batch, 4]
  const logits = ops.add(ops.reduceSum(pairs, [1], false), ops.mul(h, ops.sigmoid(b))); // [batch, 3]
  const logProbs = ops.logSoftmax(logits, 1);
  const nll = ops.neg(ops.gatherElements(logProbs, ops.unsqueeze(labels, [1]), 1)); // [batch, 1]
  const spread = ops.reduceMean(ops.transpose(ops.pow(strided, 2), [1, 0]), [1], false); // [4]
  const loss = ops.sum([
    ops.reduceMean(nll, undefined, false), // over batch (count from Shape)
    ops.reduceSum(spread, undefined, false),
    ops.reduceMean(ops.sin(pairs), undefined, false), // over batch·6 entries
    ops.reduceMax(ops.reshape(joined, [-1]), [0], false), // over batch·6 entries
  ]);
  return { loss, params: [x, w, b, w2] };
}

Deno.test("walker: gradients of a symbolic-batch graph run at two batch sizes and match finite differences", async () => {
  const g = new Graph("batch");
  const { loss, params } = buildBatchModel(g);
  assertEquals(params[0].shape, ["batch", 4]);
  const grads = gradients(loss, params);
  g.output(loss, "loss");
  for (const p of params) {
    const d = grads.get(p)!;
    assertEquals(d.shape, p.shape, `gradient shape of ${p.name}`);
    g.output(d, `${p.name}_grad`);
  }
  const session = await Session.create(g);
  const rng = new Rng(7, "walker-batch");
  const eps = 1e-6;
  for (const batch of [2, 5]) {
    const shapes: Record<string, number[]> = { x: [batch, 4], w: [4, 3], b: [3], w2: [2, 3] };
    const values: Record<string, number[]> = {};
    for (const [name, shape] of Object.entries(shapes)) {
      values[name] = Array.from({ length: shape.reduce((n, d) => n * d, 1) }, () => rng.normal());
    }
    const labels = Array.from({ length: batch }, () => rng.int(3));
    const feeds = (): Record<string, HostTensor> => ({
      ...Object.fromEntries(Object.entries(values).map(([k, v]) => [k, f64(v, shapes[k])])),
      labels: i64(labels, [batch]),
    });
    const base = await session.run(feeds());
    let checked = 0;
    for (const name of Object.keys(shapes)) {
      const analytic = base[`${name}_grad`];
      assertEquals(analytic.shape, shapes[name], `${name}_grad shape at batch ${batch}`);
      for (let i = 0; i < values[name].length; i++) {
        const lossAt = async (delta: number) => {
          const saved = values[name][i];
          values[name][i] = saved + delta;
          const r = await session.run(feeds(), ["loss"]);
          values[name][i] = saved;
          return Number(r.loss.data[0]);
        };
        const numeric = ((await lossAt(eps)) - (await lossAt(-eps))) / (2 * eps);
        const value = Number(analytic.data[i]);
        assert(
          Math.abs(value - numeric) <= 1e-7 + 1e-5 * Math.abs(numeric),
          `batch ${batch}, ${name}[${i}]: analytic ${value}, numeric ${numeric}`,
        );
        checked++;
      }
    }
    assert(checked === batch * 4 + 12 + 3 + 6, `checked ${checked}`);
  }
  await session.release();
});
