/**
 * Gradient rules of Conv. The input gradient and the weight gradient are
 * built from ops that ORT runs fast on CPU (Conv, ConvTranspose, Gemm,
 * MatMul); several equivalent formulations exist and the fastest one for a
 * given shape is picked at build time (see bench/conv_grad.ts for timings).
 */
import type { GradRule } from "../gradients.ts";
import type { AttrValue, Tensor } from "../../onnx/graph.ts";
import * as ops from "../../onnx/ops.ts";

/** Static geometry of a 2-D convolution (the batch size may be symbolic). */
export interface Conv2dGeometry {
  inChannels: number;
  outChannels: number;
  group: number;
  /** Input [H, W]. */
  inSize: [number, number];
  /** Output [OH, OW]. */
  outSize: [number, number];
  /** Kernel [kh, kw]. */
  kernel: [number, number];
  strides: [number, number];
  dilations: [number, number];
  /** [top, left, bottom, right]. */
  pads: [number, number, number, number];
}

/** Every way to compute the input gradient (see {@link convInputGrad}). */
export const INPUT_GRAD_STRATEGIES = [
  "flippedConv",
  "convTranspose",
  "pointwise",
  "phaseConv",
] as const;

/** A way to compute the input gradient. */
export type InputGradStrategy = (typeof INPUT_GRAD_STRATEGIES)[number];

/** Every way to compute the weight gradient (see {@link convWeightGrad}). */
export const WEIGHT_GRAD_STRATEGIES = [
  "im2colGemm",
  "im2colGemmT",
  "im2colNhwcGemm",
  "tapGemm",
  "batchedMatMul",
  "swappedConv",
  "groupedMatMul",
  "eyeConvMatMul",
] as const;

/** A way to compute the weight gradient. */
export type WeightGradStrategy = (typeof WEIGHT_GRAD_STRATEGIES)[number];

function staticDim(t: Tensor, axis: number, what: string): number {
  const d = t.shape[axis];
  if (typeof d !== "number") {
    throw new Error(`Conv gradient: ${what} of ${t.name} must be static, got ${d}`);
  }
  return d;
}

/**
 * The geometry of a 2-D convolution of `x` [N, C, H, W] with `w` [K, C/group, kh, kw]
 * under the Conv attributes `attrs` (strides, pads, dilations, group).
 */
export function conv2dGeometry(
  x: Tensor,
  w: Tensor,
  attrs: Record<string, AttrValue>,
): Conv2dGeometry {
  const ints = (name: string, fallback: number[]) =>
    (attrs[name] as number[] | undefined) ?? fallback;
  const strides = ints("strides", [1, 1]);
  const dilations = ints("dilations", [1, 1]);
  const pads = ints("pads", [0, 0, 0, 0]);
  const inSize: [number, number] = [staticDim(x, 2, "height"), staticDim(x, 3, "width")];
  const kernel: [number, number] = [
    staticDim(w, 2, "kernel height"),
    staticDim(w, 3, "kernel width"),
  ];
  const outSize = [0, 1].map((a) =>
    Math.floor(
      (inSize[a] + pads[a] + pads[a + 2] - dilations[a] * (kernel[a] - 1) - 1) / strides[a],
    ) + 1
  );
  return {
    inChannels: staticDim(x, 1, "channels"),
    outChannels: staticDim(w, 0, "output channels"),
    group: (attrs.group as number | undefined) ?? 1,
    inSize,
    outSize: [outSize[0], outSize[1]],
    kernel,
    strides: [strides[0], strides[1]],
    dilations: [dilations[0], dilations[1]],
    pads: [pads[0], pads[1], pads[2], pads[3]],
  };
}

function span(geo: Conv2dGeometry, axis: 0 | 1): number {
  return geo.dilations[axis] * (geo.kernel[axis] - 1) + 1;
}

function taps(geo: Conv2dGeometry): number {
  return geo.kernel[0] * geo.kernel[1];
}

/**
 * Pads the spatial axes (`hAxis`, `hAxis + 1`) of `x` as far as the kernel
 * windows reach; crops the input's unused tail instead when they fall short.
 */
