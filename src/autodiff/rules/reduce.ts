/** Gradient rules of reductions. */
import type { GradRule } from "../gradients.ts";
import type { Node, Tensor } from "../../onnx/graph.ts";
import * as ops from "../../onnx/ops.ts";

/** Broadcasts `t` to the shape of `like` (static shapes by constant, symbolic via Shape). */
export function expandLike(t: Tensor, like: Tensor): Tensor {
  if (like.shape.every((d) => typeof d === "number")) return ops.expand(t, like.shape as number[]);
  const shape = like.graph.op("Shape", [like]);
  return like.graph.op("Expand", [t, shape]);
}

/** Axes a reduce node reduced over (normalized, sorted). */
export function reducedAxes(node: Node): number[] {
  const x = node.inputs[0]!;
  let axes: number[] | undefined;
  if (node.opType === "ReduceSum") {
    const a = node.inputs[1];
    axes = a?.constValue
      ? Array.from(a.constValue as ArrayLike<number | bigint>, Number)
      : undefined;
  } else {
    axes = node.attrs.axes as number[] | undefined;
  }
  if (!axes || axes.length === 0) return x.shape.map((_, i) => i);
  return axes.map((a) => (a < 0 ? a + x.rank : a)).sort((a, b) => a - b);
}

/** `dy` of a reduce node, with the reduced axes restored as size 1. */
export function keepDims(node: Node, dy: Tensor): Tensor {
  const keep = (node.attrs.keepdims ?? 1) === 1;
  return keep ? dy : ops.unsqueeze(dy, reducedAxes(node));
}

/** Same for the node's output value. */
function outputKept(node: Node): Tensor {
  return keepDims(node, node.outputs[0]);
}

/** Number of entries reduced into each output value: a number, or a tensor when a reduced dim is symbolic. */
function reducedCount(node: Node): number | Tensor {
  return ops.countOver(node.inputs[0]!, reducedAxes(node));
}

/** ReduceMax and ReduceMin: ties share the gradient equally, as in tinygrad and JAX. */
function extremumGrad(node: Node, dy: Tensor): Tensor {
  const x = node.inputs[0]!;
  const isExtremum = ops.cast(ops.equal(x, outputKept(node)), x.dtype);
  const count = ops.reduceSum(isExtremum, reducedAxes(node), true);
  return ops.mul(ops.div(isExtremum, count), keepDims(node, dy));
}

/** Rules for ReduceSum, ReduceMean, ReduceMax, ReduceMin, ReduceL2, ReduceLogSumExp, ReduceSumSquare. */
export const REDUCE_RULES: Record<string, GradRule> = {
  ReduceSum: (node, [dy]) => [expandLike(keepDims(node, dy!), node.inputs[0]!)],
  ReduceMean: (
    node,
    [dy],
  ) => [expandLike(ops.div(keepDims(node, dy!), reducedCount(node)), node.inputs[0]!)],
  ReduceSumSquare: (node, [dy]) => {
    const x = node.inputs[0]!;
    return [ops.mul(ops.mul(keepDims(node, dy!), 2), x)];
  },
  ReduceLogSumExp: (node, [dy]) => {
    const x = node.inputs[0]!;
    const softmax = ops.exp(ops.sub(x, outputKept(node)));
    return [ops.mul(softmax, keepDims(node, dy!))];
  },
  ReduceMax: (node, [dy]) => [extremumGrad(node, dy!)],
  ReduceMin: (node, [dy]) => [extremumGrad(node, dy!)],
  ReduceL2: (
    node,
    [dy],
  ) => [ops.mul(ops.div(node.inputs[0]!, outputKept(node)), keepDims(node, dy!))],
};
