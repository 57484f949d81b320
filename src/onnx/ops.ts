/**
 * Typed helpers over {@link Graph.node}: one function per ONNX op, taking
 * tensors and plain options, so graph code reads like array code.
 */
import { type DType, ONNX_DTYPE_CODE } from "./dtype.ts";
import type { Graph, Shape, Tensor } from "./graph.ts";

function g(t: Tensor): Graph {
  return t.graph;
}

/** A scalar constant with the dtype of `like`. */
export function scalarLike(like: Tensor, value: number): Tensor {
  return g(like).constant(value, like.dtype, []);
}

/** An int64 1-D constant (shapes, axes, pads). */
export function ints(graph: Graph, values: number[]): Tensor {
  return graph.constant(values, "int64", [values.length]);
}

/**
 * An elementwise binary node. A number becomes a constant of rank-matched
 * shape [1, …, 1], and a rank-0 tensor against a tensor of rank ≥ 2 is
 * reshaped to [1, …, 1]: ORT's CPU kernels run a rank-0 operand up to 30×
 * slower on tensors that end in size-1 dims (1×1 conv weights).
 */
function binary(opType: string, a: Tensor, b: Tensor | number, name?: string): Tensor {
  let rhs = typeof b === "number" ? g(a).constant(b, a.dtype, a.shape.map(() => 1)) : b;
  let lhs = a;
  if (rhs.rank === 0 && lhs.rank > 1) rhs = reshape(rhs, lhs.shape.map(() => 1));
  if (lhs.rank === 0 && rhs.rank > 1) lhs = reshape(lhs, rhs.shape.map(() => 1));
  return g(a).op(opType, [lhs, rhs], {}, name);
}

/** a + b (broadcasting). */
export const add = (a: Tensor, b: Tensor | number, name?: string) => binary("Add", a, b, name);
/** a − b (broadcasting). */
export const sub = (a: Tensor, b: Tensor | number, name?: string) => binary("Sub", a, b, name);
/** a · b (broadcasting). */
export const mul = (a: Tensor, b: Tensor | number, name?: string) => binary("Mul", a, b, name);
/** a / b (broadcasting). */
export const div = (a: Tensor, b: Tensor | number, name?: string) => binary("Div", a, b, name);
/** a ^ b (b a tensor or a constant exponent). */
export const pow = (a: Tensor, b: Tensor | number, name?: string) => binary("Pow", a, b, name);
/** Elementwise maximum. */
export const max = (a: Tensor, b: Tensor | number) => binary("Max", a, b);
/** Elementwise minimum. */
export const min = (a: Tensor, b: Tensor | number) => binary("Min", a, b);
/** Elementwise sum of several tensors (broadcasting). */
export const sum = (xs: Tensor[]) => g(xs[0]).op("Sum", xs);
/** a < b. */
export const less = (a: Tensor, b: Tensor | number) => binary("Less", a, b);
/** a > b. */
export const greater = (a: Tensor, b: Tensor | number) => binary("Greater", a, b);
/** a == b. */
export const equal = (a: Tensor, b: Tensor | number) => binary("Equal", a, b);
/** a >= b. */
export const greaterOrEqual = (a: Tensor, b: Tensor | number) => binary("GreaterOrEqual", a, b);
/** Logical or. */
export const or = (a: Tensor, b: Tensor) => g(a).op("Or", [a, b]);
/** Logical and. */
export const and = (a: Tensor, b: Tensor) => g(a).op("And", [a, b]);
/** Logical not. */
export const not = (a: Tensor) => g(a).op("Not", [a]);

