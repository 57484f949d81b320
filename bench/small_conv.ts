/**
 * Forward + backward of one convolution on ORT CPU, as Conv (with our
 * gradient rules) and as convAsGemm (src/nn/conv_gemm.ts), on the
 * small-output layers of ResNet-50 at 32×32 input (256 views) and
 * ResNet-18's last stages (64 views): median process CPU time of 7 runs
 * (2 intra-op threads, no spinning, so another process's load distorts it
 * less than wall time), and the largest difference between the two.
 *
 *   deno run -A bench/small_conv.ts [name substring]
 */
import process from "node:process";
import * as ort from "onnxruntime-node";
import { gradients } from "../src/autodiff/mod.ts";
import { convAsGemm } from "../src/nn/mod.ts";
import { encodeModel, Graph, ops } from "../src/onnx/mod.ts";

interface Case {
  name: string;
  n: number;
  c: number;
  k: number;
  size: number;
  kernel: number;
  stride: number;
  pad: number;
  /** Output size (square). */
  out: number;
}
const CASES: Case[] = [
  {
    name: "r50 l4.0 3x3 s2 512 2x2>1x1",
    n: 256,
    c: 512,
    k: 512,
    size: 2,
    kernel: 3,
    stride: 2,
    pad: 1,
    out: 1,
  },
  {
    name: "r50 l4 3x3 512 1x1",
    n: 256,
    c: 512,
    k: 512,
    size: 1,
    kernel: 3,
    stride: 1,
    pad: 1,
    out: 1,
  },
  {
    name: "r50 l4 1x1 2048->512 1x1",
    n: 256,
    c: 2048,
    k: 512,
    size: 1,
    kernel: 1,
    stride: 1,
    pad: 0,
    out: 1,
  },
  {
    name: "r50 l4 1x1 512->2048 1x1",
    n: 256,
    c: 512,
    k: 2048,
    size: 1,
    kernel: 1,
    stride: 1,
    pad: 0,
    out: 1,
  },
  {
    name: "r50 l3 3x3 256 2x2",
    n: 256,
    c: 256,
    k: 256,
    size: 2,
    kernel: 3,
    stride: 1,
    pad: 1,
    out: 2,
  },
  {
    name: "r50 l3 1x1 1024->256 2x2",
    n: 256,
    c: 1024,
    k: 256,
    size: 2,
    kernel: 1,
    stride: 1,
    pad: 0,
    out: 2,
  },
  {
    name: "r50 l2 3x3 128 4x4",
    n: 256,
    c: 128,
    k: 128,
    size: 4,
    kernel: 3,
    stride: 1,
    pad: 1,
    out: 4,
  },
  {
    name: "r50 l2 1x1 512->128 4x4",
    n: 256,
    c: 512,
    k: 128,
    size: 4,
    kernel: 1,
    stride: 1,
    pad: 0,
    out: 4,
  },
  {
    name: "r50 l1 3x3 64 8x8",
    n: 256,
    c: 64,
    k: 64,
    size: 8,
    kernel: 3,
    stride: 1,
    pad: 1,
    out: 8,
  },
  {
    name: "r50 l1 1x1 256->64 8x8",
    n: 256,
    c: 256,
    k: 64,
    size: 8,
    kernel: 1,
    stride: 1,
    pad: 0,
    out: 8,
  },
  {
    name: "r18 l4 3x3 512 4x4",
    n: 64,
    c: 512,
    k: 512,
    size: 4,
    kernel: 3,
    stride: 1,
    pad: 1,
    out: 4,
  },
  {
    name: "r18 l3 3x3 256 8x8",
    n: 64,
    c: 256,
    k: 256,
    size: 8,
    kernel: 3,
    stride: 1,
    pad: 1,
    out: 8,
  },
];

async function session(c: Case, gemm: boolean) {
  const g = new Graph("small");
  const x = g.input("x", "float32", [c.n, c.c, c.size, c.size]);
  const w = g.input("w", "float32", [c.k, c.c, c.kernel, c.kernel]);
  const r = g.input("r", "float32", [c.n, c.k, c.out, c.out]);
  const geometry = {
    strides: [c.stride, c.stride] as [number, number],
    pads: [c.pad, c.pad, c.pad, c.pad] as [number, number, number, number],
  };
  const y = gemm ? convAsGemm(x, w, null, geometry) : ops.conv(x, w, null, geometry);
  const loss = ops.reduceSum(ops.mul(y, r), undefined, false);
  const grads = gradients(loss, [x, w]);
  g.output(loss, "loss");
  g.output(grads.get(x)!, "dx");
  g.output(grads.get(w)!, "dw");
  const s = await ort.InferenceSession.create(encodeModel(g, { omitValueInfo: true }), {
    intraOpNumThreads: 2,
    interOpNumThreads: 1,
    enableMemPattern: false,
    extra: { session: { "intra_op.allow_spinning": "0" } },
  });
  const rand = (n: number) => Float32Array.from({ length: n }, () => Math.random() - 0.5);
  const feeds = {
    x: new ort.Tensor("float32", rand(c.n * c.c * c.size * c.size), [c.n, c.c, c.size, c.size]),
    w: new ort.Tensor("float32", rand(c.k * c.c * c.kernel * c.kernel), [
      c.k,
      c.c,
      c.kernel,
      c.kernel,
    ]),
    r: new ort.Tensor("float32", rand(c.n * c.k * c.out * c.out), [c.n, c.k, c.out, c.out]),
  };
  return { s, feeds };
}

const only = Deno.args[0];
for (const c of CASES.filter((c) => !only || c.name.includes(only))) {
  const a = await session(c, false);
  const b = await session(c, true);
  b.feeds = a.feeds;
  const ra = await a.s.run(a.feeds);
  const rb = await b.s.run(b.feeds);
  let err = 0;
  for (const k of ["dx", "dw", "loss"]) {
    const u = ra[k].data as Float32Array, v = rb[k].data as Float32Array;
    let m = 0, s = 0;
    for (let i = 0; i < u.length; i++) {
      m = Math.max(m, Math.abs(u[i] - v[i]));
      s = Math.max(s, Math.abs(u[i]));
    }
    err = Math.max(err, m / s);
  }
  const t: Record<string, number[]> = { conv: [], gemm: [] };
  for (let i = 0; i < 7; i++) {
    for (const [k, v] of [["conv", a], ["gemm", b]] as const) {
      const c0 = process.cpuUsage();
      await v.s.run(v.feeds);
      const u = process.cpuUsage(c0);
      t[k].push((u.user + u.system) / 1000);
    }
  }
  const med = (x: number[]) => [...x].sort((p, q) => p - q)[x.length >> 1];
  console.log(
    `${c.name.padEnd(28)} conv ${med(t.conv).toFixed(1).padStart(7)} ms cpu, gemm ${
      med(t.gemm).toFixed(1).padStart(7)
    } ms cpu (x${(med(t.gemm) / med(t.conv)).toFixed(2)}), max rel diff ${err.toExponential(1)}`,
  );
  await a.s.release();
  await b.s.release();
}
