/**
 * Batch normalisation (1-d over [N, C], 2-d over [N, C, H, W]) written with
 * primitive ops, since ORT's CUDA provider has no training-mode
 * BatchNormalization. Train mode normalises with the batch mean and biased
 * variance and reports new running statistics as PyTorch does (momentum 0.1,
 * unbiased variance in the running estimate); eval mode uses the running
 * statistics.
 */
import { formatShape, type Tensor } from "../onnx/graph.ts";
import * as ops from "../onnx/ops.ts";
import { constantInit } from "./init.ts";
import type { Module } from "./module.ts";

/** Options of {@link batchNorm}. */
export interface BatchNormOptions {
  /** Added to the variance (PyTorch's default 1e-5). */
  eps?: number;
  /** Weight of the new batch statistic in the running estimate (PyTorch's default 0.1). */
  momentum?: number;
}

/**
 * BN over channel axis 1 of `x` ([N, C] or [N, C, H, W]) with parameters
 * `<path>.weight`/`.bias` and buffers `<path>.running_mean`/`.running_var`
 * (under `<path>.bn_list.<branch>` when the store has several BN branches).
 * In train mode the new running statistics are added to the module's updates.
 */
export function batchNorm(m: Module, x: Tensor, options: BatchNormOptions = {}): Tensor {
  const eps = options.eps ?? 1e-5;
  const momentum = options.momentum ?? 0.1;
  if (x.rank !== 2 && x.rank !== 4) {
    throw new Error(
      `batchNorm ${m.path}: input ${x.name} ${x.shapeText} must be [N, C] or [N, C, H, W]`,
    );
  }
  const channels = x.shape[1];
  if (typeof channels !== "number") {
    throw new Error(`batchNorm ${m.path}: channel dim of ${x.name} ${x.shapeText} must be static`);
  }
  const bn = m.store.bnBranches > 1 ? m.child("bn_list").child(m.branch) : m;
  const weight = bn.param("weight", [channels], "bn_weight", constantInit(1));
  const bias = bn.param("bias", [channels], "bn_bias", constantInit(0));
  const runningMean = bn.buffer("running_mean", [channels], constantInit(0));
  const runningVar = bn.buffer("running_var", [channels], constantInit(1));
  // Per-channel [C] values broadcast against [N, C] directly, against [N, C, H, W] as [C, 1, 1].
  const perChannel = (t: Tensor) => (x.rank === 4 ? ops.reshape(t, [channels, 1, 1]) : t);

  if (!m.train) {
    const scale = ops.div(weight, ops.sqrt(ops.add(runningVar, eps)));
    const shift = ops.sub(bias, ops.mul(runningMean, scale));
    return ops.add(ops.mul(x, perChannel(scale)), perChannel(shift), m.nodeName("bn_eval"));
  }

  const axes = x.rank === 4 ? [0, 2, 3] : [0];
  const mean = ops.reduceMean(x, axes, true);
  const centered = ops.sub(x, mean);
  const variance = ops.reduceMean(ops.mul(centered, centered), axes, true);
  const scale = ops.div(perChannel(weight), ops.sqrt(ops.add(variance, eps)));
  const y = ops.add(ops.mul(centered, scale), perChannel(bias), m.nodeName("bn_train"));

  const g = m.graph;
  const batchMean = ops.reshape(g.stopGradient(mean), [channels]);
  const batchVar = ops.reshape(g.stopGradient(variance), [channels]);
  const unbias = unbiasFactor(x, axes, m.path);
  const newMean = ops.add(ops.mul(runningMean, 1 - momentum), ops.mul(batchMean, momentum));
  const newVar = ops.add(
    ops.mul(runningVar, 1 - momentum),
    ops.mul(batchVar, ops.mul(unbias, momentum)),
  );
  m.addUpdate(runningMean, newMean);
  m.addUpdate(runningVar, newVar);
  return y;
}

/** n/(n−1) for the n values reduced per channel: a constant when static, else computed from Shape. */
function unbiasFactor(x: Tensor, axes: number[], where: string): Tensor {
  const g = x.graph;
  let staticCount = 1;
  const symbolic: number[] = [];
  for (const a of axes) {
    const d = x.shape[a];
    if (typeof d === "number") staticCount *= d;
    else symbolic.push(a);
  }
  if (symbolic.length === 0) {
    if (staticCount < 2) {
      throw new Error(
        `batchNorm ${where}: train mode needs more than one value per channel, input is ${
          formatShape(x.shape)
        }`,
      );
    }
    return g.constant(staticCount / (staticCount - 1), x.dtype, []);
  }
  const shape = ops.cast(g.op("Shape", [x]), x.dtype);
  let count: Tensor = g.constant(staticCount, x.dtype, []);
  for (const a of symbolic) count = ops.mul(count, ops.gather(shape, g.constant(a, "int64", [])));
  return ops.div(count, ops.sub(count, 1));
}