function padForWindows(x: Tensor, hAxis: number, geo: Conv2dGeometry): Tensor {
  const begin = [geo.pads[0], geo.pads[1]];
  const end = [0, 1].map((a) =>
    geo.dilations[a] * (geo.kernel[a] - 1) + (geo.outSize[a] - 1) * geo.strides[a] + 1 -
    geo.inSize[a] -
    geo.pads[a]
  );
  let out = x;
  if (end.some((e) => e < 0)) {
    const ends = end.map((e, a) => geo.inSize[a] + Math.min(e, 0));
    out = ops.slice(out, [0, 0], ends, [hAxis, hAxis + 1]);
  }
  if (begin.some((p) => p > 0) || end.some((e) => e > 0)) {
    const padList = new Array(2 * out.rank).fill(0);
    padList[hAxis] = begin[0];
    padList[hAxis + 1] = begin[1];
    padList[out.rank + hAxis] = Math.max(end[0], 0);
    padList[out.rank + hAxis + 1] = Math.max(end[1], 0);
    out = ops.pad(out, padList);
  }
  return out;
}

/**
 * The strided window of kernel tap (i, j) of a padded input, [.., OH, OW, ..];
 * `batch` [axis, begin, end] also cuts a range of images along that axis.
 */
function windowSlice(
  xp: Tensor,
  hAxis: number,
  geo: Conv2dGeometry,
  i: number,
  j: number,
  batch?: [number, number, number],
): Tensor {
  const [dh, dw] = geo.dilations;
  const [sh, sw] = geo.strides;
  const [oh, ow] = geo.outSize;
  const starts = [i * dh, j * dw];
  const ends = [i * dh + (oh - 1) * sh + 1, j * dw + (ow - 1) * sw + 1];
  const full = starts[0] === 0 && starts[1] === 0 && sh === 1 && sw === 1 &&
    xp.shape[hAxis] === ends[0] && xp.shape[hAxis + 1] === ends[1];
  const batchCut = batch && !(batch[1] === 0 && batch[2] === xp.shape[batch[0]]);
  if (full && !batchCut) return xp;
  const axes = [hAxis, hAxis + 1];
  const steps = [sh, sw];
  if (batchCut) {
    starts.unshift(batch[1]);
    ends.unshift(batch[2]);
    axes.unshift(batch[0]);
    steps.unshift(1);
  }
  if (sh === 1 && sw === 1) return ops.slice(xp, starts, ends, axes);
  return ops.slice(xp, starts, ends, axes, steps);
}

/** The kh·kw strided windows of a padded input, in kernel order, each [.., OH, OW, ..]. */
function windowSlices(xp: Tensor, hAxis: number, geo: Conv2dGeometry): Tensor[] {
  return kernelTaps(geo).map(([i, j]) => windowSlice(xp, hAxis, geo, i, j));
}

/** The kernel taps (i, j) in kernel order. */
function kernelTaps(geo: Conv2dGeometry): [number, number][] {
  const out: [number, number][] = [];
  for (let i = 0; i < geo.kernel[0]; i++) for (let j = 0; j < geo.kernel[1]; j++) out.push([i, j]);
  return out;
}

function stack(parts: Tensor[], axis: number): Tensor {
  const lifted = parts.map((p) => ops.unsqueeze(p, [axis]));
  return lifted.length === 1 ? lifted[0] : ops.concat(lifted, axis);
}

/** dy [N, K, OH, OW] → [N, K, OH·sh, OW·sw] with zeros between (and after) the values. */
function zeroInsert(dy: Tensor, sh: number, sw: number): Tensor {
  if (sh === 1 && sw === 1) return dy;
  const [, k, oh, ow] = dy.shape as number[];
  const lifted = ops.unsqueeze(dy, [3, 5]);
  const padded = ops.pad(lifted, [0, 0, 0, 0, 0, 0, 0, 0, 0, sh - 1, 0, sw - 1]);
  return ops.reshape(padded, [0, k, oh * sh, ow * sw]);
}

