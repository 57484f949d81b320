import { assert, assertAllClose, assertEquals, assertThrowsMessage } from "./assert.ts";
import { gradCheck } from "./gradcheck.ts";
import { gradients } from "../src/autodiff/mod.ts";
import {
  conv2dGeometry,
  convInputGrad,
  convWeightGrad,
  INPUT_GRAD_STRATEGIES,
  WEIGHT_GRAD_STRATEGIES,
  WEIGHT_GRAD_WINDOW_BUDGET,
  weightGradBlocks,
} from "../src/autodiff/rules/conv.ts";
import { Graph, ops, type Tensor } from "../src/onnx/mod.ts";
import { Session } from "../src/runtime/session.ts";
import { f32 } from "../src/runtime/host_tensor.ts";
import { Rng } from "../src/util/rng.ts";

/** A 2-D convolution: x [n, c, h, w] with a [k, c/group, kh, kw] kernel. */
interface ConvCase {
  n: number;
  c: number;
  k: number;
  h: number;
  w: number;
  kh: number;
  kw: number;
  strides?: number[];
  /** [top, left, bottom, right]. */
  pads?: number[];
  dilations?: number[];
  group?: number;
  bias?: boolean;
}

function full(cc: ConvCase) {
  const strides = cc.strides ?? [1, 1];
  const pads = cc.pads ?? [0, 0, 0, 0];
  const dilations = cc.dilations ?? [1, 1];
  const group = cc.group ?? 1;
  const oh = Math.floor((cc.h + pads[0] + pads[2] - dilations[0] * (cc.kh - 1) - 1) / strides[0]) +
    1;
  const ow = Math.floor((cc.w + pads[1] + pads[3] - dilations[1] * (cc.kw - 1) - 1) / strides[1]) +
    1;
  return { ...cc, strides, pads, dilations, group, oh, ow, cg: cc.c / group, kg: cc.k / group };
}

/** Direct float64 convolution gradients: dx, dw, db of Σ conv(x, w)·dy. */
function referenceGrads(cc: ConvCase, x: number[], w: number[], dy: number[]) {
  const f = full(cc);
  const dx = new Float64Array(x.length);
  const dw = new Float64Array(w.length);
  const db = new Float64Array(f.k);
  for (let n = 0; n < f.n; n++) {
    for (let k = 0; k < f.k; k++) {
      const g = Math.floor(k / f.kg);
      for (let oh = 0; oh < f.oh; oh++) {
        for (let ow = 0; ow < f.ow; ow++) {
          const d = dy[((n * f.k + k) * f.oh + oh) * f.ow + ow];
          db[k] += d;
          for (let cl = 0; cl < f.cg; cl++) {
            const c = g * f.cg + cl;
            for (let i = 0; i < f.kh; i++) {
              const ih = oh * f.strides[0] - f.pads[0] + i * f.dilations[0];
              if (ih < 0 || ih >= f.h) continue;
              for (let j = 0; j < f.kw; j++) {
                const iw = ow * f.strides[1] - f.pads[1] + j * f.dilations[1];
                if (iw < 0 || iw >= f.w) continue;
                const xi = ((n * f.c + c) * f.h + ih) * f.w + iw;
                const wi = ((k * f.cg + cl) * f.kh + i) * f.kw + j;
                dx[xi] += d * w[wi];
                dw[wi] += d * x[xi];
              }
            }
          }
        }
      }
    }
  }
  return { dx, dw, db };
}

function randoms(rng: Rng, count: number): number[] {
  return Array.from({ length: count }, () => rng.normal());
}

function caseValues(cc: ConvCase, seed: number) {
  const f = full(cc);
  const rng = new Rng(seed, "conv-test");
  return {
    x: randoms(rng, f.n * f.c * f.h * f.w),
    w: randoms(rng, f.k * f.cg * f.kh * f.kw),
    b: randoms(rng, f.k),
    dy: randoms(rng, f.n * f.k * f.oh * f.ow),
  };
}

