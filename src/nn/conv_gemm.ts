/**
 * 2-D convolution as one Gemm over the whole batch, for convolutions with
 * few output positions. ORT's CPU Conv runs one matrix product per image;
 * with a 1×1 or 2×2 output each of those is a thin product that reads the
 * whole weight again, image after image. Here the windows of all images
 * form one matrix (rows: image and output position; columns: kernel tap and
 * channel, channel-last) and a single Gemm multiplies it with the weight.
 * Taps whose windows lie wholly in the zero padding are left out (a 3×3
 * conv with padding 1 on a 1×1 input is its centre tap alone).
 *
 * bench/small_conv.ts measured forward + backward (2 threads, CPU time), against
 * MLAS's im2col Conv: on ResNet-50's stages at 32×32 input (256 views) 2×2 and
 * 1×1 outputs ran 1.6–10× faster than Conv, 4×4 and 8×8 outputs 1.0–1.5×
 * slower. The Gemm's backward keeps its window matrix (9× the input for a 3×3
 * kernel) where Conv keeps the input. Since Convs run on ORT's blocked-channel
 * kernels (src/onnx/nchwc.ts), the 2×2 outputs are as fast as Convs: the ETH
 * step (ResNet-50, ImageNet stem, 32×32) took 2298 vs 2299 ms at batch 256 and
 * 1268 vs 1274 ms at batch 128 (bench/ab_step.ts, Gemm up to 4 positions vs
 * up to 1), and its peak RSS at batch 256 fell from 3060 to 2683 MiB. So only
 * 1×1 outputs, whose window is the input itself, are built as a Gemm.
 */
import type { Tensor } from "../onnx/graph.ts";
import * as ops from "../onnx/ops.ts";

/** Convs with at most this many output positions (OH·OW) are built as one Gemm. */
export const GEMM_CONV_MAX_POSITIONS = 1;

/** Geometry of {@link convAsGemm} (group 1). */
export interface GemmConvOptions {
  strides: [number, number];
  /** [top, left, bottom, right]. */
  pads: [number, number, number, number];
  dilations?: [number, number];
}

/** Output size along one axis. */
function outSize(size: number, kernel: number, stride: number, dilation: number, pads: number) {
  return Math.floor((size + pads - dilation * (kernel - 1) - 1) / stride) + 1;
}

/** Whether tap `i` along an axis reads an input position for some output (not only padding). */
function tapTouchesInput(
  i: number,
  out: number,
  stride: number,
  dilation: number,
  padBegin: number,
  size: number,
): boolean {
  for (let o = 0; o < out; o++) {
    const p = o * stride + i * dilation - padBegin;
    if (p >= 0 && p < size) return true;
  }
  return false;
}

/** Output positions OH·OW of a conv of `x` [N, C, H, W] with kernel [kh, kw]. */
export function convOutputPositions(
  x: Tensor,
  kernel: [number, number],
  options: GemmConvOptions,
): number {
  const [h, w] = [x.shape[2] as number, x.shape[3] as number];
  const d = options.dilations ?? [1, 1];
  const { strides: s, pads: p } = options;
  return outSize(h, kernel[0], s[0], d[0], p[0] + p[2]) *
    outSize(w, kernel[1], s[1], d[1], p[1] + p[3]);
}

/**
 * Whether a group-1 conv of `x` [N, C, H, W] (static H, W) with kernel
 * `kernel` runs faster as {@link convAsGemm}: at most
 * {@link GEMM_CONV_MAX_POSITIONS} output positions, where ORT's per-image
 * products re-read the weight for each image.
 */
export function prefersGemmConv(
  x: Tensor,
  kernel: [number, number],
  options: GemmConvOptions,
): boolean {
  if (typeof x.shape[2] !== "number" || typeof x.shape[3] !== "number") return false;
  return convOutputPositions(x, kernel, options) <= GEMM_CONV_MAX_POSITIONS;
}

/**
 * conv(x, w) + bias for `x` [N, C, H, W] (static C, H, W) and `w` [K, C, kh, kw],
 * group 1, computed as one Gemm; the result is [N, K, OH, OW] as Conv's.
 */
export function convAsGemm(
  x: Tensor,
  w: Tensor,
  bias: Tensor | null,
  options: GemmConvOptions,
  name?: string,
): Tensor {
  const [, c, h, wd] = x.shape as number[];
  const [k, wc, kh, kw] = w.shape as number[];
  if (wc !== c) {
    throw new Error(`convAsGemm: weight ${w.shapeText} does not fit input ${x.shapeText}`);
  }
  const d = options.dilations ?? [1, 1];
  const { strides: s, pads: p } = options;
  const oh = outSize(h, kh, s[0], d[0], p[0] + p[2]);
  const ow = outSize(wd, kw, s[1], d[1], p[1] + p[3]);
  const rows = Array.from({ length: kh }, (_, i) => i).filter((i) =>
    tapTouchesInput(i, oh, s[0], d[0], p[0], h)
  );
  const columns = Array.from({ length: kw }, (_, j) => j).filter((j) =>
    tapTouchesInput(j, ow, s[1], d[1], p[1], wd)
  );
  const taps = rows.flatMap((i) => columns.map((j) => [i, j] as [number, number]));

  // Channel-last input; with one position NCHW and NHWC are the same bytes.
  const nhwc = h * wd === 1 ? ops.reshape(x, [0, 1, 1, c]) : ops.transpose(x, [0, 2, 3, 1]);
  const needsPad = p.some((v) => v > 0);
  const xp = needsPad ? ops.pad(nhwc, [0, p[0], p[1], 0, 0, p[2], p[3], 0]) : nhwc;
  const windows = taps.map(([i, j]) => {
    const starts = [i * d[0], j * d[1]];
    const ends = [starts[0] + (oh - 1) * s[0] + 1, starts[1] + (ow - 1) * s[1] + 1];
    const whole = starts[0] === 0 && starts[1] === 0 && s[0] === 1 && s[1] === 1 &&
      ends[0] === xp.shape[1] && ends[1] === xp.shape[2];
    if (whole) return xp;
    return ops.slice(xp, starts, ends, [1, 2], [s[0], s[1]]);
  });
  const cols = ops.reshape(windows.length === 1 ? windows[0] : ops.concat(windows, 3), [
    -1,
    taps.length * c,
  ]);
  // The weight as [K, (tap, channel)] for the kept taps.
  let weight: Tensor;
  if (taps.length === kh * kw) weight = ops.reshape(ops.transpose(w, [0, 2, 3, 1]), [k, -1]);
  else {
    const perTap = taps.map(([i, j]) => ops.slice(w, [i, j], [i + 1, j + 1], [2, 3]));
    weight = ops.reshape(
      perTap.length === 1 ? perTap[0] : ops.transpose(ops.concat(perTap, 2), [0, 2, 1, 3]),
      [k, -1],
    );
  }
  const y = ops.gemm(cols, weight, bias, { transB: true }, name);
  return oh * ow === 1
    ? ops.reshape(y, [-1, k, 1, 1])
    : ops.transpose(ops.reshape(y, [-1, oh, ow, k]), [0, 3, 1, 2]);
}