/** w [K, C/g, kh, kw] → [C, K/g, kh, kw]: the weight of the transposed convolution. */
function transposeGroups(w: Tensor, geo: Conv2dGeometry): Tensor {
  const g = geo.group;
  if (g === 1) return ops.transpose(w, [1, 0, 2, 3]);
  const [kh, kw] = geo.kernel;
  const perGroupIn = geo.inChannels / g;
  const perGroupOut = geo.outChannels / g;
  const grouped = ops.reshape(w, [g, perGroupOut, perGroupIn, kh, kw]);
  return ops.reshape(ops.transpose(grouped, [0, 2, 1, 3, 4]), [
    geo.inChannels,
    perGroupOut,
    kh,
    kw,
  ]);
}

/**
 * w [O, I, kh, kw] with both kernel axes reversed, as a MatMul of the taps
 * [O·I, kh·kw] with the anti-diagonal 0/1 matrix: exact, and ORT CPU runs it
 * in the time of a copy. A Slice with negative steps, which ORT walks element
 * by element, took 8.8 ms per 512×512×3×3 weight in the ResNet-18 step.
 */
function flipSpatial(w: Tensor): Tensor {
  const [o, i, kh, kw] = w.shape as number[];
  const t = kh * kw;
  if (t === 1) return w;
  const reversal = new Array(t * t).fill(0);
  for (let tap = 0; tap < t; tap++) reversal[tap * t + (t - 1 - tap)] = 1;
  const flipped = ops.matmul(
    ops.reshape(w, [-1, t]),
    w.graph.constant(reversal, w.dtype, [t, t]),
  );
  return ops.reshape(flipped, [o, i, kh, kw]);
}

/** Crops (negative pads) or pads (positive) the spatial axes of an [N, C, H, W] tensor. */
function padOrCrop(t: Tensor, pads: number[]): Tensor {
  let out = t;
  if (pads.some((p) => p < 0)) {
    const h = out.shape[2] as number;
    const w = out.shape[3] as number;
    out = ops.slice(
      out,
      [Math.max(-pads[0], 0), Math.max(-pads[1], 0)],
      [h - Math.max(-pads[2], 0), w - Math.max(-pads[3], 0)],
      [2, 3],
    );
  }
  if (pads.some((p) => p > 0)) {
    const p = pads.map((v) => Math.max(v, 0));
    out = ops.pad(out, [0, 0, p[0], p[1], 0, 0, p[2], p[3]]);
  }
  return out;
}

/**
 * Input gradient dL/dx [N, C, H, W] of `y = conv(x, w)` from `dy` [N, K, OH, OW].
 * - `convTranspose`: ConvTranspose(dy, w) with the forward attributes.
 * - `flippedConv`: a Conv of dy (zero-inserted when strided) with the
 *   group-transposed, spatially flipped weight.
 * - `pointwise` (1×1 kernels, no padding): a 1×1 Conv at the output
 *   resolution, then zero-inserted to the input resolution.
 * - `phaseConv`: one stride-1 Conv of dy computing every stride phase of dx
 *   as its own output channels, then interleaved (a depth-to-space).
 */