function convOf(cc: ConvCase, x: Tensor, w: Tensor, b: Tensor | null): Tensor {
  const f = full(cc);
  return ops.conv(x, w, b, {
    strides: f.strides,
    pads: f.pads,
    dilations: f.dilations,
    group: f.group,
  });
}

/** Gradients of Σ conv(x, w, b)·dy from the autodiff, run on ORT CPU in float32. */
async function autodiffGrads(cc: ConvCase, v: ReturnType<typeof caseValues>) {
  const f = full(cc);
  const graph = new Graph("conv_grad_test");
  const x = graph.input("x", "float32", [f.n, f.c, f.h, f.w]);
  const w = graph.input("w", "float32", [f.k, f.cg, f.kh, f.kw]);
  const b = graph.input("b", "float32", [f.k]);
  const dy = graph.input("dy", "float32", [f.n, f.k, f.oh, f.ow]);
  const y = convOf(cc, x, w, b);
  const grads = gradients(ops.reduceSum(ops.mul(y, dy), undefined, false), [x, w, b]);
  graph.output(grads.get(x)!, "dx");
  graph.output(grads.get(w)!, "dw");
  graph.output(grads.get(b)!, "db");
  return await runGraph(graph, f, v);
}

async function runGraph(
  graph: Graph,
  f: ReturnType<typeof full>,
  v: ReturnType<typeof caseValues>,
) {
  const session = await Session.create(graph, { threads: 1 });
  const feeds = {
    x: f32(v.x, [f.n, f.c, f.h, f.w]),
    w: f32(v.w, [f.k, f.cg, f.kh, f.kw]),
    b: f32(v.b, [f.k]),
    dy: f32(v.dy, [f.n, f.k, f.oh, f.ow]),
  };
  const out = await session.run(
    Object.fromEntries(session.inputNames.map((name) => [name, feeds[name as "x"]])),
  );
  await session.release();
  return out;
}

/** |ORT float32 − float64 reference| ≤ 1e-5·max|reference| + 1e-5·|reference|. */
function assertNearReference(
  actual: ArrayLike<number>,
  expected: Float64Array,
  what: string,
): void {
  const scale = expected.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
  assert(scale > 0, `${what}: reference is all zeros`);
  assertAllClose(actual, expected, 1e-5, 1e-5 * scale, what);
}

const RESNET_CASES: [string, ConvCase][] = [
  ["7x7 s2 p3 stem", {
    n: 1,
    c: 3,
    k: 8,
    h: 32,
    w: 32,
    kh: 7,
    kw: 7,
    strides: [2, 2],
    pads: [3, 3, 3, 3],
  }],
  ["3x3 s1 p1", { n: 2, c: 16, k: 8, h: 8, w: 8, kh: 3, kw: 3, pads: [1, 1, 1, 1] }],
  ["3x3 s2 p1 odd size", {
    n: 2,
    c: 8,
    k: 16,
    h: 9,
    w: 9,
    kh: 3,
    kw: 3,
    strides: [2, 2],
    pads: [1, 1, 1, 1],
  }],
  ["3x3 s2 p1", {
    n: 2,
    c: 8,
    k: 16,
    h: 8,
    w: 8,
    kh: 3,
    kw: 3,
    strides: [2, 2],
    pads: [1, 1, 1, 1],
  }],
  ["1x1 s2", { n: 2, c: 8, k: 16, h: 8, w: 8, kh: 1, kw: 1, strides: [2, 2] }],
  ["1x1 s2 odd size", { n: 2, c: 8, k: 16, h: 9, w: 7, kh: 1, kw: 1, strides: [2, 2] }],
  ["1x1 s1", { n: 2, c: 8, k: 4, h: 5, w: 5, kh: 1, kw: 1 }],
];

