/** Reduction of broadcast gradients back to an input's shape. */
import type { Shape, Tensor } from "../onnx/graph.ts";
import * as ops from "../onnx/ops.ts";

/**
 * Sums `grad` over the axes along which a tensor of `shape` was broadcast to
 * produce it (leading extra axes, and axes where `shape` has 1), then reshapes
 * to `shape`. Returns `grad` unchanged when no reduction is needed.
 */
export function sumToShape(grad: Tensor, shape: Shape): Tensor {
  const extra = grad.rank - shape.length;
  if (extra < 0) {
    throw new Error(
      `sumToShape: gradient ${grad.shapeText} has lower rank than [${shape.join(", ")}]`,
    );
  }
  const axes: number[] = [];
  for (let i = 0; i < grad.rank; i++) {
    if (i < extra) axes.push(i);
    else if (shape[i - extra] === 1 && grad.shape[i] !== 1) axes.push(i);
  }
  const summed = axes.length > 0 ? ops.reduceSum(grad, axes, true) : grad;
  // Dropping the leading axes by Squeeze (not Reshape) keeps any number of symbolic dims.
  return extra > 0 ? ops.squeeze(summed, Array.from({ length: extra }, (_, i) => i)) : summed;
}