export function convInputGrad(
  dy: Tensor,
  w: Tensor,
  geo: Conv2dGeometry,
  strategy: InputGradStrategy,
): Tensor {
  const [sh, sw] = geo.strides;
  const [oh, ow] = geo.outSize;
  const [h, wd] = geo.inSize;
  const group = geo.group;
  switch (strategy) {
    case "convTranspose": {
      const outputPadding = [0, 1].map((a) =>
        geo.inSize[a] -
        ((geo.outSize[a] - 1) * geo.strides[a] + span(geo, a as 0 | 1) - geo.pads[a] -
          geo.pads[a + 2])
      );
      return ops.convTranspose(dy, w, {
        strides: geo.strides,
        pads: geo.pads,
        dilations: geo.dilations,
        group,
        ...(outputPadding.some((p) => p !== 0) ? { outputPadding } : {}),
      });
    }
    case "flippedConv": {
      const wf = transposeGroups(flipSpatial(w), geo);
      const up = zeroInsert(dy, sh, sw);
      const begin = [span(geo, 0) - 1 - geo.pads[0], span(geo, 1) - 1 - geo.pads[1]];
      const end = [h - oh * sh + geo.pads[0], wd - ow * sw + geo.pads[1]];
      const negative = [...begin, ...end].some((p) => p < 0);
      const source = negative
        ? padOrCrop(up, [
          Math.min(begin[0], 0),
          Math.min(begin[1], 0),
          Math.min(end[0], 0),
          Math.min(end[1], 0),
        ])
        : up;
      const pads = [...begin, ...end].map((p) => Math.max(p, 0));
      return ops.conv(source, wf, null, { dilations: geo.dilations, pads, group });
    }
    case "phaseConv":
      return phaseConvInputGrad(dy, w, geo);
    case "pointwise": {
      if (geo.kernel[0] !== 1 || geo.kernel[1] !== 1 || geo.pads.some((p) => p !== 0)) {
        throw new Error(`convInputGrad: strategy pointwise needs a 1x1 kernel without pads`);
      }
      const small = ops.conv(dy, transposeGroups(w, geo), null, { group });
      const up = zeroInsert(small, sh, sw);
      return padOrCrop(up, [0, 0, h - oh * sh, wd - ow * sw]);
    }
  }
}

/**
 * The phase decomposition of a transposed convolution along one axis: the
 * input position h = q·s + r receives dy[q + e] · w[i] for each tap i with
 * r + pad − i·d = e·s. All phases share one kernel of `size` slots, tap i of
 * phase r sitting in slot `slot[r][i]` (−1: not in this phase), read with
 * `pad` leading pads.
 */
interface PhasePlan {
  stride: number;
  pad: number;
  size: number;
  slot: number[][];
}

function phasePlan(geo: Conv2dGeometry, axis: 0 | 1): PhasePlan {
  const s = geo.strides[axis];
  const d = geo.dilations[axis];
  const p = geo.pads[axis];
  const offsets: number[][] = [];
  let lo = Infinity;
  let hi = -Infinity;
  for (let r = 0; r < s; r++) {
    offsets.push([]);
    for (let i = 0; i < geo.kernel[axis]; i++) {
      const shifted = r + p - i * d;
      const e = ((shifted % s) + s) % s === 0 ? shifted / s : NaN;
      offsets[r].push(e);
      if (!Number.isNaN(e)) [lo, hi] = [Math.min(lo, e), Math.max(hi, e)];
    }
  }
  return {
    stride: s,
    pad: -lo,
    size: hi - lo + 1,
    slot: offsets.map((row) => row.map((e) => (Number.isNaN(e) ? -1 : e - lo))),
  };
}

