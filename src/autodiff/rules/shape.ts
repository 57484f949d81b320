/**
 * Gradient rules of ops that move values without arithmetic: reshapes,
 * transposes, slicing, gathering, padding, tiling. Shape, index and pad-value
 * inputs take no gradient.
 */
import type { GradRule } from "../gradients.ts";
import { sumToShape } from "../broadcast.ts";
import { expandLike } from "./reduce.ts";
import { formatShape, type Node, type Shape, type Tensor } from "../../onnx/graph.ts";
import * as ops from "../../onnx/ops.ts";

function fail(node: Node, message: string): never {
  throw new Error(`gradient of ${node.opType} (node ${node.name}): ${message}`);
}

/** Integer values of a constant input (axes, starts, pads...). */
function constInts(node: Node, k: number): number[] {
  const t = node.inputs[k];
  if (!t?.constValue) fail(node, `input ${k} must be a constant`);
  return Array.from(t.constValue as ArrayLike<number | bigint>, Number);
}

function normAxis(axis: number, rank: number): number {
  return axis < 0 ? axis + rank : axis;
}

function staticDim(node: Node, shape: Shape, axis: number, what: string): number {
  const d = shape[axis];
  if (typeof d !== "number") {
    fail(node, `${what} along symbolic dim ${d} (axis ${axis}) is not supported`);
  }
  return d;
}

/** `t` reshaped to the shape of `like` (through Shape(like) when it has symbolic dims). */
function reshapeLike(t: Tensor, like: Tensor): Tensor {
  if (like.shape.every((d) => typeof d === "number")) return ops.reshape(t, like.shape as number[]);
  return t.graph.op("Reshape", [t, like.graph.op("Shape", [like])]);
}

/**
 * Reshapes `t` so that axes from `axis` on become `middle` followed by `rest`,
 * keeping the leading axes (copied with 0, so they may be symbolic).
 */
function reshapeFrom(node: Node, t: Tensor, axis: number, middle: number[], rest: Shape): Tensor {
  const symbolic = rest.filter((d) => typeof d !== "number").length;
  if (symbolic > 1) {
    fail(node, `trailing dims ${formatShape(rest)} have more than one symbolic dim`);
  }
  const target = [
    ...Array(axis).fill(0),
    ...middle,
    ...rest.map((d) => (typeof d === "number" ? d : -1)),
  ];
  const out = ops.reshape(t, target);
  const expected = [...t.shape.slice(0, axis), ...middle, ...rest];
  if (out.shape.some((d, i) => d !== expected[i])) {
    fail(
      node,
      `cannot restore shape ${formatShape(expected)} from ${t.shapeText} with symbolic dims`,
    );
  }
  return out;
}

/** Sum-scatter of `updates` into zeros shaped like `like`, at `indices` along `axis`. */
function scatterAdd(like: Tensor, indices: Tensor, updates: Tensor, axis: number): Tensor {
  const zeros = expandLike(ops.scalarLike(like, 0), like);
  return ops.scatterElements(zeros, indices, updates, axis, "add");
}

/** Reverses `t` along `axis`. */
function reverse(t: Tensor, axis: number): Tensor {
  const n = t.shape[axis] as number;
  return ops.slice(t, [-1], [-n - 1], [axis], [-1]);
}

/** Puts `step − 1` zeros after every entry along `axis`: [.., c, ..] → [.., c·step, ..]. */
function spread(node: Node, t: Tensor, axis: number, step: number): Tensor {
  const spaced = ops.unsqueeze(t, [axis + 1]);
  const pads = Array(2 * spaced.rank).fill(0);
  pads[spaced.rank + axis + 1] = step - 1;
  const count = t.shape[axis] as number;
  return reshapeFrom(node, ops.pad(spaced, pads), axis, [count * step], t.shape.slice(axis + 1));
}

function sliceGrad(node: Node, dy: Tensor): Tensor {
  const x = node.inputs[0]!;
  // The ends are not needed: dy's shape says how many entries each axis took.
  const starts = constInts(node, 1);
  const axes = node.inputs[3] ? constInts(node, 3) : starts.map((_, i) => i);
  const steps = node.inputs[4] ? constInts(node, 4) : starts.map(() => 1);
  const pads = Array(2 * x.rank).fill(0);
  let g = dy;
  axes.forEach((raw, i) => {
    const axis = normAxis(raw, x.rank);
    const dim = staticDim(node, x.shape, axis, "slicing");
    const count = dy.shape[axis] as number;
    const start = starts[i] < 0 ? starts[i] + dim : starts[i];
    let step = steps[i];
    let first: number;
    if (step > 0) {
      first = Math.min(Math.max(start, 0), dim);
    } else {
      // Taken backwards from `start`: reverse, and it is a forward slice from the lowest index.
      first = Math.min(Math.max(start, -1), dim - 1) + (count - 1) * step;
      step = -step;
      g = reverse(g, axis);
    }
    let length = count;
    if (step > 1 && count > 0) {
      g = spread(node, g, axis, step);
      length = count * step;
      if (first + length > dim) {
        length = dim - first;
        g = ops.slice(g, [0], [length], [axis]);
      }
    }
    pads[axis] = first;
    pads[x.rank + axis] = dim - first - length;
  });
  return pads.some((p) => p !== 0) ? ops.pad(g, pads) : g;
}

