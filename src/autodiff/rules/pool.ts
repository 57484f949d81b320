/**
 * Gradient rules of pooling. MaxPool sends each output gradient to the input
 * position of its maximum, taken from MaxPool's Indices output (ORT and
 * PyTorch both pick the first maximum in window scan order, so ties go where
 * PyTorch sends them). AveragePool spreads it evenly over the window.
 */
import type { GradRule } from "../gradients.ts";
import type { Node, Tensor } from "../../onnx/graph.ts";
import * as ops from "../../onnx/ops.ts";
import { expandLike } from "./reduce.ts";
import { chooseInputGradStrategy, type Conv2dGeometry, convInputGrad } from "./conv.ts";

function fail(node: Node, message: string): never {
  throw new Error(`gradient of ${node.opType} (node ${node.name}): ${message}`);
}

function staticDims(node: Node, t: Tensor, from: number): number[] {
  return t.shape.slice(from).map((d, i) => {
    if (typeof d !== "number") fail(node, `dim ${from + i} of ${t.name} must be static, got ${d}`);
    return d;
  });
}

/** Reshapes `t` to the shape of `like` (a Shape node when `like` has symbolic dims). */
function reshapeLike(t: Tensor, like: Tensor): Tensor {
  if (like.shape.every((d) => typeof d === "number")) return ops.reshape(t, like.shape as number[]);
  return t.graph.op("Reshape", [t, t.graph.op("Shape", [like])]);
}

function maxPoolGrad(node: Node, dy: Tensor): Tensor {
  const x = node.inputs[0]!;
  if ((node.attrs.storage_order ?? 0) !== 0) {
    fail(node, `storage_order ${node.attrs.storage_order} is not supported (0 is)`);
  }
  // A MaxPool built without its Indices output is run again with it (ORT runs both nodes).
  const indices = node.outputs[1] ??
    x.graph.node("MaxPool", [x], node.attrs, { outputs: 2, name: `${node.name}_indices` })[1];
  const zeros = ops.reshape(expandLike(ops.scalarLike(dy, 0), x), [-1]);
  const flat = ops.scatterElements(
    zeros,
    ops.reshape(indices, [-1]),
    ops.reshape(dy, [-1]),
    0,
    "add",
  );
  return reshapeLike(flat, x);
}

/** Window counts of each output position along one axis, as AveragePool divides by. */
function windowCounts(
  inSize: number,
  outSize: number,
  kernel: number,
  stride: number,
  padBegin: number,
  padEnd: number,
  includePad: boolean,
): number[] {
  const counts: number[] = [];
  for (let o = 0; o < outSize; o++) {
    const start = o * stride - padBegin;
    const end = start + kernel;
    counts.push(
      includePad
        ? Math.min(end, inSize + padEnd) - start
        : Math.min(end, inSize) - Math.max(start, 0),
    );
  }
  return counts;
}

function averagePoolGrad(node: Node, dy: Tensor): Tensor {
  const x = node.inputs[0]!;
  const spatial = x.rank - 2;
  if (spatial !== 1 && spatial !== 2) {
    fail(node, `${spatial}-D pooling is not implemented (1-D and 2-D are)`);
  }
  const dilations = (node.attrs.dilations as number[] | undefined) ?? [];
  if (dilations.some((d) => d !== 1)) {
    fail(node, `dilations ${JSON.stringify(dilations)} are not supported`);
  }
  const lift = (v: number[], fill: number) => (spatial === 1 ? [fill, v[0]] : v);
  const channels = staticDims(node, x, 1)[0];
  const inSize = lift(staticDims(node, x, 2), 1);
  const outSize = lift(staticDims(node, dy, 2), 1);
  const kernel = lift(node.attrs.kernel_shape as number[], 1);
  const strides = lift((node.attrs.strides as number[] | undefined) ?? Array(spatial).fill(1), 1);
  const rawPads = (node.attrs.pads as number[] | undefined) ?? Array(2 * spatial).fill(0);
  const pads = spatial === 1 ? [0, rawPads[0], 0, rawPads[1]] : rawPads;
  const includePad = node.attrs.count_include_pad === 1;
  const counts = [0, 1].map((a) =>
    windowCounts(inSize[a], outSize[a], kernel[a], strides[a], pads[a], pads[a + 2], includePad)
  );
  const scale = counts[0].flatMap((ch) => counts[1].map((cw) => 1 / (ch * cw)));
  const uniform = scale.every((v) => v === scale[0]);
  const dyShape = [-1, channels, outSize[0], outSize[1]];
  const scaled = uniform
    ? ops.mul(dy, scale[0])
    : ops.mul(dy, dy.graph.constant(scale, dy.dtype, spatial === 1 ? [outSize[1]] : outSize));

  const tiling = kernel.every((k, a) => k === strides[a] && outSize[a] * k <= inSize[a]) &&
    pads.every((p) => p === 0);
  let dx: Tensor;
  if (tiling) {
    // Non-overlapping windows: repeat each value over its window, zero the uncovered tail.
    const spread = ops.expand(ops.reshape(scaled, [...dyShape.slice(0, 3), 1, outSize[1], 1]), [
      1,
      1,
      1,
      kernel[0],
      1,
      kernel[1],
    ]);
    const tiled = ops.reshape(spread, [
      -1,
      channels,
      outSize[0] * kernel[0],
      outSize[1] * kernel[1],
    ]);
    const tail = [inSize[0] - outSize[0] * kernel[0], inSize[1] - outSize[1] * kernel[1]];
    dx = tail.some((t) => t > 0) ? ops.pad(tiled, [0, 0, 0, 0, 0, 0, tail[0], tail[1]]) : tiled;
  } else {
    // Overlapping windows: the input gradient of a one-channel Conv with a kernel of ones.
    // The end pads grow to cover windows that ceil_mode lets run past them.
    const endPads = [0, 1].map((a) =>
      Math.max(pads[a + 2], (outSize[a] - 1) * strides[a] + kernel[a] - inSize[a] - pads[a])
    );
    const geo: Conv2dGeometry = {
      inChannels: 1,
      outChannels: 1,
      group: 1,
      inSize: [inSize[0], inSize[1]],
      outSize: [outSize[0], outSize[1]],
      kernel: [kernel[0], kernel[1]],
      strides: [strides[0], strides[1]],
      dilations: [1, 1],
      pads: [pads[0], pads[1], endPads[0], endPads[1]],
    };
    const ones = dy.graph.constant(new Array(kernel[0] * kernel[1]).fill(1), dy.dtype, [
      1,
      1,
      kernel[0],
      kernel[1],
    ]);
    const perChannel = ops.reshape(scaled, [-1, 1, outSize[0], outSize[1]]);
    dx = convInputGrad(perChannel, ones, geo, chooseInputGradStrategy(geo));
  }
  return reshapeLike(dx, x);
}

function globalAveragePoolGrad(node: Node, dy: Tensor): Tensor {
  const x = node.inputs[0]!;
  const count = staticDims(node, x, 2).reduce((a, b) => a * b, 1);
  return expandLike(ops.div(dy, count), x);
}

/** Rules for MaxPool, AveragePool and GlobalAveragePool. */
export const POOL_RULES: Record<string, GradRule> = {
  MaxPool: (node, [dy]) => [dy ? maxPoolGrad(node, dy) : undefined],
  AveragePool: (node, [dy]) => [averagePoolGrad(node, dy!)],
  GlobalAveragePool: (node, [dy]) => [globalAveragePoolGrad(node, dy!)],
};