/** −x. */
export const neg = (x: Tensor) => g(x).op("Neg", [x]);
/** eˣ. */
export const exp = (x: Tensor) => g(x).op("Exp", [x]);
/** ln x. */
export const log = (x: Tensor) => g(x).op("Log", [x]);
/** √x. */
export const sqrt = (x: Tensor) => g(x).op("Sqrt", [x]);
/** |x|. */
export const abs = (x: Tensor) => g(x).op("Abs", [x]);
/** max(x, 0). */
export const relu = (x: Tensor, name?: string) => g(x).op("Relu", [x], {}, name);
/** x where x > 0, alpha·x elsewhere. */
export const leakyRelu = (x: Tensor, alpha = 0.01) => g(x).op("LeakyRelu", [x], { alpha });
/** Logistic sigmoid. */
export const sigmoid = (x: Tensor) => g(x).op("Sigmoid", [x]);
/** tanh x. */
export const tanh = (x: Tensor) => g(x).op("Tanh", [x]);
/** sin x. */
export const sin = (x: Tensor) => g(x).op("Sin", [x]);
/** cos x. */
export const cos = (x: Tensor) => g(x).op("Cos", [x]);
/** Identity (a copy, or a renaming point). */
export const identity = (x: Tensor, name?: string) => g(x).op("Identity", [x], {}, name);
/** 1/x. */
export const reciprocal = (x: Tensor) => g(x).op("Reciprocal", [x]);
/** sign(x). */
export const sign = (x: Tensor) => g(x).op("Sign", [x]);
/** floor(x). */
export const floor = (x: Tensor) => g(x).op("Floor", [x]);

/** Converts to another dtype. */
export function cast(x: Tensor, to: DType): Tensor {
  return g(x).op("Cast", [x], { to: ONNX_DTYPE_CODE[to] });
}

/** Clips to [lo, hi] (either bound may be omitted). */
export function clip(x: Tensor, lo?: number, hi?: number): Tensor {
  const gr = g(x);
  return gr.op("Clip", [
    x,
    lo === undefined ? null : scalarLike(x, lo),
    hi === undefined ? null : scalarLike(x, hi),
  ]);
}

/** cond ? a : b. */
export const where = (cond: Tensor, a: Tensor, b: Tensor) => g(a).op("Where", [cond, a, b]);

/** Matrix product with NumPy batching. */
export const matmul = (a: Tensor, b: Tensor, name?: string) => g(a).op("MatMul", [a, b], {}, name);

/** Gemm: alpha·op(A)·op(B) + beta·C. */
export function gemm(
  a: Tensor,
  b: Tensor,
  c: Tensor | null,
  opts: { transA?: boolean; transB?: boolean; alpha?: number; beta?: number } = {},
  name?: string,
): Tensor {
  const attrs: Record<string, number> = {};
  if (opts.transA) attrs.transA = 1;
  if (opts.transB) attrs.transB = 1;
  if (opts.alpha !== undefined) attrs.alpha = opts.alpha;
  if (opts.beta !== undefined) attrs.beta = opts.beta;
  return g(a).op("Gemm", c ? [a, b, c] : [a, b], attrs, name);
}

/** Convolution options (2-D symmetric padding by default). */
export interface ConvOptions {
  strides?: number[];
  pads?: number[];
  dilations?: number[];
  group?: number;
}

function convAttrs(opts: ConvOptions, spatial: number): Record<string, number[] | number> {
  const attrs: Record<string, number[] | number> = {
    strides: opts.strides ?? Array(spatial).fill(1),
    pads: opts.pads ?? Array(2 * spatial).fill(0),
    dilations: opts.dilations ?? Array(spatial).fill(1),
  };
  if (opts.group !== undefined && opts.group !== 1) attrs.group = opts.group;
  return attrs;
}

/** N-D convolution. */
export function conv(
  x: Tensor,
  w: Tensor,
  bias: Tensor | null,
  opts: ConvOptions = {},
  name?: string,
): Tensor {
  const attrs = convAttrs(opts, w.rank - 2);
  attrs.kernel_shape = w.shape.slice(2) as number[];
  return g(x).op("Conv", bias ? [x, w, bias] : [x, w], attrs, name);
}

/**
 * BatchNormalization in inference form over channel axis 1 of `x`:
 * (x − mean)/√(variance + epsilon)·scale + bias, all four per channel ([C]).
 */
export function batchNormalization(
  x: Tensor,
  scale: Tensor,
  bias: Tensor,
  mean: Tensor,
  variance: Tensor,
  epsilon: number,
  name?: string,
): Tensor {
  return g(x).op("BatchNormalization", [x, scale, bias, mean, variance], { epsilon }, name);
}

