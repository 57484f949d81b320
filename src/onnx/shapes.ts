/**
 * Build-time shape and dtype rules, one per ONNX op (opset 17). A node whose
 * inputs do not fit its op fails here, with the op, node and shapes named.
 */
import type { DType } from "./dtype.ts";
import type { AttrValue, Dim, Graph, Shape, Tensor } from "./graph.ts";

/** Dtype and shape of one output. */
export interface ValueInfo {
  dtype: DType;
  shape: Shape;
}

type Inputs = (Tensor | null)[];
type Attrs = Record<string, AttrValue>;

/** Context handed to a rule: raises errors that name the node. */
class RuleContext {
  constructor(
    readonly opType: string,
    readonly nodeName: string,
    readonly inputs: Inputs,
    readonly attrs: Attrs,
    readonly outputCount: number,
  ) {}

  fail(message: string): never {
    const shapes = this.inputs.map((t) => (t ? `${t.name}${fmt(t.shape)}` : "<none>")).join(", ");
    throw new Error(`${this.opType} (node ${this.nodeName}): ${message}; inputs: ${shapes}`);
  }

  in(k: number): Tensor {
    const t = this.inputs[k];
    if (!t) this.fail(`input ${k} is required`);
    return t;
  }

  has(k: number): boolean {
    return this.inputs[k] !== undefined && this.inputs[k] !== null;
  }

  int(name: string, fallback: number): number {
    const v = this.attrs[name];
    if (v === undefined) return fallback;
    if (typeof v !== "number") this.fail(`attribute ${name} must be a number`);
    return v;
  }

  ints(name: string, fallback: number[]): number[] {
    const v = this.attrs[name];
    if (v === undefined) return fallback;
    if (!Array.isArray(v)) this.fail(`attribute ${name} must be a list of ints`);
    return v as number[];
  }

  /** Integer values of a constant input (shape, axes, pads...). */
  constInts(k: number, what: string): number[] {
    const t = this.in(k);
    if (!t.constValue) this.fail(`${what} (input ${k}, ${t.name}) must be a constant`);
    return Array.from(t.constValue as ArrayLike<number | bigint>, (v) => Number(v));
  }

  axis(axis: number, rank: number): number {
    const a = axis < 0 ? axis + rank : axis;
    if (a < 0 || a >= rank) this.fail(`axis ${axis} is out of range for rank ${rank}`);
    return a;
  }
}

function fmt(shape: Shape): string {
  return `[${shape.join(", ")}]`;
}