const ODD_CASES: [string, ConvCase][] = [
  ["dilation 2", {
    n: 2,
    c: 3,
    k: 4,
    h: 9,
    w: 8,
    kh: 3,
    kw: 3,
    pads: [2, 2, 2, 2],
    dilations: [2, 2],
  }],
  ["dilation 2 stride 2", {
    n: 1,
    c: 2,
    k: 3,
    h: 11,
    w: 10,
    kh: 3,
    kw: 2,
    strides: [2, 2],
    dilations: [2, 2],
  }],
  ["asymmetric pads", {
    n: 2,
    c: 3,
    k: 4,
    h: 7,
    w: 6,
    kh: 3,
    kw: 3,
    strides: [2, 1],
    pads: [0, 2, 1, 0],
  }],
  ["groups 2", { n: 2, c: 4, k: 6, h: 6, w: 6, kh: 3, kw: 3, pads: [1, 1, 1, 1], group: 2 }],
  ["depthwise", {
    n: 2,
    c: 4,
    k: 4,
    h: 6,
    w: 6,
    kh: 3,
    kw: 3,
    strides: [2, 2],
    pads: [1, 1, 1, 1],
    group: 4,
  }],
  ["depthwise x2", { n: 1, c: 3, k: 6, h: 5, w: 5, kh: 3, kw: 3, pads: [1, 1, 1, 1], group: 3 }],
  ["pad beyond span", { n: 1, c: 2, k: 2, h: 4, w: 4, kh: 2, kw: 2, pads: [3, 0, 2, 3] }],
  ["rectangular kernel", {
    n: 1,
    c: 2,
    k: 3,
    h: 6,
    w: 9,
    kh: 1,
    kw: 3,
    strides: [1, 3],
    pads: [0, 1, 0, 1],
  }],
];

Deno.test("Conv gradients match finite differences (float32, small shapes)", async () => {
  // ORT has no float64 Conv kernel. Conv is linear in x, in w and in b, so a
  // central difference is exact but for float32 rounding: eps 0.1 keeps that small.
  const cases: [string, ConvCase][] = [
    ["3x3 p1 bias", { n: 1, c: 2, k: 3, h: 5, w: 5, kh: 3, kw: 3, pads: [1, 1, 1, 1], bias: true }],
    ["stride 2 pad 1", {
      n: 1,
      c: 2,
      k: 2,
      h: 6,
      w: 6,
      kh: 3,
      kw: 3,
      strides: [2, 2],
      pads: [1, 1, 1, 1],
    }],
    ...ODD_CASES.filter(([name]) =>
      ["dilation 2 stride 2", "asymmetric pads", "groups 2", "depthwise x2"].includes(name)
    ),
    ["1x1 s2 odd size", {
      n: 1,
      c: 3,
      k: 2,
      h: 5,
      w: 5,
      kh: 1,
      kw: 1,
      strides: [2, 2],
      bias: true,
    }],
  ];
  for (const [name, cc] of cases) {
    const f = full(cc);
    const inputs = [
      { name: "x", shape: [f.n, f.c, f.h, f.w] },
      { name: "w", shape: [f.k, f.cg, f.kh, f.kw] },
      ...(cc.bias ? [{ name: "b", shape: [f.k] }] : []),
    ];
    const r = await gradCheck(inputs, ([x, w, b]) => convOf(cc, x, w, b ?? null), {
      dtype: "float32",
      eps: 0.1,
      rtol: 1e-3,
      atol: 1e-3,
    }).catch((e) => {
      throw new Error(`${name}: ${(e as Error).message}`);
    });
    const expected = inputs.reduce((n, i) => n + i.shape.reduce((a, b) => a * b, 1), 0);
    assert(r.checked === expected, `${name}: checked ${r.checked} of ${expected}`);
  }
});

Deno.test("1-D Conv gradients match finite differences", async () => {
  const r = await gradCheck(
    [{ name: "x", shape: [2, 2, 9] }, { name: "w", shape: [4, 1, 3] }, { name: "b", shape: [4] }],
    ([x, w, b]) => ops.conv(x, w, b, { strides: [2], pads: [1, 2], dilations: [2], group: 2 }),
    { dtype: "float32", eps: 0.1, rtol: 1e-3, atol: 1e-3 },
  );
  assert(r.checked === 36 + 12 + 4, `checked ${r.checked}`);
});