function phaseConvInputGrad(dy: Tensor, w: Tensor, geo: Conv2dGeometry): Tensor {
  const plans = [phasePlan(geo, 0), phasePlan(geo, 1)];
  const [kh, kw] = geo.kernel;
  const [mh, mw] = [plans[0].size, plans[1].size];
  const phases = plans[0].stride * plans[1].stride;
  const c = geo.inChannels;
  const perGroupOut = geo.outChannels / geo.group;
  // Scatter the kh·kw taps of each phase into its mh·mw kernel by a constant 0/1 matrix.
  const select = new Array(kh * kw * phases * mh * mw).fill(0);
  for (let rh = 0; rh < plans[0].stride; rh++) {
    for (let rw = 0; rw < plans[1].stride; rw++) {
      for (let i = 0; i < kh; i++) {
        for (let j = 0; j < kw; j++) {
          const [sh, sw] = [plans[0].slot[rh][i], plans[1].slot[rw][j]];
          if (sh < 0 || sw < 0) continue;
          const column = ((rh * plans[1].stride + rw) * mh + sh) * mw + sw;
          select[(i * kw + j) * phases * mh * mw + column] = 1;
        }
      }
    }
  }
  const selection = w.graph.constant(select, w.dtype, [kh * kw, phases * mh * mw]);
  const taps = ops.reshape(transposeGroups(w, geo), [c, perGroupOut, kh * kw]);
  const spread = ops.reshape(ops.matmul(taps, selection), [c, perGroupOut, phases, mh * mw]);
  const kernel = ops.reshape(ops.transpose(spread, [0, 2, 1, 3]), [
    c * phases,
    perGroupOut,
    mh,
    mw,
  ]);
  const q = [0, 1].map((a) => Math.ceil(geo.inSize[a] / plans[a].stride));
  const begin = plans.map((plan) => plan.pad);
  const end = [0, 1].map((a) => q[a] - geo.outSize[a] - plans[a].pad + plans[a].size - 1);
  const bounds = [...begin, ...end];
  const source = bounds.some((b) => b < 0) ? padOrCrop(dy, bounds.map((b) => Math.min(b, 0))) : dy;
  const perPhase = ops.conv(source, kernel, null, {
    pads: bounds.map((b) => Math.max(b, 0)),
    group: geo.group,
  });
  const [s0, s1] = [plans[0].stride, plans[1].stride];
  const split = ops.reshape(perPhase, [0, c, s0, s1, q[0], q[1]]);
  const interleaved = ops.reshape(ops.transpose(split, [0, 1, 4, 2, 5, 3]), [
    0,
    c,
    q[0] * s0,
    q[1] * s1,
  ]);
  const extra = [q[0] * s0 - geo.inSize[0], q[1] * s1 - geo.inSize[1]];
  return extra.some((e) => e > 0)
    ? padOrCrop(interleaved, [0, 0, -extra[0], -extra[1]])
    : interleaved;
}

/** `blocks` nearly equal [begin, end) ranges covering 0..n. */
function batchRanges(n: number, blocks: number): [number, number][] {
  const size = Math.ceil(n / Math.max(1, blocks));
  const out: [number, number][] = [];
  for (let start = 0; start < n; start += size) out.push([start, Math.min(n, start + size)]);
  return out;
}

/**
 * Weight gradient dL/dw [K, C/g, kh, kw] of `y = conv(x, w)`.
 * - `im2colGemm`: windows of the channel-first input stacked to
 *   [C·kh·kw, N·OH·OW], one Gemm with dy as [K, N·OH·OW] (group 1).
 * - `im2colGemmT`: the same Gemm with its operands swapped (windows · dyᵀ):
 *   MLAS packs its second operand, which is then dy instead of the kh·kw
 *   times larger windows (group 1).
 * - `im2colNhwcGemm`: the same in channel-last layout (group 1).
 * - `tapGemm`: one Gemm per kernel tap, no stacked copy (group 1).
 * - `batchedMatMul`: per-image windows [N, C·kh·kw, OH·OW] times dyᵀ, summed over N (group 1).
 * - `swappedConv`: a Conv with batch and channels swapped, dy as the kernel (group 1).
 * - `groupedMatMul`: windows as [g, C/g·kh·kw, N·OH·OW] times dy as [g, N·OH·OW, K/g] (any group).
 * - `eyeConvMatMul`: per-image windows made by a Conv with one one-hot kernel
 *   per tap, then as `batchedMatMul` (group 1).
 *
 * `batchBlocks` > 1 splits a static batch into that many blocks, computes each
 * block's gradient with `strategy`, and sums them (im2colGemm cuts its blocks
 * from one transposed, padded copy of the input).
 */
