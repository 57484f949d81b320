/**
 * convAsGemm (src/nn/conv_gemm.ts) against ONNX Conv: outputs and gradients
 * on the small-output geometries conv2d builds it for (taps in the padding
 * left out, strides, dilation, bias, symbolic batch), finite differences,
 * and conv2d's choice between the two.
 */
import { assert, assertAllClose, assertEquals } from "./assert.ts";
import { gradients } from "../src/autodiff/mod.ts";
import {
  conv2d,
  convAsGemm,
  GEMM_CONV_MAX_POSITIONS,
  type GemmConvOptions,
  Module,
  ParamStore,
} from "../src/nn/mod.ts";
import { Graph, ops, type Shape } from "../src/onnx/mod.ts";
import { f32 } from "../src/runtime/host_tensor.ts";
import { Session } from "../src/runtime/session.ts";
import { Rng } from "../src/util/rng.ts";
import { gradCheck } from "./gradcheck.ts";

interface Case {
  name: string;
  n: number;
  c: number;
  k: number;
  size: [number, number];
  kernel: [number, number];
  options: GemmConvOptions;
  bias?: boolean;
}

const CASES: Case[] = [
  {
    name: "3x3 pad 1 on 1x1 (centre tap only)",
    n: 5,
    c: 6,
    k: 4,
    size: [1, 1],
    kernel: [3, 3],
    options: { strides: [1, 1], pads: [1, 1, 1, 1] },
  },
  {
    name: "3x3 pad 1 on 2x2 (all taps)",
    n: 3,
    c: 5,
    k: 7,
    size: [2, 2],
    kernel: [3, 3],
    options: { strides: [1, 1], pads: [1, 1, 1, 1] },
    bias: true,
  },
  {
    name: "3x3 stride 2 pad 1, 2x2 to 1x1 (four taps)",
    n: 4,
    c: 3,
    k: 5,
    size: [2, 2],
    kernel: [3, 3],
    options: { strides: [2, 2], pads: [1, 1, 1, 1] },
  },
  {
    name: "1x1 on 2x2",
    n: 3,
    c: 8,
    k: 6,
    size: [2, 2],
    kernel: [1, 1],
    options: { strides: [1, 1], pads: [0, 0, 0, 0] },
    bias: true,
  },
  {
    name: "1x1 stride 2, 3x3 to 2x2",
    n: 2,
    c: 4,
    k: 6,
    size: [3, 3],
    kernel: [1, 1],
    options: { strides: [2, 2], pads: [0, 0, 0, 0] },
  },
  {
    name: "3x2 kernel, dilation 2, uneven pads",
    n: 2,
    c: 3,
    k: 4,
    size: [3, 4],
    kernel: [3, 2],
    options: { strides: [2, 3], pads: [2, 1, 1, 0], dilations: [2, 2] },
  },
];

function values(n: number, rng: Rng): number[] {
  return Array.from({ length: n }, () => rng.normal());
}

async function compare(c: Case, batchDim: number | string) {
  const g = new Graph("conv_gemm");
  const x = g.input("x", "float32", [batchDim, c.c, ...c.size] as Shape);
  const w = g.input("w", "float32", [c.k, c.c, ...c.kernel]);
  const b = c.bias ? g.input("b", "float32", [c.k]) : null;
  const reference = ops.conv(x, w, b, c.options);
  const gemm = convAsGemm(x, w, b, c.options);
  assertEquals(gemm.shape, reference.shape, `${c.name}: output shape`);
  const r = g.input("r", "float32", reference.shape);
  const wanted = [x, w, ...(b ? [b] : [])];
  for (const [tag, y] of [["conv", reference], ["gemm", gemm]] as const) {
    g.output(y, `y_${tag}`);
    const grads = gradients(ops.reduceSum(ops.mul(y, r), undefined, false), wanted);
    wanted.forEach((t) => g.output(grads.get(t)!, `d${t.name}_${tag}`));
  }
  const rng = new Rng(7, c.name);
  const sizeOf = (shape: number[]) => shape.reduce((p, q) => p * q, 1);
  const feeds: Record<string, ReturnType<typeof f32>> = {};
  for (const t of g.inputs) {
    const shape = t.shape.map((d) => (typeof d === "number" ? d : c.n));
    feeds[t.name] = f32(values(sizeOf(shape), rng), shape);
  }
  const session = await Session.create(g, { threads: 1 });
  const out = await session.run(feeds);
  await session.release();
  for (const name of ["y", ...wanted.map((t) => `d${t.name}`)]) {
    const expected = Array.from(out[`${name}_conv`].data as Float32Array);
    const scale = Math.max(...expected.map(Math.abs));
    assertAllClose(
      out[`${name}_gemm`].data as Float32Array,
      expected,
      0,
      2e-6 * scale,
      `${c.name} ${name}`,
    );
  }
}

Deno.test("convAsGemm equals Conv: outputs and gradients, static and symbolic batch", async () => {
  for (const c of CASES) {
    await compare(c, c.n);
    await compare(c, "batch");
  }
});

Deno.test("convAsGemm gradients match finite differences (float64)", async () => {
  for (const c of [CASES[2], CASES[5]]) {
    const r = await gradCheck(
      [
        { name: "x", shape: [c.n, c.c, ...c.size] },
        { name: "w", shape: [c.k, c.c, ...c.kernel] },
        { name: "b", shape: [c.k] },
      ],
      ([x, w, b]) => convAsGemm(x, w, b, c.options),
    );
    assert(r.checked > 0, `${c.name}: nothing checked`);
  }
});

Deno.test("conv2d builds one Gemm for few output positions, Conv otherwise", () => {
  const opsOf = (size: number, stride: number, channels = 8) => {
    const g = new Graph("choice");
    const store = new ParamStore(g);
    const x = g.input("x", "float32", ["batch", channels, size, size]);
    conv2d(Module.root(store, { train: true }, "c"), x, {
      outChannels: channels,
      kernel: 3,
      stride,
      padding: 1,
    });
    return new Set(g.nodes.map((n) => n.opType));
  };
  assertEquals(GEMM_CONV_MAX_POSITIONS, 1);
  assert(opsOf(1, 1).has("Gemm") && !opsOf(1, 1).has("Conv"), "1x1 output: Gemm");
  assert(opsOf(2, 2).has("Gemm"), "2x2 input, stride 2: 1x1 output, Gemm");
  assert(opsOf(2, 1).has("Conv") && !opsOf(2, 1).has("Gemm"), "2x2 output: Conv");
  assert(opsOf(4, 1).has("Conv") && !opsOf(4, 1).has("Gemm"), "4x4 output: Conv");
  assert(opsOf(4, 1, 512).has("Conv"), "4x4 output, 512 channels (ResNet-18's last stage): Conv");
});
