/** Gradient rules of elementwise arithmetic (broadcast-aware). */
import type { GradRule } from "../gradients.ts";
import { sumToShape } from "../broadcast.ts";
import type { Node, Tensor } from "../../onnx/graph.ts";
import * as ops from "../../onnx/ops.ts";

/** Max and Min: the gradient goes to the inputs equal to the result, split evenly on ties. */
function extremumGrad(node: Node, dy: Tensor): Tensor[] {
  const y = node.outputs[0];
  const masks = node.inputs.map((x) => ops.cast(ops.equal(x!, y), y.dtype));
  const count = masks.length > 1 ? ops.sum(masks) : masks[0];
  const share = ops.div(dy, count);
  return node.inputs.map((x, k) => sumToShape(ops.mul(share, masks[k]), x!.shape));
}

/** Rules for Add, Sub, Mul, Div, Pow, Neg, Exp, Log, Sqrt, Identity, Max, Min, Sum, Mean, Where. */
export const ELEMENTWISE_RULES: Record<string, GradRule> = {
  Add: ({ inputs: [a, b] }, [dy]) => [sumToShape(dy!, a!.shape), sumToShape(dy!, b!.shape)],
  Sub: (
    { inputs: [a, b] },
    [dy],
  ) => [sumToShape(dy!, a!.shape), sumToShape(ops.neg(dy!), b!.shape)],
  Mul: ({ inputs: [a, b] }, [dy]) => [
    sumToShape(ops.mul(dy!, b!), a!.shape),
    sumToShape(ops.mul(dy!, a!), b!.shape),
  ],
  Div: ({ inputs: [a, b], outputs: [y] }, [dy]) => {
    const da = ops.div(dy!, b!);
    return [sumToShape(da, a!.shape), sumToShape(ops.neg(ops.mul(da, y)), b!.shape)];
  },
  Pow: ({ inputs: [a, b], outputs: [y] }, [dy]) => {
    // The exponent may be of another type (an int power): cast it for the base's gradient.
    const exponent = b!.dtype === y.dtype ? b! : ops.cast(b!, y.dtype);
    const da = ops.mul(dy!, ops.mul(exponent, ops.pow(a!, ops.sub(exponent, 1))));
    const db = b!.dtype === y.dtype
      ? sumToShape(ops.mul(dy!, ops.mul(y, ops.log(a!))), b!.shape)
      : undefined;
    return [sumToShape(da, a!.shape), db];
  },
  Neg: (_node, [dy]) => [ops.neg(dy!)],
  Identity: (_node, [dy]) => [dy],
  Exp: ({ outputs: [y] }, [dy]) => [ops.mul(dy!, y)],
  Log: ({ inputs: [x] }, [dy]) => [ops.div(dy!, x!)],
  Sqrt: ({ outputs: [y] }, [dy]) => [ops.div(dy!, ops.mul(y, 2))],
  Max: (node, [dy]) => extremumGrad(node, dy!),
  Min: (node, [dy]) => extremumGrad(node, dy!),
  Sum: ({ inputs }, [dy]) => inputs.map((x) => sumToShape(dy!, x!.shape)),
  Mean: ({ inputs }, [dy]) => {
    const share = ops.div(dy!, inputs.length);
    return inputs.map((x) => sumToShape(share, x!.shape));
  },
  Where: ({ inputs: [cond, a, b] }, [dy]) => {
    const zero = ops.scalarLike(dy!, 0);
    return [
      undefined,
      sumToShape(ops.where(cond!, dy!, zero), a!.shape),
      sumToShape(ops.where(cond!, zero, dy!), b!.shape),
    ];
  },
};