Deno.test("Conv gradients match a float64 reference on ResNet and unusual shapes", async () => {
  let seed = 1;
  for (const [name, cc] of [...RESNET_CASES, ...ODD_CASES]) {
    const v = caseValues(cc, seed++);
    const ref = referenceGrads(cc, v.x, v.w, v.dy);
    const out = await autodiffGrads(cc, v);
    assertNearReference(out.dx.data as Float32Array, ref.dx, `${name} dx`);
    assertNearReference(out.dw.data as Float32Array, ref.dw, `${name} dw`);
    assertNearReference(out.db.data as Float32Array, ref.db, `${name} db`);
  }
});

Deno.test("every Conv gradient strategy agrees with the float64 reference", async () => {
  const cases = [...RESNET_CASES, ...ODD_CASES].filter(([name]) =>
    [
      "7x7 s2 p3 stem",
      "3x3 s2 p1 odd size",
      "1x1 s2 odd size",
      "dilation 2 stride 2",
      "asymmetric pads",
      "groups 2",
      "depthwise",
      "depthwise x2",
      "pad beyond span",
      "rectangular kernel",
    ]
      .includes(name)
  ).concat([[
    "five images in 2 and 3 uneven blocks",
    { n: 5, c: 6, k: 4, h: 6, w: 5, kh: 3, kw: 3, strides: [2, 1], pads: [1, 1, 1, 1] },
  ]]);
  let seed = 100;
  for (const [name, cc] of cases) {
    const f = full(cc);
    const v = caseValues(cc, seed++);
    const ref = referenceGrads(cc, v.x, v.w, v.dy);
    const graph = new Graph("strategies");
    const x = graph.input("x", "float32", [f.n, f.c, f.h, f.w]);
    const w = graph.input("w", "float32", [f.k, f.cg, f.kh, f.kw]);
    const dy = graph.input("dy", "float32", [f.n, f.k, f.oh, f.ow]);
    const geo = conv2dGeometry(x, w, {
      strides: f.strides,
      pads: f.pads,
      dilations: f.dilations,
      group: f.group,
    });
    const labels: string[] = [];
    for (const s of INPUT_GRAD_STRATEGIES) {
      const pointwise = f.kh === 1 && f.kw === 1 && f.pads.every((p) => p === 0);
      if (s === "pointwise" && !pointwise) continue;
      graph.output(convInputGrad(dy, w, geo, s), `dx_${s}`);
      labels.push(`dx_${s}`);
    }
    for (const s of WEIGHT_GRAD_STRATEGIES) {
      if (f.group !== 1 && s !== "groupedMatMul") continue;
      graph.output(convWeightGrad(x, dy, geo, s), `dw_${s}`);
      graph.output(convWeightGrad(x, dy, geo, s, 2), `dw_${s}_blocks`);
      labels.push(`dw_${s}`, `dw_${s}_blocks`);
      if (f.n >= 3) {
        graph.output(convWeightGrad(x, dy, geo, s, 3), `dw_${s}_blocks3`);
        labels.push(`dw_${s}_blocks3`);
      }
    }
    const out = await runGraph(graph, f, v);
    for (const label of labels) {
      const expected = label.startsWith("dx") ? ref.dx : ref.dw;
      assertNearReference(out[label].data as Float32Array, expected, `${name} ${label}`);
    }
  }
});

