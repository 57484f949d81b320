/** Gradient rules of pointwise activations, Clip, Cast and the softmax family. */
import type { GradRule } from "../gradients.ts";
import { sumToShape } from "../broadcast.ts";
import { isFloat } from "../../onnx/dtype.ts";
import type { Node, Tensor } from "../../onnx/graph.ts";
import * as ops from "../../onnx/ops.ts";

/** `dy` where `mask` holds, 0 elsewhere. */
function maskGrad(mask: Tensor, dy: Tensor): Tensor {
  return ops.where(mask, dy, ops.scalarLike(dy, 0));
}

/** The float attribute `name` as ORT reads it (a float32 attribute, widened). */
function floatAttr(node: Node, name: string, fallback: number): number {
  const v = node.attrs[name];
  if (v === undefined) return fallback;
  if (typeof v !== "number") {
    throw new Error(`${node.opType} (node ${node.name}): attribute ${name} must be a number`);
  }
  return Math.fround(v);
}

function softmaxAxis(node: Node): number {
  const axis = (node.attrs.axis as number | undefined) ?? -1;
  return axis < 0 ? axis + node.inputs[0]!.rank : axis;
}

/** Rules for Abs, Relu, LeakyRelu, Sigmoid, Tanh, Reciprocal, Sin, Cos, Clip, Cast, Softmax, LogSoftmax. */
export const UNARY_RULES: Record<string, GradRule> = {
  Abs: ({ inputs: [x] }, [dy]) => [ops.mul(dy!, ops.sign(x!))],
  // From the output (y > 0 exactly where x > 0): the next layer keeps y anyway, x need not live on.
  // dy · (y > 0) as a Mul with the mask cast to dy's type: ORT CPU runs Cast and Mul
  // in 60 % of the time of a Where on ResNet activations. Unlike Where, a NaN or
  // infinite dy stays NaN where the unit is off: a broken gradient is never hidden.
  Relu: ({ outputs: [y] }, [dy]) => [ops.mul(dy!, ops.cast(ops.greater(y, 0), dy!.dtype))],
  LeakyRelu: (node, [dy]) => {
    const alpha = floatAttr(node, "alpha", 0.01);
    return [ops.where(ops.greater(node.inputs[0]!, 0), dy!, ops.mul(dy!, alpha))];
  },
  Sigmoid: ({ outputs: [y] }, [dy]) => [ops.mul(dy!, ops.mul(y, ops.sub(ops.scalarLike(y, 1), y)))],
  Tanh: ({ outputs: [y] }, [dy]) => [ops.mul(dy!, ops.sub(ops.scalarLike(y, 1), ops.mul(y, y)))],
  Reciprocal: ({ outputs: [y] }, [dy]) => [ops.neg(ops.mul(dy!, ops.mul(y, y)))],
  Sin: ({ inputs: [x] }, [dy]) => [ops.mul(dy!, ops.cos(x!))],
  Cos: ({ inputs: [x] }, [dy]) => [ops.neg(ops.mul(dy!, ops.sin(x!)))],
  Clip: ({ inputs: [x, lo, hi] }, [dy]) => {
    // x takes the gradient strictly inside the bounds; a bound takes it where it clipped.
    let inside: Tensor | undefined;
    const grads: (Tensor | undefined)[] = [undefined, undefined, undefined];
    if (lo) {
      inside = ops.greater(x!, lo);
      grads[1] = sumToShape(maskGrad(ops.not(inside), dy!), lo.shape);
    }
    if (hi) {
      const below = ops.less(x!, hi);
      inside = inside ? ops.and(inside, below) : below;
      const clipped = lo ? ops.and(ops.not(below), ops.greater(x!, lo)) : ops.not(below);
      grads[2] = sumToShape(maskGrad(clipped, dy!), hi.shape);
    }
    grads[0] = inside ? maskGrad(inside, dy!) : dy;
    return grads;
  },
  Cast: ({ inputs: [x] }, [dy]) => [isFloat(x!.dtype) ? ops.cast(dy!, x!.dtype) : undefined],
  Softmax: (node, [dy]) => {
    const y = node.outputs[0];
    const dot = ops.reduceSum(ops.mul(dy!, y), [softmaxAxis(node)], true);
    return [ops.mul(y, ops.sub(dy!, dot))];
  },
  LogSoftmax: (node, [dy]) => {
    const y = node.outputs[0];
    const total = ops.reduceSum(dy!, [softmaxAxis(node)], true);
    return [ops.sub(dy!, ops.mul(ops.exp(y), total))];
  },
};
