/** Gradient rules of elementwise arithmetic (broadcast-aware). */
import type { GradRule } from "../gradients.ts";
import { sumToShape } from "../broadcast.ts";
import * as ops from "../../onnx/ops.ts";

/** Rules for Add, Sub, Mul, Div, Neg, Exp, Log, Sqrt, Identity. */
export const ELEMENTWISE_RULES: Record<string, GradRule> = {
  Add: ({ inputs: [a, b] }, [dy]) => [sumToShape(dy!, a!.shape), sumToShape(dy!, b!.shape)],
  Sub: ({ inputs: [a, b] }, [dy]) => [sumToShape(dy!, a!.shape), sumToShape(ops.neg(dy!), b!.shape)],
  Mul: ({ inputs: [a, b] }, [dy]) => [
    sumToShape(ops.mul(dy!, b!), a!.shape),
    sumToShape(ops.mul(dy!, a!), b!.shape),
  ],
  Div: ({ inputs: [a, b], outputs: [y] }, [dy]) => {
    const da = ops.div(dy!, b!);
    return [sumToShape(da, a!.shape), sumToShape(ops.neg(ops.mul(da, y)), b!.shape)];
  },
  Neg: (_node, [dy]) => [ops.neg(dy!)],
  Identity: (_node, [dy]) => [dy],
  Exp: ({ outputs: [y] }, [dy]) => [ops.mul(dy!, y)],
  Log: ({ inputs: [x] }, [dy]) => [ops.div(dy!, x!)],
  Sqrt: ({ outputs: [y] }, [dy]) => [ops.div(dy!, ops.mul(y, 2))],
};