Deno.test("weight-gradient blocks keep each window matrix under the budget", () => {
  const g = new Graph("blocks");
  const geoOf = (x: Tensor, k: number, kernel: number, pad: number, stride = 1) => {
    const w = g.input(`w${g.inputs.length}`, "float32", [k, x.shape[1] as number, kernel, kernel]);
    return conv2dGeometry(x, w, { pads: [pad, pad, pad, pad], strides: [stride, stride] });
  };
  // ResNet-18 stage 1 at 512 views: 576 × 512·1024 floats = 1.125 GiB of windows → 18 blocks of 64 MiB.
  const stage1 = g.input("s1", "float32", [512, 64, 32, 32]);
  assertEquals(weightGradBlocks(stage1, geoOf(stage1, 64, 3, 1), "im2colGemm"), 18);
  assertEquals(WEIGHT_GRAD_WINDOW_BUDGET, 64 * 2 ** 20);
  // The same layer at 64 views: 144 MiB → 3 blocks; stage 4 (512 ch, 4×4) at 64 views: one.
  const small = g.input("s1b", "float32", [64, 64, 32, 32]);
  assertEquals(weightGradBlocks(small, geoOf(small, 64, 3, 1), "im2colGemm"), 3);
  const stage4 = g.input("s4", "float32", [64, 512, 4, 4]);
  assertEquals(weightGradBlocks(stage4, geoOf(stage4, 512, 3, 1), "im2colGemm"), 1);
  // Never more blocks than images; a symbolic batch is not split.
  assertEquals(weightGradBlocks(stage1, geoOf(stage1, 64, 3, 1), "im2colGemm", 1), 512);
  const symbolic = g.input("sym", "float32", ["batch", 64, 32, 32]);
  assertEquals(weightGradBlocks(symbolic, geoOf(symbolic, 64, 3, 1), "im2colGemm", 1), 1);
});

Deno.test("Conv gradient names unsupported cases", async () => {
  const graph = new Graph("conv3d");
  const x = graph.input("x", "float32", [1, 2, 4, 4, 4]);
  const w = graph.input("w", "float32", [2, 2, 3, 3, 3]);
  const y = ops.conv(x, w, null);
  await assertThrowsMessage(
    () => gradients(ops.reduceSum(y, undefined, false), [w]),
    "3-D convolution is not implemented",
  );
  const g2 = new Graph("grouped");
  const x2 = g2.input("x", "float32", [1, 4, 4, 4]);
  const w2 = g2.input("w", "float32", [4, 2, 3, 3]);
  const dy2 = g2.input("dy", "float32", [1, 4, 2, 2]);
  const geo = conv2dGeometry(x2, w2, { group: 2 });
  await assertThrowsMessage(
    () => convWeightGrad(x2, dy2, geo, "im2colGemm"),
    "im2colGemm needs group 1, got group 2",
  );
});

Deno.test("Conv gradients work with a symbolic batch size", async () => {
  const cases: [string, ConvCase][] = [
    ["flipped conv, im2col", { n: 2, c: 16, k: 4, h: 5, w: 5, kh: 3, kw: 3, pads: [1, 1, 1, 1] }],
    ["few channels", {
      n: 2,
      c: 3,
      k: 4,
      h: 7,
      w: 7,
      kh: 3,
      kw: 3,
      strides: [2, 2],
      pads: [1, 1, 1, 1],
    }],
    ["groups 2", { n: 2, c: 4, k: 6, h: 6, w: 6, kh: 3, kw: 3, pads: [1, 1, 1, 1], group: 2 }],
  ];
  let seed = 200;
  for (const [name, cc] of cases) {
    const f = full(cc);
    const v = caseValues(cc, seed++);
    const ref = referenceGrads(cc, v.x, v.w, v.dy);
    const graph = new Graph("symbolic_batch");
    const x = graph.input("x", "float32", ["batch", f.c, f.h, f.w]);
    const w = graph.input("w", "float32", [f.k, f.cg, f.kh, f.kw]);
    const dy = graph.input("dy", "float32", ["batch", f.k, f.oh, f.ow]);
    const grads = gradients(ops.reduceSum(ops.mul(convOf(cc, x, w, null), dy), undefined, false), [
      x,
      w,
    ]);
    graph.output(grads.get(x)!, "dx");
    graph.output(grads.get(w)!, "dw");
    const out = await runGraph(graph, f, v);
    assertNearReference(out.dx.data as Float32Array, ref.dx, `${name} dx`);
    assertNearReference(out.dw.data as Float32Array, ref.dw, `${name} dw`);
  }
});
