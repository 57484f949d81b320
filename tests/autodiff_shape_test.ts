import { assert, assertThrowsMessage } from "./assert.ts";
import { gradients } from "../src/autodiff/mod.ts";
import { Graph, ops, type Tensor } from "../src/onnx/mod.ts";
import { gradCheck } from "./gradcheck.ts";

const SHAPE = [2, 3, 4];

async function check(build: (x: Tensor) => Tensor, shape = SHAPE): Promise<void> {
  const r = await gradCheck([{ name: "x", shape }], ([x]) => build(x));
  assert(r.checked === shape.reduce((n, d) => n * d, 1), `checked ${r.checked}`);
}

/** Checks a function of x and int64 indices (a non-differentiable input). */
async function checkIndexed(
  shape: number[],
  indexShape: number[],
  indices: number[],
  build: (x: Tensor, i: Tensor) => Tensor,
): Promise<void> {
  await gradCheck(
    [{ name: "x", shape }, {
      name: "i",
      shape: indexShape,
      constant: { dtype: "int64", values: indices },
    }],
    ([x, i]) => build(x, i),
  );
}

Deno.test("Reshape gradient (-1 and 0 in the target)", async () => {
  await check((x) => ops.reshape(x, [4, -1]));
  await check((x) => ops.reshape(x, [0, 12]));
  await check((x) => ops.reshape(x, [24]));
});

Deno.test("Flatten gradient at axes 0, 1, 2, 3", async () => {
  for (const axis of [0, 1, 2, 3]) await check((x) => ops.flatten(x, axis));
});

Deno.test("Transpose gradient (default reversal and given perms)", async () => {
  await check((x) => x.graph.op("Transpose", [x]));
  await check((x) => ops.transpose(x, [1, 2, 0]));
  await check((x) => ops.transpose(x, [0, 2, 1]));
});

Deno.test("Concat gradient along axes 0, 1 and -1 with three inputs", async () => {
  const cases: [number, number[][]][] = [
    [0, [[1, 3], [2, 3], [1, 3]]],
    [1, [[2, 1], [2, 3], [2, 2]]],
    [-1, [[2, 2, 1], [2, 2, 3], [2, 2, 2]]],
  ];
  for (const [axis, shapes] of cases) {
    const r = await gradCheck(
      shapes.map((shape, k) => ({ name: `x${k}`, shape })),
      (xs) => ops.concat(xs, axis),
    );
    assert(r.checked === shapes.reduce((n, s) => n + s.reduce((a, b) => a * b, 1), 0));
  }
});

Deno.test("Slice gradient: steps, negative steps and indices, axes, clamped ends", async () => {
  const x = [5, 7];
  await check((t) => ops.slice(t, [1], [4]), x);
  await check((t) => ops.slice(t, [1, 2], [4, -1], [0, 1]), x);
  await check((t) => ops.slice(t, [0], [7], [1], [2]), x);
  await check((t) => ops.slice(t, [1], [100], [-1], [3]), x);
  await check((t) => ops.slice(t, [-1], [-100], [1], [-1]), x);
  await check((t) => ops.slice(t, [5], [0], [1], [-2]), x);
  await check((t) => ops.slice(t, [-2, 6], [-6, 1], [0, 1], [-2, -3]), x);
  await check((t) => ops.slice(t, [0, 1], [5, 7], [-2, -1], [2, 2]), x);
  await check((t) => ops.slice(t, [1, 0, -1], [2, 3, -5], [0, 1, 2], [1, 2, -2]), SHAPE);
});

Deno.test("Gather gradient: axis 0 and 1, repeated and negative indices, any index shape", async () => {
  await checkIndexed([4, 3], [5], [0, 2, 2, -1, 0], (x, i) => ops.gather(x, i, 0));
  await checkIndexed([4, 3], [2, 2], [1, 0, 1, -1], (x, i) => ops.gather(x, i, 0));
  await checkIndexed([2, 4, 3], [3], [3, 3, 0], (x, i) => ops.gather(x, i, 1));
  await checkIndexed([2, 4, 3], [2, 3], [0, 1, 3, 3, -4, 2], (x, i) => ops.gather(x, i, 1));
  await checkIndexed([2, 4, 3], [], [2], (x, i) => ops.gather(x, i, 1));
  await checkIndexed([2, 4, 3], [2, 1, 2], [0, 2, 2, 1], (x, i) => ops.gather(x, i, -1));
});

Deno.test("GatherElements gradient (repeated indices add)", async () => {
  await checkIndexed(
    [3, 4],
    [2, 4],
    [0, 1, 2, 0, 0, 0, 2, 2],
    (x, i) => ops.gatherElements(x, i, 0),
  );
  await checkIndexed([3, 4], [3, 2], [3, 3, 0, 1, -1, 0], (x, i) => ops.gatherElements(x, i, 1));
});

Deno.test("Unsqueeze and Squeeze gradients", async () => {
  await check((x) => ops.unsqueeze(x, [0, 3]));
  await check((x) => ops.unsqueeze(x, [-1]));
  await check((x) => ops.squeeze(x, [0, -1]), [1, 3, 1]);
  await check((x) => x.graph.op("Squeeze", [x]), [1, 3, 1, 2]);
});

Deno.test("Expand gradient sums the broadcast axes back", async () => {
  await check((x) => ops.expand(x, [2, 3, 4]), [3, 1]);
  await check((x) => ops.expand(x, [2, 1, 4]), [1, 3, 1]);
  await check((x) => ops.expand(x, [2, 3]), []);
  await check((x) => ops.expand(x, [1, 1]), [2, 3]);
});

Deno.test("Pad gradient (constant mode, any value)", async () => {
  await check((x) => ops.pad(x, [0, 1, 2, 1, 0, 3]));
  await check((x) => ops.pad(x, [1, 0, 0, 0, 0, 0], 2.5));
  await check((x) => ops.pad(x, [0, 0, 0, 0, 0, 0]));
});

Deno.test("Tile gradient sums the copies", async () => {
  await check((x) => ops.tile(x, [2, 1, 3]));
  await check((x) => ops.tile(x, [1, 1]), [3, 2]);
  await check((x) => ops.tile(x, [3]), [2]);
});

Deno.test("Unsupported shape-op gradients name the op and what is wrong", async () => {
  const g = new Graph("bad");
  const x = g.input("x", "float64", [3, 4]);
  const reflect = g.op("Pad", [x, ops.ints(g, [1, 1, 1, 1])], { mode: "reflect" });
  const loss = ops.reduceSum(reflect, undefined, false);
  await assertThrowsMessage(() => gradients(loss, [x]), "Pad", "mode reflect");
  const h = new Graph("bad2");
  const y = h.input("y", "float64", ["batch", 4]);
  const joined = ops.concat([y, y], 0);
  await assertThrowsMessage(
    () => gradients(ops.reduceSum(joined, undefined, false), [y]),
    "Concat",
    "symbolic dim batch",
  );
});