function concatGrad(node: Node, dy: Tensor): Tensor[] {
  const first = node.inputs[0]!;
  const axis = normAxis((node.attrs.axis as number | undefined) ?? 0, first.rank);
  let offset = 0;
  return node.inputs.map((x) => {
    const size = staticDim(node, x!.shape, axis, "concatenation");
    const part = ops.slice(dy, [offset], [offset + size], [axis]);
    offset += size;
    return part;
  });
}

function gatherGrad(node: Node, dy: Tensor): (Tensor | undefined)[] {
  const [x, indices] = node.inputs as Tensor[];
  const axis = normAxis((node.attrs.axis as number | undefined) ?? 0, x.rank);
  if (indices.shape.some((d) => typeof d !== "number")) {
    fail(node, `indices ${indices.shapeText} must be static`);
  }
  const count = indices.size;
  const rest = x.shape.slice(axis + 1);
  // dy has x's axes with `axis` replaced by the indices' axes: flatten those to one.
  const updates = indices.rank === 0
    ? ops.unsqueeze(dy, [axis])
    : indices.rank === 1
    ? dy
    : reshapeFrom(node, dy, axis, [count], rest);
  const column = ops.reshape(indices, [count, ...rest.map(() => 1)]);
  return [scatterAdd(x, expandLike(column, updates), updates, axis), undefined];
}

function padGrad(node: Node, dy: Tensor): Tensor {
  const x = node.inputs[0]!;
  const mode = (node.attrs.mode as string | undefined) ?? "constant";
  if (mode !== "constant") fail(node, `mode ${mode} is not supported (only constant)`);
  const pads = constInts(node, 1);
  if (pads.some((p) => p < 0)) fail(node, `negative pads ${formatShape(pads)} are not supported`);
  const axes: number[] = [];
  const starts: number[] = [];
  const ends: number[] = [];
  for (let i = 0; i < x.rank; i++) {
    if (pads[i] === 0 && pads[i + x.rank] === 0) continue;
    axes.push(i);
    starts.push(pads[i]);
    ends.push(pads[i] + staticDim(node, x.shape, i, "padding"));
  }
  return axes.length > 0 ? ops.slice(dy, starts, ends, axes) : dy;
}

function tileGrad(node: Node, dy: Tensor): Tensor {
  const x = node.inputs[0]!;
  const repeats = constInts(node, 1);
  const dims = x.shape.map((_, i) => staticDim(node, x.shape, i, "tiling"));
  // Output axis i holds repeats[i] copies of x's axis i: split it as [repeats, dim], sum the copies.
  const split = ops.reshape(dy, dims.flatMap((d, i) => [repeats[i], d]));
  return ops.reduceSum(split, dims.map((_, i) => 2 * i), false);
}

/** Rules for Reshape, Flatten, Transpose, Concat, Slice, Gather, GatherElements, Unsqueeze, Squeeze, Expand, Pad, Tile. */
export const SHAPE_RULES: Record<string, GradRule> = {
  Reshape: ({ inputs: [x] }, [dy]) => [reshapeLike(dy!, x!), undefined],
  Flatten: ({ inputs: [x] }, [dy]) => [reshapeLike(dy!, x!)],
  Transpose: ({ inputs: [x], attrs }, [dy]) => {
    const perm = (attrs.perm as number[] | undefined) ?? x!.shape.map((_, i) => x!.rank - 1 - i);
    const inverse = perm.map(() => 0);
    perm.forEach((p, i) => (inverse[p] = i));
    return [ops.transpose(dy!, inverse)];
  },
  Concat: (node, [dy]) => concatGrad(node, dy!),
  Slice: (node, [dy]) => [sliceGrad(node, dy!)],
  Gather: (node, [dy]) => gatherGrad(node, dy!),
  GatherElements: ({ inputs: [x, indices], attrs }, [dy]) => {
    const axis = normAxis((attrs.axis as number | undefined) ?? 0, x!.rank);
    return [scatterAdd(x!, indices!, dy!, axis), undefined];
  },
  Unsqueeze: (node, [dy]) => [ops.squeeze(dy!, constInts(node, 1)), undefined],
  Squeeze: (node, [dy]) => {
    const x = node.inputs[0]!;
    if (!node.inputs[1]) return [reshapeLike(dy!, x)];
    return [ops.unsqueeze(dy!, constInts(node, 1).map((a) => normAxis(a, x.rank))), undefined];
  },
  Expand: ({ inputs: [x] }, [dy]) => [sumToShape(dy!, x!.shape), undefined],
  Pad: (node, [dy]) => [padGrad(node, dy!)],
  Tile: (node, [dy]) => [tileGrad(node, dy!), undefined],
};
