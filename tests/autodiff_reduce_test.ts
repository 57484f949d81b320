import { assert, assertAllClose } from "./assert.ts";
import { gradients } from "../src/autodiff/mod.ts";
import { Graph, ops, type Tensor } from "../src/onnx/mod.ts";
import { f64 } from "../src/runtime/host_tensor.ts";
import { Session } from "../src/runtime/session.ts";
import { gradCheck } from "./gradcheck.ts";

type Reduce = (x: Tensor, axes?: number[], keepdims?: boolean) => Tensor;

const REDUCTIONS: Record<string, Reduce> = {
  ReduceSum: ops.reduceSum,
  ReduceMean: ops.reduceMean,
  ReduceMax: ops.reduceMax,
  ReduceMin: ops.reduceMin,
  ReduceSumSquare: ops.reduceSumSquare,
  ReduceLogSumExp: ops.reduceLogSumExp,
  ReduceL2: ops.reduceL2,
};

const AXES: (number[] | undefined)[] = [undefined, [0], [1], [-1], [0, 2], [2, 0, 1]];

for (const [name, reduce] of Object.entries(REDUCTIONS)) {
  Deno.test(`${name} gradient, keepdims 0 and 1, several axes`, async () => {
    for (const axes of AXES) {
      for (const keepdims of [true, false]) {
        const r = await gradCheck(
          [{ name: "x", shape: [2, 3, 4] }],
          ([x]) => reduce(x, axes, keepdims),
        );
        assert(r.checked === 24, `${name} axes ${axes} keepdims ${keepdims}: checked ${r.checked}`);
      }
    }
  });
}

Deno.test("ReduceMax and ReduceMin split the gradient evenly on ties", async () => {
  const g = new Graph("ties");
  const x = g.input("x", "float64", [2, 3]);
  const weights = g.constant([1, 10], "float64", [2]);
  const y = ops.add(ops.reduceMax(x, [1], false), ops.reduceMin(x, [1], false));
  const dx = gradients(ops.reduceSum(ops.mul(y, weights), undefined, false), [x]).get(x)!;
  g.output(dx, "dx");
  const session = await Session.create(g);
  const r = await session.run({ x: f64([2, 2, 1, 5, 5, 5], [2, 3]) });
  await session.release();
  // Row 0: max tie (½, ½), min at index 2. Row 1: all equal, max and min each split in thirds.
  assertAllClose(r.dx.data as Float64Array, [0.5, 0.5, 1, 20 / 3, 20 / 3, 20 / 3], 1e-12);
});
