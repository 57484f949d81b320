import { assert, assertAllClose, assertEquals, assertThrowsMessage } from "./assert.ts";
import { gradCheck } from "./gradcheck.ts";
import { gradients } from "../src/autodiff/mod.ts";
import { Graph, ops, type Tensor } from "../src/onnx/mod.ts";
import type { PoolOptions } from "../src/onnx/ops.ts";
import { Session } from "../src/runtime/session.ts";
import { f32, f64 } from "../src/runtime/host_tensor.ts";

const count = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

const MAX_POOL_CASES: [string, number[], PoolOptions][] = [
  ["2x2 s2", [1, 2, 4, 4], { kernel: [2, 2], strides: [2, 2] }],
  ["3x3 s2 p1 (ResNet)", [1, 2, 7, 7], { kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] }],
  ["3x3 s1 p1 overlapping", [1, 1, 5, 5], { kernel: [3, 3], pads: [1, 1, 1, 1] }],
  ["asymmetric pads", [2, 1, 5, 6], { kernel: [2, 3], strides: [1, 2], pads: [0, 1, 1, 0] }],
  ["ceil mode", [1, 1, 5, 5], { kernel: [2, 2], strides: [2, 2], ceilMode: true }],
  ["1-D", [1, 2, 7], { kernel: [3], strides: [2], pads: [1, 1] }],
];

Deno.test("MaxPool gradients match finite differences (float64)", async () => {
  for (const [name, shape, opts] of MAX_POOL_CASES) {
    for (const withIndices of [false, true]) {
      const build = ([x]: Tensor[]) =>
        withIndices ? ops.maxPoolWithIndices(x, opts)[0] : ops.maxPool(x, opts);
      const r = await gradCheck([{ name: "x", shape }], build).catch((e) => {
        throw new Error(`${name}: ${(e as Error).message}`);
      });
      assert(r.checked === count(shape), `${name}: checked ${r.checked}`);
    }
  }
});

/** dL/dx of Σ pool(x)·dy, run on ORT CPU. */
async function poolInputGrad(
  x: number[],
  shape: number[],
  pool: (x: Tensor) => Tensor,
  dy?: number[],
  dtype: "float32" | "float64" = "float64",
): Promise<number[]> {
  const graph = new Graph("pool_grad");
  const xt = graph.input("x", dtype, shape);
  const y = pool(xt);
  const seed = dy ? graph.constant(dy, dtype, y.shape) : ops.full(graph, y.shape, 1, dtype);
  const grad = gradients(ops.reduceSum(ops.mul(y, seed), undefined, false), [xt]).get(xt)!;
  graph.output(grad, "dx");
  const session = await Session.create(graph);
  const out = await session.run({ x: dtype === "float64" ? f64(x, shape) : f32(x, shape) });
  await session.release();
  return Array.from(out.dx.data as Float64Array);
}

Deno.test("MaxPool ties send the gradient to the first maximum in scan order, as PyTorch does", async () => {
  // Expected values are torch.nn.functional.max_pool2d(...).sum().backward() on torch 1.13 CPU.
  const resnet = await poolInputGrad(
    new Array(16).fill(1),
    [1, 1, 4, 4],
    (x) => ops.maxPool(x, { kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] }),
  );
  assertEquals(resnet, [1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
  const pair = await poolInputGrad(
    [0, 2, 2, 1],
    [1, 1, 2, 2],
    (x) => ops.maxPool(x, { kernel: [2, 2] }),
  );
  assertEquals(pair, [0, 1, 0, 0]);
  const overlapping = await poolInputGrad(
    new Array(6).fill(1),
    [1, 1, 2, 3],
    (x) => ops.maxPool(x, { kernel: [2, 2] }),
  );
  assertEquals(overlapping, [1, 1, 0, 0, 0, 0]);
});

const AVERAGE_POOL_CASES: [string, number[], PoolOptions][] = [
  ["2x2 s2 (tiles)", [1, 2, 4, 4], { kernel: [2, 2], strides: [2, 2] }],
  ["2x2 s2 with uncovered tail", [1, 1, 5, 5], { kernel: [2, 2], strides: [2, 2] }],
  ["3x3 s2 p1", [1, 2, 6, 6], { kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] }],
  ["3x3 s2 p1 pads counted", [1, 2, 6, 6], {
    kernel: [3, 3],
    strides: [2, 2],
    pads: [1, 1, 1, 1],
    countIncludePad: true,
  }],
  ["asymmetric pads", [1, 1, 5, 6], { kernel: [3, 2], strides: [1, 2], pads: [0, 1, 2, 1] }],
  ["asymmetric pads counted", [1, 1, 5, 6], {
    kernel: [3, 2],
    strides: [1, 2],
    pads: [0, 1, 2, 1],
    countIncludePad: true,
  }],
  ["ceil mode", [1, 1, 6, 6], {
    kernel: [3, 3],
    strides: [2, 2],
    pads: [1, 1, 1, 1],
    ceilMode: true,
  }],
  [
    "ceil mode pads counted",
    [1, 1, 6, 6],
    { kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], ceilMode: true, countIncludePad: true },
  ],
  ["1-D", [2, 1, 7], { kernel: [3], strides: [2], pads: [1, 0] }],
];