export function convWeightGrad(
  x: Tensor,
  dy: Tensor,
  geo: Conv2dGeometry,
  strategy: WeightGradStrategy,
  batchBlocks = 1,
): Tensor {
  if (batchBlocks > 1 && strategy !== "im2colGemm" && strategy !== "im2colGemmT") {
    const parts = batchRanges(staticDim(x, 0, "batch size"), batchBlocks).map(([start, end]) =>
      convWeightGrad(
        ops.slice(x, [start], [end], [0]),
        ops.slice(dy, [start], [end], [0]),
        geo,
        strategy,
      )
    );
    return parts.length === 1 ? parts[0] : x.graph.op("Sum", parts);
  }
  const c = geo.inChannels;
  const k = geo.outChannels;
  const g = geo.group;
  const [kh, kw] = geo.kernel;
  const [oh, ow] = geo.outSize;
  const t = taps(geo);
  if (g !== 1 && strategy !== "groupedMatMul") {
    throw new Error(`convWeightGrad: strategy ${strategy} needs group 1, got group ${g}`);
  }
  switch (strategy) {
    case "im2colGemm":
    case "im2colGemmT": {
      // Windows stacked channel-major ([(c, tap), images·OH·OW]), one Gemm per block of
      // images cut from the one transposed, padded copy of x: the sums are then already in
      // the weight's [K, C, kh, kw] order (a 4-D transpose of tap-major sums cost 5 ms on
      // a 512×512×3×3 weight). im2colGemmT makes the windows the Gemm's first operand
      // (MLAS packs the second), its [(c, tap), K] sums are transposed as a matrix.
      const swapped = strategy === "im2colGemmT";
      const xp = padForWindows(ops.transpose(x, [1, 0, 2, 3]), 2, geo);
      const dyT = ops.reshape(ops.transpose(dy, [1, 0, 2, 3]), [k, -1]);
      const n = x.shape[0];
      const ranges = typeof n === "number" ? batchRanges(n, batchBlocks) : [undefined];
      const parts = ranges.map((range) => {
        const windows = kernelTaps(geo).map(([i, j]) =>
          windowSlice(xp, 2, geo, i, j, range && [1, range[0], range[1]])
        );
        // [C, tap·images, OH, OW] holds the same bytes as [C, tap, images, OH, OW].
        const cols = ops.reshape(windows.length === 1 ? windows[0] : ops.concat(windows, 1), [
          c * t,
          -1,
        ]);
        const dyBlock = range && ranges.length > 1
          ? ops.slice(dyT, [range[0] * oh * ow], [range[1] * oh * ow], [1])
          : dyT;
        return swapped
          ? ops.gemm(cols, dyBlock, null, { transB: true })
          : ops.gemm(dyBlock, cols, null, { transB: true });
      });
      const summed = parts.length === 1 ? parts[0] : x.graph.op("Sum", parts);
      return ops.reshape(swapped ? ops.transpose(summed, [1, 0]) : summed, [k, c, kh, kw]);
    }
    case "im2colNhwcGemm": {
      const xp = padForWindows(ops.transpose(x, [0, 2, 3, 1]), 1, geo);
      const windows = windowSlices(xp, 1, geo);
      const cols = ops.reshape(windows.length === 1 ? windows[0] : ops.concat(windows, 3), [
        -1,
        t * c,
      ]);
      const dyN = ops.reshape(ops.transpose(dy, [0, 2, 3, 1]), [-1, k]);
      const dw = ops.gemm(dyN, cols, null, { transA: true });
      return ops.transpose(ops.reshape(dw, [k, kh, kw, c]), [0, 3, 1, 2]);
    }
    case "tapGemm": {
      // Each window is sliced right before its Gemm, so one window at a time is alive.
      const xp = padForWindows(ops.transpose(x, [1, 0, 2, 3]), 2, geo);
      const dyT = ops.reshape(ops.transpose(dy, [1, 0, 2, 3]), [k, -1]);
      const perTap = kernelTaps(geo).map(([i, j]) =>
        ops.gemm(dyT, ops.reshape(windowSlice(xp, 2, geo, i, j), [c, -1]), null, { transB: true })
      );
      return ops.reshape(stack(perTap, 2), [k, c, kh, kw]);
    }
    case "batchedMatMul": {
      const xp = padForWindows(x, 2, geo);
      const cols = ops.reshape(stack(windowSlices(xp, 2, geo), 2), [0, c * t, oh * ow]);
      const dyT = ops.transpose(ops.reshape(dy, [0, k, oh * ow]), [0, 2, 1]);
      const perImage = ops.matmul(cols, dyT);
      return ops.reshape(ops.transpose(ops.reduceSum(perImage, [0], false), [1, 0]), [
        k,
        c,
        kh,
        kw,
      ]);
    }
    case "swappedConv": {
      const xT = ops.transpose(x, [1, 0, 2, 3]);
      const dyT = ops.transpose(dy, [1, 0, 2, 3]);
      const end = [0, 1].map((a) =>
        span(geo, a as 0 | 1) + (geo.outSize[a] - 1) * geo.strides[a] - geo.inSize[a] - geo.pads[a]
      );
      const source = end.some((e) => e < 0)
        ? padOrCrop(xT, [0, 0, Math.min(end[0], 0), Math.min(end[1], 0)])
        : xT;
      const dwT = ops.conv(source, dyT, null, {
        strides: geo.dilations,
        dilations: geo.strides,
        pads: [geo.pads[0], geo.pads[1], Math.max(end[0], 0), Math.max(end[1], 0)],
      });
      return ops.transpose(dwT, [1, 0, 2, 3]);
    }
    case "groupedMatMul": {
      const perIn = c / g;
      const perOut = k / g;
      const xp = padForWindows(ops.transpose(x, [1, 0, 2, 3]), 2, geo);
      const cols = ops.reshape(stack(windowSlices(xp, 2, geo), 1), [g, perIn * t, -1]);
      const dyG = ops.reshape(dy, [0, g, perOut, oh, ow]);
      const dyT = ops.reshape(ops.transpose(dyG, [1, 0, 3, 4, 2]), [g, -1, perOut]);
      const dw = ops.transpose(ops.matmul(cols, dyT), [0, 2, 1]);
      return ops.reshape(dw, [k, perIn, kh, kw]);
    }
    case "eyeConvMatMul": {
      const cols = ops.reshape(eyeConvWindows(x, geo), [-1, c * t, oh * ow]);
      const dyT = ops.transpose(ops.reshape(dy, [0, k, oh * ow]), [0, 2, 1]);
      const summed = ops.reduceSum(ops.matmul(cols, dyT), [0], false);
      return ops.reshape(ops.transpose(summed, [1, 0]), [k, c, kh, kw]);
    }
  }
}