function same(a: Dim, b: Dim): boolean {
  return a === b;
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

/** a + b for static dims, or for multiples of one symbol (`batch` + `batch` = `batch*2`); else "?". */
function addDims(a: Dim, b: Dim): Dim {
  if (typeof a === "number" && typeof b === "number") return a + b;
  if (a === 0) return b;
  if (typeof a !== "string" || typeof b !== "string") return "?";
  const x = parseSymbolic(a);
  const y = parseSymbolic(b);
  if (x.symbol !== y.symbol || x.symbol === "?") return "?";
  return symbolicDim(x.symbol, x.num * y.den + y.num * x.den, x.den * y.den);
}

/** A symbolic dim as symbol × num/den: `batch`, `batch*3`, `batch/2`, `batch*3/2`. */
export function parseSymbolic(dim: string): { symbol: string; num: number; den: number } {
  const m = /^(.*?)(?:\*(\d+))?(?:\/(\d+))?$/.exec(dim)!;
  return { symbol: m[1], num: Number(m[2] ?? 1), den: Number(m[3] ?? 1) };
}

/** The symbolic dim symbol × num/den in lowest terms. */
export function symbolicDim(symbol: string, num: number, den: number): Dim {
  const k = gcd(num, den);
  const n = num / k;
  const d = den / k;
  return `${symbol}${n === 1 ? "" : `*${n}`}${d === 1 ? "" : `/${d}`}`;
}

/** NumPy-style broadcast of several shapes. */
export function broadcastShapes(shapes: Shape[], onError: (msg: string) => never): Shape {
  const rank = Math.max(...shapes.map((s) => s.length));
  const out: Shape = [];
  for (let i = 0; i < rank; i++) {
    let dim: Dim = 1;
    for (const s of shapes) {
      const d = s[s.length - rank + i] ?? 1;
      if (d === 1) continue;
      if (dim === 1) dim = d;
      else if (!same(dim, d)) onError(`shapes ${shapes.map(fmt).join(" and ")} do not broadcast`);
    }
    out.push(dim);
  }
  return out;
}

function unary(c: RuleContext): ValueInfo[] {
  const x = c.in(0);
  return [{ dtype: x.dtype, shape: [...x.shape] }];
}

function sameDtypes(c: RuleContext, ...ks: number[]): DType {
  const dtype = c.in(ks[0]).dtype;
  for (const k of ks) {
    if (c.in(k).dtype !== dtype) {
      c.fail(`dtype ${c.in(k).dtype} of input ${k} differs from ${dtype}`);
    }
  }
  return dtype;
}

function binary(c: RuleContext, outDtype?: DType): ValueInfo[] {
  const dtype = sameDtypes(c, 0, 1);
  return [{
    dtype: outDtype ?? dtype,
    shape: broadcastShapes([c.in(0).shape, c.in(1).shape], (m) => c.fail(m)),
  }];
}

function variadic(c: RuleContext): ValueInfo[] {
  const ks = c.inputs.map((_, k) => k);
  const dtype = sameDtypes(c, ...ks);
  return [{ dtype, shape: broadcastShapes(ks.map((k) => c.in(k).shape), (m) => c.fail(m)) }];
}

function reduced(c: RuleContext, axes: number[] | undefined): ValueInfo[] {
  const x = c.in(0);
  const keep = c.int("keepdims", 1) === 1;
  const all = axes === undefined || axes.length === 0;
  const normalized = new Set((axes ?? []).map((a) => c.axis(a, x.rank)));
  const shape: Shape = [];
  x.shape.forEach((d, i) => {
    const reduce = all || normalized.has(i);
    if (!reduce) shape.push(d);
    else if (keep) shape.push(1);
  });
  return [{ dtype: x.dtype, shape }];
}

function spatialOut(
  c: RuleContext,
  inSize: Dim,
  kernel: number,
  stride: number,
  padBegin: number,
  padEnd: number,
  dilation: number,
  ceil = false,
): number {
  if (typeof inSize !== "number") c.fail(`spatial dims must be static`);
  const span = dilation * (kernel - 1) + 1;
  const raw = (inSize + padBegin + padEnd - span) / stride;
  const out = (ceil ? Math.ceil(raw) : Math.floor(raw)) + 1;
  if (out < 1) c.fail(`kernel ${kernel} (dilation ${dilation}) does not fit input size ${inSize}`);
  return out;
}

function pool(c: RuleContext, channelsOut?: Dim): ValueInfo[] {
  const x = c.in(0);
  const spatial = x.rank - 2;
  if (spatial < 1) c.fail(`input must have rank >= 3`);
  const kernel = c.ints("kernel_shape", []);
  if (kernel.length !== spatial) {
    c.fail(`kernel_shape ${fmt(kernel)} does not match ${spatial} spatial dims`);
  }
  const strides = c.ints("strides", kernel.map(() => 1));
  const pads = c.ints("pads", kernel.map(() => 0).concat(kernel.map(() => 0)));
  const dilations = c.ints("dilations", kernel.map(() => 1));
  const ceil = c.int("ceil_mode", 0) === 1;
  if (c.attrs.auto_pad !== undefined && c.attrs.auto_pad !== "NOTSET") {
    c.fail(`auto_pad is not supported; give pads`);
  }
  const shape: Shape = [x.shape[0], channelsOut ?? x.shape[1]];
  for (let i = 0; i < spatial; i++) {
    shape.push(
      spatialOut(
        c,
        x.shape[2 + i],
        kernel[i],
        strides[i],
        pads[i],
        pads[i + spatial],
        dilations[i],
        ceil,
      ),
    );
  }
  return [{ dtype: x.dtype, shape }];
}

function conv(c: RuleContext): ValueInfo[] {
  const x = c.in(0);
  const w = c.in(1);
  sameDtypes(c, 0, 1);
  if (w.rank !== x.rank) c.fail(`weight rank ${w.rank} differs from input rank ${x.rank}`);
  const group = c.int("group", 1);
  const cin = x.shape[1];
  const wc = w.shape[1];
  if (typeof cin === "number" && typeof wc === "number" && cin !== wc * group) {
    c.fail(`input channels ${cin} != weight channels ${wc} x group ${group}`);
  }
  const kernel = w.shape.slice(2) as number[];
  const given = c.ints("kernel_shape", kernel);
  if (given.join() !== kernel.join()) {
    c.fail(`kernel_shape ${fmt(given)} differs from weight ${fmt(kernel)}`);
  }
  if (c.has(2)) {
    const b = c.in(2);
    if (b.rank !== 1 || b.shape[0] !== w.shape[0]) c.fail(`bias must have shape [${w.shape[0]}]`);
  }
  const attrs = { ...c.attrs, kernel_shape: kernel };
  const ctx = new RuleContext(c.opType, c.nodeName, c.inputs, attrs, 1);
  return pool(ctx, w.shape[0]);
}

/**
 * BatchNormalization in inference form (training_mode 0): per-channel mean,
 * variance, scale and bias of shape [C] given as inputs. Training mode is
 * refused: ORT's CUDA provider does not run it, so batch statistics are
 * computed with primitive ops and passed in as mean and variance.
 */
function batchNormalization(c: RuleContext): ValueInfo[] {
  const x = c.in(0);
  if (c.int("training_mode", 0) !== 0) {
    c.fail(
      "training_mode 1 is not supported (ORT's CUDA provider lacks it); pass the batch mean and variance as inputs 3 and 4",
    );
  }
  if (c.outputCount !== 1) c.fail(`expected 1 output, got ${c.outputCount}`);
  if (x.rank < 2) c.fail(`input must be [N, C, ...], got rank ${x.rank}`);
  sameDtypes(c, 0, 1, 2, 3, 4);
  for (let k = 1; k <= 4; k++) {
    const t = c.in(k);
    if (t.rank !== 1 || !same(t.shape[0], x.shape[1])) {
      c.fail(`input ${k} (${t.name}) must have shape [${x.shape[1]}], got ${fmt(t.shape)}`);
    }
  }
  return [{ dtype: x.dtype, shape: [...x.shape] }];
}

function convTranspose(c: RuleContext): ValueInfo[] {
  const x = c.in(0);
  const w = c.in(1);
  sameDtypes(c, 0, 1);
  const group = c.int("group", 1);
  if (x.shape[1] !== w.shape[0]) {
    c.fail(`input channels ${x.shape[1]} != weight dim 0 ${w.shape[0]}`);
  }
  const kernel = w.shape.slice(2) as number[];
  const spatial = kernel.length;
  const strides = c.ints("strides", kernel.map(() => 1));
  const pads = c.ints("pads", kernel.map(() => 0).concat(kernel.map(() => 0)));
  const dilations = c.ints("dilations", kernel.map(() => 1));
  const outPad = c.ints("output_padding", kernel.map(() => 0));
  const shape: Shape = [x.shape[0], (w.shape[1] as number) * group];
  for (let i = 0; i < spatial; i++) {
    const inSize = x.shape[2 + i];
    if (typeof inSize !== "number") c.fail(`spatial dims must be static`);
    shape.push(
      strides[i] * (inSize - 1) + outPad[i] + (kernel[i] - 1) * dilations[i] + 1 - pads[i] -
        pads[i + spatial],
    );
  }
  return [{ dtype: x.dtype, shape }];
}

function matmul(c: RuleContext): ValueInfo[] {
  const dtype = sameDtypes(c, 0, 1);
  let a = c.in(0).shape;
  let b = c.in(1).shape;
  if (a.length === 0 || b.length === 0) c.fail(`MatMul inputs must have rank >= 1`);
  const aVec = a.length === 1;
  const bVec = b.length === 1;
  if (aVec) a = [1, a[0]];
  if (bVec) b = [b[0], 1];
  const k1 = a[a.length - 1];
  const k2 = b[b.length - 2];
  if (!same(k1, k2)) c.fail(`inner dims ${k1} and ${k2} differ`);
  const batch = broadcastShapes([a.slice(0, -2), b.slice(0, -2)], (m) => c.fail(m));
  const shape: Shape = [...batch];
  if (!aVec) shape.push(a[a.length - 2]);
  if (!bVec) shape.push(b[b.length - 1]);
  return [{ dtype, shape }];
}

function gemm(c: RuleContext): ValueInfo[] {
  const dtype = sameDtypes(c, 0, 1);
  const a = c.in(0).shape;
  const b = c.in(1).shape;
  if (a.length !== 2 || b.length !== 2) c.fail(`Gemm inputs must be 2-D`);
  const [m, ka] = c.int("transA", 0) ? [a[1], a[0]] : [a[0], a[1]];
  const [kb, n] = c.int("transB", 0) ? [b[1], b[0]] : [b[0], b[1]];
  if (!same(ka, kb)) c.fail(`inner dims ${ka} and ${kb} differ`);
  if (c.has(2)) broadcastShapes([[m, n], c.in(2).shape], (msg) => c.fail(msg));
  return [{ dtype, shape: [m, n] }];
}

function reshape(c: RuleContext): ValueInfo[] {
  const x = c.in(0);
  const source = c.in(1).producer;
  // Reshaping to Shape(t) gives t's shape, symbolic dims included.
  if (source?.opType === "Shape") return [{ dtype: x.dtype, shape: [...source.inputs[0]!.shape] }];
  const target = c.constInts(1, "shape");
  const allowZero = c.int("allowzero", 0) === 1;
  const shape: Shape = target.map((d, i) => (d === 0 && !allowZero ? x.shape[i] : d));
  const minus = shape.filter((d) => d === -1).length;
  if (minus > 1) c.fail(`shape ${fmt(target)} has more than one -1`);
  const known = (s: Shape) => s.every((d) => typeof d === "number");
  if (minus === 1) {
    const inSym = x.shape.filter((d) => typeof d === "string");
    const outSym = shape.filter((d) => typeof d === "string");
    if (known(x.shape) && known(shape.filter((d) => d !== -1))) {
      const total = x.shape.reduce<number>((n, d) => n * (d as number), 1);
      const rest = shape.reduce<number>((n, d) => (d === -1 ? n : n * (d as number)), 1);
      if (rest === 0 || total % rest !== 0) {
        c.fail(`cannot reshape ${fmt(x.shape)} to ${fmt(target)}`);
      }
      shape[shape.indexOf(-1)] = total / rest;
    } else if (inSym.length === 1 && outSym.length <= 1) {
      // One symbolic dim on each side (e.g. a batch merged with or split from static dims).
      const input = parseSymbolic(inSym[0] as string);
      const output = outSym.length === 1 ? parseSymbolic(outSym[0] as string) : null;
      const inStatic = x.shape.reduce<number>((n, d) => (typeof d === "number" ? n * d : n), 1);
      const rest = shape.reduce<number>(
        (n, d) => (typeof d === "number" && d !== -1 ? n * d : n),
        1,
      );
      if (output && output.symbol !== input.symbol) {
        shape[shape.indexOf(-1)] = "?";
      } else if (output) {
        // in·a/b·inStatic = out·c/d·rest·x  →  x = (a·d·inStatic)/(b·c·rest), a static count.
        const num = input.num * output.den * inStatic;
        const den = input.den * output.num * rest;
        if (num % den !== 0) c.fail(`cannot reshape ${fmt(x.shape)} to ${fmt(target)}`);
        shape[shape.indexOf(-1)] = num / den;
      } else {
        shape[shape.indexOf(-1)] = symbolicDim(
          input.symbol,
          input.num * inStatic,
          input.den * rest,
        );
      }
    } else {
      shape[shape.indexOf(-1)] = "?";
    }
  } else if (known(x.shape) && known(shape)) {
    const a = x.shape.reduce<number>((n, d) => n * (d as number), 1);
    const b = shape.reduce<number>((n, d) => n * (d as number), 1);
    if (a !== b) c.fail(`cannot reshape ${fmt(x.shape)} (${a} values) to ${fmt(target)} (${b})`);
  }
  return [{ dtype: x.dtype, shape }];
}

function sliceRule(c: RuleContext): ValueInfo[] {
  const x = c.in(0);
  const starts = c.constInts(1, "starts");
  const ends = c.constInts(2, "ends");
  const axes = c.has(3) ? c.constInts(3, "axes") : starts.map((_, i) => i);
  const steps = c.has(4) ? c.constInts(4, "steps") : starts.map(() => 1);
  const shape = [...x.shape];
  axes.forEach((axisRaw, i) => {
    const axis = c.axis(axisRaw, x.rank);
    const dim = x.shape[axis];
    if (typeof dim !== "number") c.fail(`cannot slice symbolic dim ${dim}`);
    const step = steps[i];
    if (step === 0) c.fail(`step 0`);
    const clampIdx = (v: number, lo: number, hi: number) =>
      Math.min(Math.max(v < 0 ? v + dim : v, lo), hi);
    let count: number;
    if (step > 0) {
      const s = clampIdx(starts[i], 0, dim);
      const e = clampIdx(ends[i], 0, dim);
      count = Math.max(0, Math.ceil((e - s) / step));
    } else {
      const s = clampIdx(starts[i], -1, dim - 1);
      const e = clampIdx(ends[i], -1, dim - 1);
      count = Math.max(0, Math.ceil((s - e) / -step));
    }
    shape[axis] = count;
  });
  return [{ dtype: x.dtype, shape }];
}

function concat(c: RuleContext): ValueInfo[] {
  const ks = c.inputs.map((_, k) => k);
  const dtype = sameDtypes(c, ...ks);
  const first = c.in(0);
  const axis = c.axis(c.int("axis", 0), first.rank);
  const shape = [...first.shape];
  let total: Dim = 0;
  for (const k of ks) {
    const t = c.in(k);
    if (t.rank !== first.rank) c.fail(`input ${k} has rank ${t.rank}, expected ${first.rank}`);
    t.shape.forEach((d, i) => {
      if (i !== axis && !same(d, first.shape[i])) {
        c.fail(`input ${k} differs off the concat axis ${axis}`);
      }
    });
    total = addDims(total, t.shape[axis]);
  }
  shape[axis] = total;
  return [{ dtype, shape }];
}

function transpose(c: RuleContext): ValueInfo[] {
  const x = c.in(0);
  const perm = c.ints("perm", x.shape.map((_, i) => x.rank - 1 - i));
  if (perm.length !== x.rank || [...perm].sort().some((p, i) => p !== i)) {
    c.fail(`perm ${fmt(perm)} is not a permutation of rank ${x.rank}`);
  }
  return [{ dtype: x.dtype, shape: perm.map((p) => x.shape[p]) }];
}

function unsqueeze(c: RuleContext): ValueInfo[] {
  const x = c.in(0);
  const axes = c.constInts(1, "axes");
  const rank = x.rank + axes.length;
  const positions = new Set(axes.map((a) => c.axis(a, rank)));
  const shape: Shape = [];
  let k = 0;
  for (let i = 0; i < rank; i++) shape.push(positions.has(i) ? 1 : x.shape[k++]);
  return [{ dtype: x.dtype, shape }];
}

function squeeze(c: RuleContext): ValueInfo[] {
  const x = c.in(0);
  const axes = c.has(1) ? new Set(c.constInts(1, "axes").map((a) => c.axis(a, x.rank))) : undefined;
  const shape: Shape = [];
  x.shape.forEach((d, i) => {
    const drop = axes ? axes.has(i) : d === 1;
    if (drop && d !== 1) c.fail(`cannot squeeze axis ${i} of size ${d}`);
    if (!drop) shape.push(d);
  });
  return [{ dtype: x.dtype, shape }];
}

function gather(c: RuleContext): ValueInfo[] {
  const x = c.in(0);
  const idx = c.in(1);
  if (idx.dtype !== "int64" && idx.dtype !== "int32") c.fail(`indices must be int64 or int32`);
  const axis = c.axis(c.int("axis", 0), x.rank);
  return [{
    dtype: x.dtype,
    shape: [...x.shape.slice(0, axis), ...idx.shape, ...x.shape.slice(axis + 1)],
  }];
}

function gatherElements(c: RuleContext): ValueInfo[] {
  const x = c.in(0);
  const idx = c.in(1);
  if (idx.rank !== x.rank) c.fail(`indices rank ${idx.rank} differs from data rank ${x.rank}`);
  return [{ dtype: x.dtype, shape: [...idx.shape] }];
}

function scatterElements(c: RuleContext): ValueInfo[] {
  const x = c.in(0);
  const idx = c.in(1);
  const updates = c.in(2);
  if (idx.dtype !== "int64" && idx.dtype !== "int32") c.fail(`indices must be int64 or int32`);
  if (idx.rank !== x.rank) c.fail(`indices rank ${idx.rank} differs from data rank ${x.rank}`);
  if (updates.dtype !== x.dtype) {
    c.fail(`updates dtype ${updates.dtype} differs from data dtype ${x.dtype}`);
  }
  if (updates.rank !== idx.rank || updates.shape.some((d, i) => !same(d, idx.shape[i]))) {
    c.fail(`updates shape ${fmt(updates.shape)} differs from indices shape ${fmt(idx.shape)}`);
  }
  c.axis(c.int("axis", 0), x.rank);
  return [{ dtype: x.dtype, shape: [...x.shape] }];
}

function expand(c: RuleContext): ValueInfo[] {
  const x = c.in(0);
  const source = c.in(1).producer;
  // A shape taken from a tensor by a Shape node keeps its symbolic dims.
  const target: Shape = source?.opType === "Shape"
    ? [...source.inputs[0]!.shape]
    : c.constInts(1, "shape");
  return [{ dtype: x.dtype, shape: broadcastShapes([x.shape, target], (m) => c.fail(m)) }];
}

function where(c: RuleContext): ValueInfo[] {
  if (c.in(0).dtype !== "bool") c.fail(`condition must be bool`);
  const dtype = sameDtypes(c, 1, 2);
  return [{ dtype, shape: broadcastShapes([0, 1, 2].map((k) => c.in(k).shape), (m) => c.fail(m)) }];
}

function softmaxLike(c: RuleContext): ValueInfo[] {
  const x = c.in(0);
  c.axis(c.int("axis", -1), x.rank);
  return unary(c);
}

function cast(c: RuleContext): ValueInfo[] {
  const to = c.int("to", -1);
  const names: Record<number, DType> = {
    1: "float32",
    2: "uint8",
    6: "int32",
    7: "int64",
    9: "bool",
    10: "float16",
    11: "float64",
  };
  const dtype = names[to];
  if (!dtype) c.fail(`unsupported target type ${to}`);
  return [{ dtype, shape: [...c.in(0).shape] }];
}

function globalPool(c: RuleContext): ValueInfo[] {
  const x = c.in(0);
  if (x.rank < 3) c.fail(`input must have rank >= 3`);
  return [{ dtype: x.dtype, shape: [x.shape[0], x.shape[1], ...x.shape.slice(2).map(() => 1)] }];
}

function pad(c: RuleContext): ValueInfo[] {
  const x = c.in(0);
  const pads = c.constInts(1, "pads");
  if (pads.length !== 2 * x.rank) c.fail(`pads must have ${2 * x.rank} values`);
  const shape = x.shape.map((d, i) => {
    if (pads[i] === 0 && pads[i + x.rank] === 0) return d;
    if (typeof d !== "number") c.fail(`cannot pad symbolic dim ${d}`);
    return d + pads[i] + pads[i + x.rank];
  });
  return [{ dtype: x.dtype, shape }];
}

function argReduce(c: RuleContext): ValueInfo[] {
  const x = c.in(0);
  const axis = c.axis(c.int("axis", 0), x.rank);
  const keep = c.int("keepdims", 1) === 1;
  const shape = x.shape.flatMap((d, i) => (i === axis ? (keep ? [1] : []) : [d]));
  return [{ dtype: "int64", shape }];
}

function topk(c: RuleContext): ValueInfo[] {
  const x = c.in(0);
  const k = c.constInts(1, "k")[0];
  const axis = c.axis(c.int("axis", -1), x.rank);
  const shape = [...x.shape];
  shape[axis] = k;
  return [{ dtype: x.dtype, shape }, { dtype: "int64", shape: [...shape] }];
}

function flatten(c: RuleContext): ValueInfo[] {
  const x = c.in(0);
  const axis = c.int("axis", 1);
  const prod = (s: Shape) =>
    s.every((d) => typeof d === "number") ? s.reduce<number>((n, d) => n * (d as number), 1) : "?";
  const head = x.shape.slice(0, axis);
  return [{
    dtype: x.dtype,
    shape: [head.length === 1 ? head[0] : prod(head), prod(x.shape.slice(axis))],
  }];
}

function gridSample(c: RuleContext): ValueInfo[] {
  const x = c.in(0);
  const grid = c.in(1);
  if (x.rank !== 4 || grid.rank !== 4 || grid.shape[3] !== 2) {
    c.fail(`expects X [N,C,H,W] and grid [N,H,W,2]`);
  }
  return [{ dtype: x.dtype, shape: [x.shape[0], x.shape[1], grid.shape[1], grid.shape[2]] }];
}

function tile(c: RuleContext): ValueInfo[] {
  const x = c.in(0);
  const reps = c.constInts(1, "repeats");
  if (reps.length !== x.rank) c.fail(`repeats must have ${x.rank} values`);
  return [{
    dtype: x.dtype,
    shape: x.shape.map((d, i) => (reps[i] === 1 ? d : typeof d === "number" ? d * reps[i] : "?")),
  }];
}

function shapeOp(c: RuleContext): ValueInfo[] {
  return [{ dtype: "int64", shape: [c.in(0).rank] }];
}

function loop(c: RuleContext): ValueInfo[] {
  const body = c.attrs.body as Graph | undefined;
  if (!body || typeof body !== "object") c.fail(`attribute body (a Graph) is required`);
  const carried = c.inputs.length - 2;
  const scanOutputs = body.outputs.length - 1 - carried;
  if (scanOutputs < 0) {
    c.fail(`body has ${body.outputs.length} outputs for ${carried} carried values`);
  }
  const infos: ValueInfo[] = [];
  for (let k = 0; k < carried; k++) {
    infos.push({ dtype: c.in(2 + k).dtype, shape: [...c.in(2 + k).shape] });
  }
  for (let k = 0; k < scanOutputs; k++) {
    const out = body.outputs[1 + carried + k];
    infos.push({ dtype: out.dtype, shape: ["loop_iterations", ...out.shape] });
  }
  return infos;
}

const boolOut = (c: RuleContext) => binary(c, "bool");

const RULES: Record<string, (c: RuleContext) => ValueInfo[]> = {
  Add: binary,
  Sub: binary,
  Mul: binary,
  Div: binary,
  Pow: (c) => {
    const shape = broadcastShapes([c.in(0).shape, c.in(1).shape], (m) => c.fail(m));
    return [{ dtype: c.in(0).dtype, shape }];
  },
  Equal: boolOut,
  Less: boolOut,
  LessOrEqual: boolOut,
  Greater: boolOut,
  GreaterOrEqual: boolOut,
  And: boolOut,
  Or: boolOut,
  Max: variadic,
  Min: variadic,
  Sum: variadic,
  Mean: variadic,
  Neg: unary,
  Exp: unary,
  Log: unary,
  Sqrt: unary,
  Abs: unary,
  Relu: unary,
  LeakyRelu: unary,
  Sigmoid: unary,
  Tanh: unary,
  Identity: unary,
  Reciprocal: unary,
  Floor: unary,
  Ceil: unary,
  Round: unary,
  Sign: unary,
  Sin: unary,
  Cos: unary,
  Erf: unary,
  Not: unary,
  Softplus: unary,
  IsNaN: (c) => [{ dtype: "bool", shape: [...c.in(0).shape] }],
  IsInf: (c) => [{ dtype: "bool", shape: [...c.in(0).shape] }],
  Clip: unary,
  Cast: cast,
  Softmax: softmaxLike,
  LogSoftmax: softmaxLike,
  MatMul: matmul,
  Gemm: gemm,
  Conv: conv,
  ConvTranspose: convTranspose,
  BatchNormalization: batchNormalization,
  // Output 1 (Indices): flat positions of the maxima in the input, int64.
  MaxPool: (c) => pool(c).flatMap((y) => [y, { dtype: "int64" as DType, shape: [...y.shape] }]),
  AveragePool: (c) => pool(c),
  GlobalAveragePool: globalPool,
  GlobalMaxPool: globalPool,
  ReduceSum: (c) => reduced(c, c.has(1) ? c.constInts(1, "axes") : undefined),
  ReduceMean: (c) => reduced(c, c.attrs.axes as number[] | undefined),
  ReduceMax: (c) => reduced(c, c.attrs.axes as number[] | undefined),
  ReduceMin: (c) => reduced(c, c.attrs.axes as number[] | undefined),
  ReduceLogSumExp: (c) => reduced(c, c.attrs.axes as number[] | undefined),
  ReduceSumSquare: (c) => reduced(c, c.attrs.axes as number[] | undefined),
  ReduceL2: (c) => reduced(c, c.attrs.axes as number[] | undefined),
  ArgMax: argReduce,
  ArgMin: argReduce,
  TopK: topk,
  Reshape: reshape,
  Flatten: flatten,
  Transpose: transpose,
  Concat: concat,
  Slice: sliceRule,
  Gather: gather,
  GatherElements: gatherElements,
  ScatterElements: scatterElements,
  Unsqueeze: unsqueeze,
  Squeeze: squeeze,
  Expand: expand,
  Where: where,
  Pad: pad,
  Tile: tile,
  Shape: shapeOp,
  GridSample: gridSample,
  Loop: loop,
};

/** Op types the builder accepts. */
export const KNOWN_OPS: readonly string[] = Object.keys(RULES);

/** Output dtypes and shapes of a node; throws a message naming op, node and shapes on misuse. */
export function inferShapes(
  opType: string,
  inputs: Inputs,
  attrs: Attrs,
  nodeName: string,
  outputCount: number,
): ValueInfo[] {
  const rule = RULES[opType];
  if (!rule) {
    throw new Error(
      `unknown op ${opType} (node ${nodeName}): the graph builder supports ${KNOWN_OPS.join(", ")}`,
    );
  }
  const infos = rule(new RuleContext(opType, nodeName, inputs, attrs, outputCount));
  if (outputCount > infos.length) {
    throw new Error(
      `${opType} (node ${nodeName}): ${outputCount} outputs requested, the op has ${infos.length}`,
    );
  }
  return infos.slice(0, outputCount);
}
