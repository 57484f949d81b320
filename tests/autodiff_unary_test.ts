import { assert } from "./assert.ts";
import { ops, type Tensor } from "../src/onnx/mod.ts";
import { gradCheck } from "./gradcheck.ts";

const SHAPE = [2, 3, 4];
/** Values spread over [-2.25, 2.35], none closer than 0.05 to 0, ±0.5 or ±1 (the kinks checked below). */
const VALUES = Array.from({ length: 24 }, (_, i) => -2.25 + i * 0.2);

async function check(build: (x: Tensor) => Tensor, values = VALUES): Promise<void> {
  const r = await gradCheck([{ name: "x", shape: SHAPE, values }], ([x]) => build(x));
  assert(r.checked === 24, `checked ${r.checked}`);
}

Deno.test("Abs gradient", () => check(ops.abs));
Deno.test("Relu gradient", () => check((x) => ops.relu(x)));
Deno.test("LeakyRelu gradient (default and given alpha)", async () => {
  await check((x) => ops.leakyRelu(x));
  await check((x) => ops.leakyRelu(x, 0.3));
});
Deno.test("Sigmoid gradient", () => check(ops.sigmoid));
Deno.test("Tanh gradient", () => check(ops.tanh));
Deno.test("Reciprocal gradient", () => check(ops.reciprocal));
Deno.test("Sin and Cos gradients", async () => {
  await check(ops.sin);
  await check(ops.cos);
});

Deno.test("Clip gradient: inside the bounds only, either bound omitted", async () => {
  await check((x) => ops.clip(x, -0.5, 1));
  await check((x) => ops.clip(x, undefined, 0.5));
  await check((x) => ops.clip(x, -1));
  await check((x) => ops.clip(x));
});

Deno.test("Clip gradient of tensor bounds: the sum over the clipped entries", async () => {
  const r = await gradCheck(
    [{ name: "x", shape: SHAPE, values: VALUES }, { name: "lo", shape: [], values: [-0.6] }, {
      name: "hi",
      shape: [],
      values: [1.1],
    }],
    ([x, lo, hi]) => x.graph.op("Clip", [x, lo, hi]),
  );
  assert(r.checked === 26, `checked ${r.checked}`);
});

Deno.test("Cast gradient: float64 → float32 → float64 and float32 → float64 → float32", async () => {
  // Through float32 the function is rounded to ~6e-8 (times the loss weights, up to ~3): central
  // differences with eps 1e-3 are off by up to ~1e-4, hence atol 1e-4, rtol 1e-4.
  const r = await gradCheck(
    [{ name: "x", shape: SHAPE, values: VALUES }],
    ([x]) => ops.cast(ops.tanh(ops.cast(x, "float32")), "float64"),
    { eps: 1e-3, rtol: 1e-4, atol: 1e-4 },
  );
  assert(r.checked === 24);
  await gradCheck(
    [{ name: "x", shape: SHAPE, values: VALUES }],
    ([x]) => ops.cast(ops.tanh(ops.cast(x, "float64")), "float32"),
    { dtype: "float32" },
  );
});

Deno.test("Softmax gradient along every axis", async () => {
  for (const axis of [0, 1, 2, -1, -2]) {
    await gradCheck([{ name: "x", shape: SHAPE }], ([x]) => ops.softmax(x, axis));
  }
});

Deno.test("LogSoftmax gradient along every axis", async () => {
  for (const axis of [0, 1, 2, -1, -3]) {
    await gradCheck([{ name: "x", shape: SHAPE }], ([x]) => ops.logSoftmax(x, axis));
  }
});
