/**
 * Layers as graph builders: Conv2d (optionally masked), Linear, ReLU, max
 * pooling, global average pooling and in-model input normalisation.
 */
import type { Tensor } from "../onnx/graph.ts";
import * as ops from "../onnx/ops.ts";
import { kaimingNormalFanOut, torchDefaultBias, torchDefaultWeight } from "./init.ts";
import type { Module } from "./module.ts";
import type { InitRule } from "./params.ts";
import { convAsGemm, prefersGemmConv } from "./conv_gemm.ts";

/** Options of {@link conv2d}. */
export interface Conv2dOptions {
  outChannels: number;
  kernel: number;
  stride?: number;
  padding?: number;
  /** With a bias `<path>.bias` (ResNet convs have none). */
  bias?: boolean;
  /** Weight init (default torchvision's ResNet init: kaiming-normal fan_out). */
  init?: InitRule;
}

function staticDim(m: Module, x: Tensor, axis: number): number {
  const d = x.shape[axis];
  if (typeof d !== "number") {
    throw new Error(`${m.path}: dim ${axis} of input ${x.name} ${x.shapeText} must be static`);
  }
  return d;
}

/**
 * 2-d convolution of `x` [N, Cin, H, W] with weight `<path>.weight`
 * [Cout, Cin, k, k]; when the build has a mask for that weight, the conv
 * uses weight ⊙ mask.
 */
export function conv2d(m: Module, x: Tensor, options: Conv2dOptions): Tensor {
  if (x.rank !== 4) {
    throw new Error(`conv2d ${m.path}: input ${x.name} ${x.shapeText} must be [N, C, H, W]`);
  }
  const inChannels = staticDim(m, x, 1);
  const { outChannels, kernel } = options;
  const stride = options.stride ?? 1;
  const padding = options.padding ?? 0;
  const shape = [outChannels, inChannels, kernel, kernel];
  let weight = m.param("weight", shape, "weight", options.init ?? kaimingNormalFanOut(shape));
  const mask = m.mask(weight.name);
  if (mask) {
    if (mask.shape.join() !== weight.shape.join()) {
      throw new Error(
        `conv2d ${m.path}: mask ${mask.name} ${mask.shapeText} differs from weight ${weight.shapeText}`,
      );
    }
    weight = ops.mul(weight, mask, m.nodeName("masked_weight"));
  }
  const bias = options.bias
    ? m.param("bias", [outChannels], "bias", torchDefaultBias(shape))
    : null;
  const geometry = {
    strides: [stride, stride] as [number, number],
    pads: [padding, padding, padding, padding] as [number, number, number, number],
  };
  // Few output positions: one Gemm over the batch beats ORT's per-image Conv (conv_gemm.ts).
  if (prefersGemmConv(x, [kernel, kernel], geometry)) {
    return convAsGemm(x, weight, bias, geometry, m.nodeName("conv"));
  }
  return ops.conv(x, weight, bias, geometry, m.nodeName("conv"));
}

/** Options of {@link linear}. */
export interface LinearOptions {
  outFeatures: number;
  /** With a bias `<path>.bias` (default true). */
  bias?: boolean;
  /** Weight init (default torch's Linear default, uniform ±1/√fan_in). */
  weightInit?: InitRule;
  /** Bias init (default torch's, uniform ±1/√fan_in). */
  biasInit?: InitRule;
}

/** y = x·Wᵀ + b for `x` [N, in], weight `<path>.weight` [out, in] as in torch (one Gemm). */
export function linear(m: Module, x: Tensor, options: LinearOptions): Tensor {
  if (x.rank !== 2) {
    throw new Error(`linear ${m.path}: input ${x.name} ${x.shapeText} must be [N, features]`);
  }
  const inFeatures = staticDim(m, x, 1);
  const shape = [options.outFeatures, inFeatures];
  const weight = m.param(
    "weight",
    shape,
    "weight",
    options.weightInit ?? torchDefaultWeight(shape),
  );
  const bias = options.bias === false
    ? null
    : m.param("bias", [options.outFeatures], "bias", options.biasInit ?? torchDefaultBias(shape));
  return ops.gemm(x, weight, bias, { transB: true }, m.nodeName("linear"));
}

/** max(x, 0). */
export function relu(m: Module, x: Tensor): Tensor {
  return ops.relu(x, m.nodeName("relu"));
}

/** Square max pooling (torch's MaxPool2d, floor mode). */
export function maxPool2d(
  m: Module,
  x: Tensor,
  kernel: number,
  stride: number,
  padding: number,
): Tensor {
  return ops.maxPool(
    x,
    {
      kernel: [kernel, kernel],
      strides: [stride, stride],
      pads: [padding, padding, padding, padding],
    },
    m.nodeName("maxpool"),
  );
}

/**
 * Global average pooling and flatten in one step: the mean over H, W of
 * [N, C, H, W] as [N, C] (torch's AdaptiveAvgPool2d(1) + flatten).
 */
export function globalAvgPool(x: Tensor): Tensor {
  if (x.rank !== 4) {
    throw new Error(`globalAvgPool: input ${x.name} ${x.shapeText} must be [N, C, H, W]`);
  }
  return ops.reduceMean(x, [2, 3], false);
}

/** Per-channel normalisation constants. */
export interface Normalization {
  mean: readonly number[];
  std: readonly number[];
}

/** (x − mean)/std per channel of [N, C, H, W], with constants (no parameters). */
export function normalizeInput(x: Tensor, normalization: Normalization): Tensor {
  const channels = x.shape[1];
  const { mean, std } = normalization;
  if (mean.length !== channels || std.length !== channels) {
    throw new Error(
      `normalizeInput: mean (${mean.length} values) and std (${std.length}) must match the ${channels} ` +
        `channels of ${x.name} ${x.shapeText}`,
    );
  }
  if (std.some((s) => !(s > 0))) {
    throw new Error(`normalizeInput: std ${JSON.stringify(std)} must be positive`);
  }
  const g = x.graph;
  const meanT = g.constant([...mean], x.dtype, [channels, 1, 1]);
  const stdT = g.constant([...std], x.dtype, [channels, 1, 1]);
  return ops.div(ops.sub(x, meanT), stdT, "normalize_input");
}
