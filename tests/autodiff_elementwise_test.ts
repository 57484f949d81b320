import { assert } from "./assert.ts";
import { ops } from "../src/onnx/mod.ts";
import { gradCheck } from "./gradcheck.ts";

Deno.test("Add/Sub/Mul/Div gradients reduce broadcasting", async () => {
  for (const op of [ops.add, ops.sub, ops.mul, ops.div]) {
    const r = await gradCheck(
      [{ name: "a", shape: [2, 3, 4] }, { name: "b", shape: [3, 1], values: [1.5, -2, 0.7] }],
      ([a, b]) => op(a, b),
    );
    assert(r.checked === 27, `checked ${r.checked}`);
  }
});