/** Transposed convolution. */
export function convTranspose(
  x: Tensor,
  w: Tensor,
  opts: ConvOptions & { outputPadding?: number[] } = {},
): Tensor {
  const attrs = convAttrs(opts, w.rank - 2);
  if (opts.outputPadding) attrs.output_padding = opts.outputPadding;
  return g(x).op("ConvTranspose", [x, w], attrs);
}

/** Pooling options. */
export interface PoolOptions {
  kernel: number[];
  strides?: number[];
  pads?: number[];
  ceilMode?: boolean;
  countIncludePad?: boolean;
}

function poolAttrs(opts: PoolOptions): Record<string, number | number[]> {
  const n = opts.kernel.length;
  const attrs: Record<string, number | number[]> = {
    kernel_shape: opts.kernel,
    strides: opts.strides ?? Array(n).fill(1),
    pads: opts.pads ?? Array(2 * n).fill(0),
  };
  if (opts.ceilMode) attrs.ceil_mode = 1;
  return attrs;
}

/**
 * Max pooling. The node also outputs the indices of the maxima, so that its
 * gradient rule reuses them instead of pooling a second time.
 */
export const maxPool = (x: Tensor, opts: PoolOptions, name?: string) =>
  g(x).node("MaxPool", [x], poolAttrs(opts), { name, outputs: 2 })[0];
/** Max pooling that also returns the flat input index (over N·C·H·W) of each maximum. */
export function maxPoolWithIndices(x: Tensor, opts: PoolOptions): [Tensor, Tensor] {
  const [y, indices] = g(x).node("MaxPool", [x], poolAttrs(opts), { outputs: 2 });
  return [y, indices];
}

/** Average pooling (padding excluded from the count unless asked). */
export function averagePool(x: Tensor, opts: PoolOptions): Tensor {
  const attrs = poolAttrs(opts);
  if (opts.countIncludePad) attrs.count_include_pad = 1;
  return g(x).op("AveragePool", [x], attrs);
}

/** Mean over all spatial positions, keeping [N, C, 1, 1]. */
export const globalAveragePool = (x: Tensor, name?: string) =>
  g(x).op("GlobalAveragePool", [x], {}, name);

function reduceAttrs(
  axes: number[] | undefined,
  keepdims: boolean,
): Record<string, number | number[]> {
  const attrs: Record<string, number | number[]> = { keepdims: keepdims ? 1 : 0 };
  if (axes) attrs.axes = axes;
  return attrs;
}

/** Sum over axes (all when omitted). */
export function reduceSum(x: Tensor, axes?: number[], keepdims = true): Tensor {
  const inputs = axes ? [x, ints(g(x), axes)] : [x];
  return g(x).op("ReduceSum", inputs, { keepdims: keepdims ? 1 : 0 });
}
/** Mean over axes. */
export const reduceMean = (x: Tensor, axes?: number[], keepdims = true) =>
  g(x).op("ReduceMean", [x], reduceAttrs(axes, keepdims));
/** Max over axes. */
export const reduceMax = (x: Tensor, axes?: number[], keepdims = true) =>
  g(x).op("ReduceMax", [x], reduceAttrs(axes, keepdims));
/** log Σ exp over axes. */
export const reduceLogSumExp = (x: Tensor, axes?: number[], keepdims = true) =>
  g(x).op("ReduceLogSumExp", [x], reduceAttrs(axes, keepdims));
/** Σ x² over axes. */
export const reduceSumSquare = (x: Tensor, axes?: number[], keepdims = true) =>
  g(x).op("ReduceSumSquare", [x], reduceAttrs(axes, keepdims));
/** Min over axes. */
export const reduceMin = (x: Tensor, axes?: number[], keepdims = true) =>
  g(x).op("ReduceMin", [x], reduceAttrs(axes, keepdims));
/** √(Σ x²) over axes. */
export const reduceL2 = (x: Tensor, axes?: number[], keepdims = true) =>
  g(x).op("ReduceL2", [x], reduceAttrs(axes, keepdims));

/**
 * Number of entries of `x` over `axes`: a number when those dims are static,
 * else a scalar of x's dtype computed from its Shape.
 */