/**
 * The kernel windows of every channel as a Conv with a one-hot kernel:
 * x [N, C, H, W] → [N·C, kh·kw, OH, OW], ORT's Conv doing the padding and striding.
 */
function eyeConvWindows(x: Tensor, geo: Conv2dGeometry): Tensor {
  const [kh, kw] = geo.kernel;
  const t = kh * kw;
  const eye = new Array(t * t).fill(0);
  for (let i = 0; i < t; i++) eye[i * t + i] = 1;
  const kernel = x.graph.constant(eye, x.dtype, [t, 1, kh, kw]);
  const [h, w] = geo.inSize;
  return ops.conv(ops.reshape(x, [-1, 1, h, w]), kernel, null, {
    strides: geo.strides,
    pads: geo.pads,
    dilations: geo.dilations,
  });
}

/**
 * The input-gradient strategy for a geometry, from bench/conv_grad.ts on ORT
 * CPU: a Conv with the flipped kernel when unstrided (as fast as the forward
 * Conv; ConvTranspose is 1.2–1.6× slower there), ConvTranspose when strided
 * (zero insertion makes the Conv 3–10× slower) or when there are few input
 * channels (a Conv with 3 output channels runs badly).
 */
export function chooseInputGradStrategy(geo: Conv2dGeometry): InputGradStrategy {
  const unstrided = geo.strides[0] === 1 && geo.strides[1] === 1;
  return unstrided && geo.inChannels >= 16 ? "flippedConv" : "convTranspose";
}

/**
 * Output positions from which the weight gradient's im2col Gemm takes the
 * windows as its first operand (bench/conv_grad.ts at 64 images, 2 threads:
 * 13–21 % faster on ResNet-18's 32×32 stage, even at 16×16, 15 % slower at 8×8
 * and below; the whole ResNet-18 step 5 % faster with 256 than with no swap).
 */
export const SWAPPED_GEMM_MIN_POSITIONS = 256;

