/** Gradient rules of matrix products: MatMul (batched, broadcast, 1-D operands) and Gemm. */
import type { GradRule } from "../gradients.ts";
import { sumToShape } from "../broadcast.ts";
import type { Node, Tensor } from "../../onnx/graph.ts";
import * as ops from "../../onnx/ops.ts";

/** Swaps the last two axes. */
function transposeLast2(t: Tensor): Tensor {
  const perm = t.shape.map((_, i) => i);
  [perm[t.rank - 2], perm[t.rank - 1]] = [perm[t.rank - 1], perm[t.rank - 2]];
  return ops.transpose(t, perm);
}

/**
 * Gradient of a batched weight `b` [k, n] used as `a` [..., m, k] @ `b`:
 * one 2-D product over the flattened batch instead of a batched product and a sum.
 */
function sharedWeightGrad(a: Tensor, dy: Tensor): Tensor {
  const k = a.shape[a.rank - 1] as number;
  const n = dy.shape[dy.rank - 1] as number;
  return ops.matmul(ops.transpose(ops.reshape(a, [-1, k]), [1, 0]), ops.reshape(dy, [-1, n]));
}

function matmulGrad(node: Node, dy: Tensor): Tensor[] {
  const [a, b] = node.inputs as Tensor[];
  // 1-D operands are promoted to matrices as the op does: a [k] → [1, k], b [k] → [k, 1].
  const a2 = a.rank === 1 ? ops.unsqueeze(a, [0]) : a;
  const b2 = b.rank === 1 ? ops.unsqueeze(b, [1]) : b;
  let dy2 = dy;
  if (a.rank === 1) dy2 = ops.unsqueeze(dy2, [b.rank === 1 ? dy2.rank : dy2.rank - 1]);
  if (b.rank === 1) dy2 = ops.unsqueeze(dy2, [dy2.rank]);
  let da = sumToShape(ops.matmul(dy2, transposeLast2(b2)), a2.shape);
  const staticInner = typeof a2.shape[a2.rank - 1] === "number" &&
    typeof dy2.shape[dy2.rank - 1] === "number";
  let db = b2.rank === 2 && a2.rank > 2 && staticInner
    ? sharedWeightGrad(a2, dy2)
    : sumToShape(ops.matmul(transposeLast2(a2), dy2), b2.shape);
  if (a.rank === 1) da = ops.squeeze(da, [0]);
  if (b.rank === 1) db = ops.squeeze(db, [1]);
  return [da, db];
}

function gemmGrad(node: Node, dy: Tensor): (Tensor | undefined)[] {
  const [a, b, c] = node.inputs;
  const transA = node.attrs.transA === 1;
  const transB = node.attrs.transB === 1;
  // Attributes are float32 in the model: use the value ORT uses.
  const alpha = Math.fround((node.attrs.alpha as number | undefined) ?? 1);
  const beta = Math.fround((node.attrs.beta as number | undefined) ?? 1);
  const gemm = (x: Tensor, y: Tensor, tx: boolean, ty: boolean) =>
    ops.gemm(x, y, null, { transA: tx, transB: ty, alpha });
  // Y = alpha·A'·B' + beta·C with A' = transA ? Aᵀ : A, B' = transB ? Bᵀ : B.
  const da = transA ? gemm(b!, dy, transB, true) : gemm(dy, b!, false, !transB);
  const db = transB ? gemm(dy, a!, true, transA) : gemm(a!, dy, !transA, false);
  const dc = c ? sumToShape(beta === 1 ? dy : ops.mul(dy, beta), c.shape) : undefined;
  return [da, db, dc];
}

/** Rules for MatMul and Gemm. */
export const LINALG_RULES: Record<string, GradRule> = {
  MatMul: (node, [dy]) => matmulGrad(node, dy!),
  Gemm: (node, [dy]) => gemmGrad(node, dy!),
};