Deno.test("AveragePool gradients match finite differences (float32)", async () => {
  // ORT has no float64 AveragePool kernel. The op is linear, so a central
  // difference with eps 0.1 is exact but for float32 rounding.
  for (const [name, shape, opts] of AVERAGE_POOL_CASES) {
    const r = await gradCheck([{ name: "x", shape }], ([x]) => ops.averagePool(x, opts), {
      dtype: "float32",
      eps: 0.1,
      rtol: 1e-3,
      atol: 1e-4,
    }).catch((e) => {
      throw new Error(`${name}: ${(e as Error).message}`);
    });
    assert(r.checked === count(shape), `${name}: checked ${r.checked}`);
  }
});

Deno.test("AveragePool gradient divides by the window counts", async () => {
  // 3x3 s2 p1 on 4x4: windows cover rows/cols {0,1}, {1,2,3}; without counted pads
  // the divisors are 4, 6, 6, 9; with them 9 everywhere.
  const opts = { kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] };
  const dx = await poolInputGrad(
    new Array(16).fill(0),
    [1, 1, 4, 4],
    (x) => ops.averagePool(x, opts),
    [1, 0, 0, 0],
    "float32",
  );
  assertAllClose(dx, [0.25, 0.25, 0, 0, 0.25, 0.25, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 1e-6);
  const last = await poolInputGrad(
    new Array(16).fill(0),
    [1, 1, 4, 4],
    (x) => ops.averagePool(x, opts),
    [0, 0, 0, 1],
    "float32",
  );
  const ninth = 1 / 9;
  assertAllClose(last, [
    0,
    0,
    0,
    0,
    0,
    ninth,
    ninth,
    ninth,
    0,
    ninth,
    ninth,
    ninth,
    0,
    ninth,
    ninth,
    ninth,
  ], 1e-6);
  const counted = await poolInputGrad(
    new Array(16).fill(0),
    [1, 1, 4, 4],
    (x) => ops.averagePool(x, { ...opts, countIncludePad: true }),
    [1, 0, 0, 0],
    "float32",
  );
  assertAllClose(counted, [ninth, ninth, 0, 0, ninth, ninth, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 1e-6);
});

Deno.test("GlobalAveragePool gradient matches finite differences (float32)", async () => {
  const r = await gradCheck(
    [{ name: "x", shape: [2, 3, 4, 5] }],
    ([x]) => ops.globalAveragePool(x),
    {
      dtype: "float32",
      eps: 0.1,
      rtol: 1e-3,
      atol: 1e-4,
    },
  );
  assert(r.checked === 120, `checked ${r.checked}`);
});

Deno.test("pool gradients work with a symbolic batch size", async () => {
  const shape = [2, 2, 6, 6];
  const x = Array.from({ length: count(shape) }, (_, i) => Math.sin(i * 1.7) * 3);
  const pools: [string, (t: Tensor) => Tensor][] = [
    ["MaxPool", (t) => ops.maxPool(t, { kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] })],
    [
      "AveragePool",
      (t) => ops.averagePool(t, { kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] }),
    ],
    ["AveragePool tiles", (t) => ops.averagePool(t, { kernel: [2, 2], strides: [2, 2] })],
    ["GlobalAveragePool", (t) => ops.globalAveragePool(t)],
  ];
  for (const [name, pool] of pools) {
    const expected = await poolInputGrad(x, shape, pool, undefined, "float32");
    const graph = new Graph("symbolic");
    const xt = graph.input("x", "float32", ["batch", 2, 6, 6]);
    const grad = gradients(ops.reduceSum(pool(xt), undefined, false), [xt]).get(xt)!;
    assertEquals(grad.shape, ["batch", 2, 6, 6], name);
    graph.output(grad, "dx");
    const session = await Session.create(graph);
    const out = await session.run({ x: f32(x, shape) });
    await session.release();
    assertAllClose(Array.from(out.dx.data as Float32Array), expected, 1e-6, 1e-7, name);
  }
});

Deno.test("pool gradients name unsupported attributes", async () => {
  const graph = new Graph("unsupported");
  const x = graph.input("x", "float32", [1, 1, 4, 4, 4]);
  const y = ops.averagePool(x, { kernel: [2, 2, 2] });
  await assertThrowsMessage(
    () => gradients(ops.reduceSum(y, undefined, false), [x]),
    "AveragePool",
    "3-D pooling is not implemented",
  );
  const x2 = graph.input("x2", "float32", [1, 1, 4, 4]);
  const y2 = graph.op("MaxPool", [x2], { kernel_shape: [2, 2], storage_order: 1 });
  await assertThrowsMessage(
    () => gradients(ops.reduceSum(y2, undefined, false), [x2]),
    "storage_order 1",
  );
});