/**
 * The weight-gradient strategy for a geometry, from bench/conv_grad.ts on ORT
 * CPU: one im2col Gemm in general (fastest, or within 20% of the fastest, on
 * every ResNet-18 layer; operands swapped on large outputs, see
 * {@link SWAPPED_GEMM_MIN_POSITIONS}), the one-hot Conv windows for image stems
 * with few channels (2× faster than the Gemm on the 7×7 ImageNet stem),
 * batched MatMul for groups.
 */
export function chooseWeightGradStrategy(geo: Conv2dGeometry): WeightGradStrategy {
  if (geo.group !== 1) return "groupedMatMul";
  if (geo.inChannels <= 4) return "eyeConvMatMul";
  return geo.outSize[0] * geo.outSize[1] >= SWAPPED_GEMM_MIN_POSITIONS
    ? "im2colGemmT"
    : "im2colGemm";
}

/**
 * Largest window matrix (the im2col copy of the input) one weight-gradient
 * block may build, in bytes. Bigger batches are split into blocks whose
 * gradients are summed, so the transient copies (the windows, their
 * concatenation) stay near this size instead of growing to 18× a stage-1
 * activation (2.4 GB for ResNet-18 at 512 views).
 */
export const WEIGHT_GRAD_WINDOW_BUDGET = 64 * 2 ** 20;

/** Batch blocks for the weight gradient of `x` under {@link WEIGHT_GRAD_WINDOW_BUDGET} (1 for a symbolic batch). */
export function weightGradBlocks(
  x: Tensor,
  geo: Conv2dGeometry,
  strategy: WeightGradStrategy,
  budget = WEIGHT_GRAD_WINDOW_BUDGET,
): number {
  const n = x.shape[0];
  if (typeof n !== "number") return 1;
  const perImage = geo.inChannels * geo.outSize[0] * geo.outSize[1] *
    (strategy === "tapGemm" || strategy === "swappedConv" ? 1 : taps(geo)) *
    (x.dtype === "float64" ? 8 : x.dtype === "float16" ? 2 : 4);
  return Math.min(n, Math.max(1, Math.ceil((perImage * n) / budget)));
}

function convGrad(
  x: Tensor,
  w: Tensor,
  hasBias: boolean,
  dy: Tensor,
  attrs: Record<string, AttrValue>,
) {
  const geo = conv2dGeometry(x, w, attrs);
  const dx = convInputGrad(dy, w, geo, chooseInputGradStrategy(geo));
  const strategy = chooseWeightGradStrategy(geo);
  const dw = convWeightGrad(x, dy, geo, strategy, weightGradBlocks(x, geo, strategy));
  const db = hasBias ? ops.reduceSum(dy, [0, 2, 3], false) : undefined;
  return [dx, dw, db];
}

/** Attributes of a 1-D Conv rewritten for the same Conv over [N, C, 1, L]. */
function attrs2dOf1d(attrs: Record<string, AttrValue>): Record<string, AttrValue> {
  const ints = (name: string, fallback: number[]) =>
    (attrs[name] as number[] | undefined) ?? fallback;
  const pads = ints("pads", [0, 0]);
  return {
    ...attrs,
    strides: [1, ints("strides", [1])[0]],
    dilations: [1, ints("dilations", [1])[0]],
    pads: [0, pads[0], 0, pads[1]],
  };
}

/** Rules for Conv (1-D and 2-D; any strides, pads, dilations, groups; optional bias). */
export const CONV_RULES: Record<string, GradRule> = {
  Conv: (node, [dy]) => {
    const [x, w, b] = node.inputs;
    const spatial = w!.rank - 2;
    if (spatial === 2) return convGrad(x!, w!, !!b, dy!, node.attrs);
    if (spatial === 1) {
      const lift = (t: Tensor) => ops.unsqueeze(t, [2]);
      const grads = convGrad(lift(x!), lift(w!), !!b, lift(dy!), attrs2dOf1d(node.attrs));
      return grads.map((d) => (d && d.rank === 4 ? ops.squeeze(d, [2]) : d));
    }
    throw new Error(
      `Conv gradient (node ${node.name}): ${spatial}-D convolution is not implemented (1-D and 2-D are)`,
    );
  },
};