export function countOver(x: Tensor, axes: number[]): number | Tensor {
  let known = 1;
  let count: Tensor | undefined;
  let shape: Tensor | undefined;
  for (const a of axes) {
    const d = x.shape[a < 0 ? a + x.rank : a];
    if (typeof d === "number") {
      known *= d;
      continue;
    }
    shape ??= g(x).op("Shape", [x]);
    const size = cast(gather(shape, g(x).constant(a, "int64", []), 0), x.dtype);
    count = count ? mul(count, size) : size;
  }
  return count ? (known === 1 ? count : mul(count, known)) : known;
}

/** Softmax along an axis. */
export const softmax = (x: Tensor, axis = -1) => g(x).op("Softmax", [x], { axis });
/** Log-softmax along an axis. */
export const logSoftmax = (x: Tensor, axis = -1) => g(x).op("LogSoftmax", [x], { axis });
/** Index of the maximum along an axis. */
export const argMax = (x: Tensor, axis: number, keepdims = false) =>
  g(x).op("ArgMax", [x], { axis, keepdims: keepdims ? 1 : 0 });

/** Reshape to a constant shape (0 copies a dim, −1 infers one). */
export const reshape = (x: Tensor, shape: number[], name?: string) =>
  g(x).op("Reshape", [x, ints(g(x), shape)], {}, name);
/** Permutes axes. */
export const transpose = (x: Tensor, perm: number[]) => g(x).op("Transpose", [x], { perm });
/** Concatenates along an axis. */
export const concat = (xs: Tensor[], axis: number) => g(xs[0]).op("Concat", xs, { axis });
/** Slices `x[starts:ends:steps]` along axes. */
export function slice(
  x: Tensor,
  starts: number[],
  ends: number[],
  axes?: number[],
  steps?: number[],
): Tensor {
  const gr = g(x);
  const inputs: (Tensor | null)[] = [x, ints(gr, starts), ints(gr, ends)];
  if (axes || steps) inputs.push(ints(gr, axes ?? starts.map((_, i) => i)));
  if (steps) inputs.push(ints(gr, steps));
  return gr.op("Slice", inputs);
}
/** Gathers along an axis. */
export const gather = (x: Tensor, indices: Tensor, axis = 0) =>
  g(x).op("Gather", [x, indices], { axis });
/** Picks `x` entries at `indices` along an axis (indices shaped like the output). */
export const gatherElements = (x: Tensor, indices: Tensor, axis = 0) =>
  g(x).op("GatherElements", [x, indices], { axis });
/** Writes (or with `reduction` "add", adds) `updates` into a copy of `x` at `indices` along an axis. */
export function scatterElements(
  x: Tensor,
  indices: Tensor,
  updates: Tensor,
  axis = 0,
  reduction: "none" | "add" = "none",
): Tensor {
  const attrs: Record<string, number | string> = { axis };
  if (reduction !== "none") attrs.reduction = reduction;
  return g(x).op("ScatterElements", [x, indices, updates], attrs);
}
/** Inserts size-1 axes. */
export const unsqueeze = (x: Tensor, axes: number[]) => g(x).op("Unsqueeze", [x, ints(g(x), axes)]);
/** Removes size-1 axes. */
export const squeeze = (x: Tensor, axes: number[]) => g(x).op("Squeeze", [x, ints(g(x), axes)]);
/** Broadcasts to a shape. */
export const expand = (x: Tensor, shape: number[]) => g(x).op("Expand", [x, ints(g(x), shape)]);
/** Constant padding (pads as [begin..., end...]). */
export function pad(x: Tensor, pads: number[], value = 0): Tensor {
  return g(x).op("Pad", [x, ints(g(x), pads), scalarLike(x, value)], { mode: "constant" });
}
/** Flattens to 2-D at an axis. */
export const flatten = (x: Tensor, axis = 1) => g(x).op("Flatten", [x], { axis });
/** Repeats `x` `repeats[i]` times along each axis i. */
export const tile = (x: Tensor, repeats: number[]) => g(x).op("Tile", [x, ints(g(x), repeats)]);

/** A constant filled with `value`, shaped like a static shape. */
export function full(graph: Graph, shape: Shape, value: number, dtype: DType): Tensor {
  const count = shape.reduce<number>((n, d) => n * (d as number), 1);
  return graph.constant(new Array(count).fill(value), dtype, shape);
}
