/**
 * Finite-difference gradient checks for autodiff rules. A test builds a
 * function of some float inputs; the check reduces its output to a scalar with
 * fixed random weights, differentiates it with our autodiff, and compares every
 * gradient entry with a central difference computed by ORT on the same graph.
 */
import { gradients } from "../src/autodiff/mod.ts";
import type { DType } from "../src/onnx/dtype.ts";
import { Graph, ops, type Tensor } from "../src/onnx/mod.ts";
import { Session } from "../src/runtime/session.ts";
import type { HostTensor } from "../src/runtime/host_tensor.ts";
import { Rng } from "../src/util/rng.ts";

/** One input of the checked function. */
export interface CheckInput {
  name: string;
  shape: number[];
  /** Values (random normal when omitted). */
  values?: number[];
  /** Non-differentiable input (indices, masks): fed as given, not checked. */
  constant?: { dtype: DType; values: number[] };
}

/** Options of {@link gradCheck}. */
export interface GradCheckOptions {
  dtype?: DType;
  eps?: number;
  /** Allowed |analytic − numeric| ≤ atol + rtol·|numeric|. */
  rtol?: number;
  atol?: number;
  seed?: number;
  /**
   * Inputs that `build` declares itself (a ParamStore's parameters and
   * buffers), found by name once it has run; checked like `inputs`.
   */
  declared?: CheckInput[];
}

/** Result: the largest error seen and where. */
export interface GradCheckResult {
  maxError: number;
  worst: string;
  checked: number;
}

function hostFor(dtype: DType, values: number[], shape: number[]): HostTensor {
  if (dtype === "float64") return { dtype, shape, data: Float64Array.from(values) };
  if (dtype === "float32") return { dtype, shape, data: Float32Array.from(values) };
  if (dtype === "int64") {
    return {
      dtype,
      shape,
      data: BigInt64Array.from(values.map((v) => BigInt(v))),
    };
  }
  if (dtype === "int32") return { dtype, shape, data: Int32Array.from(values) };
  return { dtype, shape, data: Uint8Array.from(values) };
}

/**
 * Checks the gradients of `build(inputs)` w.r.t. every non-constant input.
 * Throws with the worst entry when a gradient is off.
 */
export async function gradCheck(
  inputs: CheckInput[],
  build: (xs: Tensor[]) => Tensor,
  options: GradCheckOptions = {},
): Promise<GradCheckResult> {
  const dtype = options.dtype ?? "float64";
  const eps = options.eps ?? (dtype === "float64" ? 1e-6 : 1e-2);
  const rtol = options.rtol ?? (dtype === "float64" ? 1e-5 : 2e-2);
  const atol = options.atol ?? (dtype === "float64" ? 1e-7 : 1e-3);
  const rng = new Rng(options.seed ?? 1234, "gradcheck");

  const graph = new Graph("gradcheck");
  const given = inputs.map((spec) =>
    graph.input(spec.name, spec.constant?.dtype ?? dtype, spec.shape)
  );
  const y = build(given);
  const declared = (options.declared ?? []).map((spec) => {
    const t = graph.findInput(spec.name);
    if (!t) throw new Error(`gradCheck: build declared no input ${spec.name}`);
    return t;
  });
  const specs = [...inputs, ...(options.declared ?? [])];
  const xs = [...given, ...declared];
  const weights = Array.from({ length: y.size }, () => rng.normal());
  const w = graph.constant(weights, dtype, y.shape);
  const loss = ops.reduceSum(ops.mul(y, w), undefined, false);
  graph.output(loss, "loss");
  const params = xs.filter((_, k) => !specs[k].constant);
  const grads = gradients(loss, params);
  for (const p of params) graph.output(grads.get(p)!, `${p.name}_grad`);

  const session = await Session.create(graph);
  const values = specs.map((spec) =>
    spec.constant?.values ?? spec.values ??
      Array.from({ length: spec.shape.reduce((a, b) => a * b, 1) }, () => rng.normal())
  );
  const feeds = (vals: number[][]) =>
    Object.fromEntries(
      specs.map((
        spec,
        k,
      ) => [spec.name, hostFor(spec.constant?.dtype ?? dtype, vals[k], spec.shape)]),
    );
  const base = await session.run(feeds(values));
  const lossAt = async (k: number, i: number, delta: number) => {
    const moved = values.map((v) => v.slice());
    moved[k][i] += delta;
    const r = await session.run(feeds(moved), ["loss"]);
    return Number(r.loss.data[0]);
  };

  let maxError = 0;
  let worst = "";
  let checked = 0;
  for (let k = 0; k < specs.length; k++) {
    if (specs[k].constant) continue;
    const analytic = base[`${specs[k].name}_grad`].data as Float64Array;
    for (let i = 0; i < values[k].length; i++) {
      const numeric = ((await lossAt(k, i, eps)) - (await lossAt(k, i, -eps))) / (2 * eps);
      const err = Math.abs(analytic[i] - numeric);
      const allowed = atol + rtol * Math.abs(numeric);
      const ratio = err / allowed;
      checked++;
      if (ratio > maxError) {
        maxError = ratio;
        worst = `${specs[k].name}[${i}]: analytic ${analytic[i]}, numeric ${numeric}`;
      }
    }
  }
  await session.release();
  if (maxError > 1) {
    throw new Error(`gradient check failed (error ${maxError.toFixed(2)}x tolerance) at ${worst}`);
  }
  return { maxError, worst, checked };
}
