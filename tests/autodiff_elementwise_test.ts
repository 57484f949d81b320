import { assert, assertAllClose } from "./assert.ts";
import { gradients } from "../src/autodiff/mod.ts";
import { Graph, ops, type Tensor } from "../src/onnx/mod.ts";
import { f64 } from "../src/runtime/host_tensor.ts";
import { Session } from "../src/runtime/session.ts";
import { type CheckInput, gradCheck } from "./gradcheck.ts";

/** Shape pairs every binary rule is checked on: same shape, both broadcast, rank-different, scalars. */
const BROADCAST_CASES: [number[], number[]][] = [
  [[2, 3], [2, 3]],
  [[3, 1], [1, 4]],
  [[2, 3, 4], [4]],
  [[4], [2, 3, 4]],
  [[2, 1, 4], [3, 1]],
  [[], [2, 3]],
  [[2, 3], []],
  [[], []],
];

const count = (shape: number[]) => shape.reduce((n, d) => n * d, 1);

/** Positive values away from 0 (divisors, Pow bases). */
function positive(shape: number[], offset = 0): number[] {
  return Array.from({ length: count(shape) }, (_, i) => 0.5 + ((i * 7 + offset) % 11) / 10);
}

async function checkBinary(
  op: (a: Tensor, b: Tensor) => Tensor,
  positiveB = false,
  positiveA = false,
): Promise<void> {
  for (const [sa, sb] of BROADCAST_CASES) {
    const inputs: CheckInput[] = [
      { name: "a", shape: sa, values: positiveA ? positive(sa) : undefined },
      { name: "b", shape: sb, values: positiveB ? positive(sb, 3) : undefined },
    ];
    const r = await gradCheck(inputs, ([a, b]) => op(a, b));
    assert(r.checked === count(sa) + count(sb), `checked ${r.checked} for [${sa}] and [${sb}]`);
  }
}

Deno.test("Add gradient reduces broadcasting", () => checkBinary(ops.add));
Deno.test("Sub gradient reduces broadcasting", () => checkBinary(ops.sub));
Deno.test("Mul gradient reduces broadcasting", () => checkBinary(ops.mul));
Deno.test("Div gradient reduces broadcasting", () => checkBinary(ops.div, true));
Deno.test("Pow gradient with a tensor exponent, both operands", () =>
  checkBinary(ops.pow, false, true));
Deno.test("Max gradient (two inputs, broadcasting)", () => checkBinary(ops.max));
Deno.test("Min gradient (two inputs, broadcasting)", () => checkBinary(ops.min));

Deno.test("Pow gradient with a constant exponent (float and int64), negative bases", async () => {
  const values = [-1.5, -0.3, 0.4, 1.2, 2, -2.2];
  await gradCheck([{ name: "a", shape: [2, 3], values }], ([a]) => ops.pow(a, 3));
  await gradCheck(
    [{ name: "a", shape: [2, 3], values }],
    ([a]) => ops.pow(a, a.graph.constant(2, "int64", [])),
  );
  await gradCheck(
    [{ name: "a", shape: [2, 3], values: positive([2, 3]) }],
    ([a]) => ops.pow(a, -0.5),
  );
});

Deno.test("Neg, Exp, Log, Sqrt, Identity gradients", async () => {
  const shape = [2, 3];
  await gradCheck([{ name: "x", shape }], ([x]) => ops.neg(x));
  await gradCheck([{ name: "x", shape }], ([x]) => ops.exp(x));
  await gradCheck([{ name: "x", shape, values: positive(shape) }], ([x]) => ops.log(x));
  await gradCheck([{ name: "x", shape, values: positive(shape) }], ([x]) => ops.sqrt(x));
  await gradCheck([{ name: "x", shape }], ([x]) => ops.identity(x));
});

Deno.test("Sum gradient (variadic, broadcasting)", async () => {
  const r = await gradCheck(
    [{ name: "a", shape: [2, 3, 4] }, { name: "b", shape: [3, 1] }, { name: "c", shape: [] }],
    ([a, b, c]) => ops.sum([a, b, c]),
  );
  assert(r.checked === 24 + 3 + 1, `checked ${r.checked}`);
  await gradCheck([{ name: "a", shape: [3] }], ([a]) => ops.sum([a]));
});

Deno.test("Mean gradient (variadic; float32: ORT CPU has no float64 Mean)", async () => {
  // float32 central differences with eps 1e-2: tolerance rtol 2e-2, atol 1e-3 (gradcheck's float32 default).
  const r = await gradCheck(
    [{ name: "a", shape: [2, 3] }, { name: "b", shape: [3] }, { name: "c", shape: [2, 1] }],
    ([a, b, c]) => a.graph.op("Mean", [a, b, c]),
    { dtype: "float32" },
  );
  assert(r.checked === 11, `checked ${r.checked}`);
});

Deno.test("Where gradient: both branches broadcast, the condition takes none", async () => {
  const cond = { dtype: "bool" as const, values: [1, 0, 1] };
  const cases: [number[], number[], number[]][] = [
    [[3, 1], [2, 3, 4], [4]],
    [[3, 1], [], [2, 3, 1]],
    [[3], [3], [3]],
  ];
  for (const [sc, sa, sb] of cases) {
    const r = await gradCheck(
      [
        { name: "c", shape: sc, constant: cond },
        { name: "a", shape: sa },
        { name: "b", shape: sb },
      ],
      ([c, a, b]) => ops.where(c, a, b),
    );
    assert(r.checked === count(sa) + count(sb), `checked ${r.checked}`);
  }
});

Deno.test("Max and Min split the gradient evenly on ties", async () => {
  const g = new Graph("ties");
  const a = g.input("a", "float64", [4]);
  const b = g.input("b", "float64", [4]);
  const c = g.input("c", "float64", [4]);
  const weights = g.constant([1, 2, 3, 4], "float64", [4]);
  const y = ops.add(ops.max(a, b), g.op("Min", [a, b, c]));
  const loss = ops.reduceSum(ops.mul(y, weights), undefined, false);
  const grads = gradients(loss, [a, b, c]);
  g.output(grads.get(a)!, "da");
  g.output(grads.get(b)!, "db");
  g.output(grads.get(c)!, "dc");
  const session = await Session.create(g);
  const r = await session.run({
    a: f64([1, 2, 3, 0], [4]),
    b: f64([1, 5, 3, 0], [4]),
    c: f64([1, 9, 0, 0], [4]),
  });
  await session.release();
  // Entry 0: max tie a=b (½ each), min tie a=b=c (⅓ each). Entry 1: max b, min a.
  // Entry 2: max tie a=b, min c. Entry 3: all equal: max ½ to a and b, min ⅓ to each.
  assertAllClose(
    r.da.data as Float64Array,
    [1 / 2 + 1 / 3, 2, 3 / 2, 4 / 2 + 4 / 3],
    1e-12,
    0,
    "da",
  );
  assertAllClose(
    r.db.data as Float64Array,
    [1 / 2 + 1 / 3, 2, 3 / 2, 4 / 2 + 4 / 3],
    1e-12,
    0,
    "db",
  );
  assertAllClose(r.dc.data as Float64Array, [1 / 3, 0, 3, 4 / 3], 1e-12, 0, "dc");
});
