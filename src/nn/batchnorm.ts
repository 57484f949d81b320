/**
 * Batch normalisation (1-d over [N, C], 2-d over [N, C, H, W]). ORT's CUDA
 * provider has no training-mode BatchNormalization, so train mode computes
 * the batch mean and biased variance with primitive ops and normalises with
 * BatchNormalization in inference form, whose gradient is the composite rule
 * of the autodiff (src/autodiff/rules/normalization.ts). It reports new
 * running statistics as PyTorch does (momentum 0.1, unbiased variance in the
 * running estimate); eval mode uses the running statistics.
 */
import { BATCH_STATISTICS_RULE } from "../autodiff/mod.ts";
import { formatShape, type Tensor } from "../onnx/graph.ts";
import * as ops from "../onnx/ops.ts";
import { constantInit } from "./init.ts";
import { relu } from "./layers.ts";
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

  // Batch statistics by primitive ops (two passes: mean, then Σ(x − mean)²), normalization by
  // BatchNormalization in inference form, which both ORT providers run. The node's gradient is
  // the composite rule BATCH_STATISTICS_RULE: the backward keeps only x and the statistics.
  const axes = x.rank === 4 ? [0, 2, 3] : [0];
  const mean = ops.reduceMean(x, axes, true);
  // ReduceMean of the squares, not ReduceSumSquare: with ORT's CPU ReduceSumSquare, experiment
  // 27's first Adam step (tests/eth_parity_test.ts) landed 0.14 (relative) from torch's float64
  // step, against 0.009 with ReduceMean (torch's own float32 step: 0.04).
  const centered = ops.sub(x, mean);
  const variance = ops.reduceMean(ops.mul(centered, centered), axes, true);
  const y = ops.batchNormalization(
    x,
    weight,
    bias,
    ops.reshape(mean, [channels]),
    ops.reshape(variance, [channels]),
    eps,
    m.nodeName("bn_train"),
  );
  y.producer!.gradRule = BATCH_STATISTICS_RULE;

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

/**
 * ReLU(BN(x)) with BN under module `bn` and the ReLU named under `m`. In
 * train mode the backward recomputes the output from x and the batch
 * statistics (one BatchNormalization and one ReLU pass) where it reads it —
 * the ReLU mask and the next layer's weight gradient — instead of keeping
 * it from the forward: a conv→BN→ReLU then keeps only its conv output (the
 * BN backward reads that), where PyTorch keeps both.
 */
export function batchNormRelu(
  m: Module,
  bn: Module,
  x: Tensor,
  options: BatchNormOptions = {},
): Tensor {
  const y = batchNorm(bn, x, options);
  const out = relu(m, y);
  if (bn.train) y.producer!.recompute = out.producer!.recompute = true;
  return out;
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
