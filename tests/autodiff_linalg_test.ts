import { assert } from "./assert.ts";
import { ops } from "../src/onnx/mod.ts";
import { gradCheck } from "./gradcheck.ts";

const count = (shape: number[]) => shape.reduce((n, d) => n * d, 1);

async function checkMatMul(sa: number[], sb: number[]): Promise<void> {
  const r = await gradCheck(
    [{ name: "a", shape: sa }, { name: "b", shape: sb }],
    ([a, b]) => ops.matmul(a, b),
  );
  assert(r.checked === count(sa) + count(sb), `checked ${r.checked} for [${sa}] @ [${sb}]`);
}

Deno.test("MatMul gradient: 2-D, batched, broadcast batch dims", async () => {
  await checkMatMul([3, 4], [4, 2]);
  await checkMatMul([2, 3, 4], [2, 4, 5]);
  await checkMatMul([2, 1, 3, 4], [3, 4, 2]);
  await checkMatMul([1, 3, 4], [2, 4, 2]);
  await checkMatMul([3, 4], [2, 4, 2]);
});

Deno.test("MatMul gradient: a batch against one weight matrix", async () => {
  await checkMatMul([2, 3, 4], [4, 5]);
  await checkMatMul([2, 2, 1, 4], [4, 3]);
});

Deno.test("MatMul gradient: 1-D operands", async () => {
  await checkMatMul([4], [4, 3]);
  await checkMatMul([3, 4], [4]);
  await checkMatMul([4], [4]);
  await checkMatMul([4], [2, 4, 3]);
  await checkMatMul([2, 3, 4], [4]);
});

Deno.test("Gemm gradient: every transA/transB with alpha and beta", async () => {
  const [m, k, n] = [3, 4, 2];
  for (const transA of [false, true]) {
    for (const transB of [false, true]) {
      const r = await gradCheck(
        [
          { name: "a", shape: transA ? [k, m] : [m, k] },
          { name: "b", shape: transB ? [n, k] : [k, n] },
          { name: "c", shape: [m, n] },
        ],
        ([a, b, c]) => ops.gemm(a, b, c, { transA, transB, alpha: 0.7, beta: -1.3 }),
      );
      assert(r.checked === m * k + k * n + m * n, `checked ${r.checked}`);
    }
  }
});

Deno.test("Gemm gradient: bias C broadcast from [n], [m, 1], [1, n] and [], or absent", async () => {
  for (const sc of [[2], [3, 1], [1, 2], []]) {
    await gradCheck(
      [{ name: "a", shape: [3, 4] }, { name: "b", shape: [2, 4] }, { name: "c", shape: sc }],
      ([a, b, c]) => ops.gemm(a, b, c, { transB: true, beta: 0.5 }),
    );
  }
  await gradCheck(
    [{ name: "a", shape: [4, 3] }, { name: "b", shape: [4, 2] }],
    ([a, b]) => ops.gemm(a, b, null, { transA: true, alpha: 2 }),
  );
});
