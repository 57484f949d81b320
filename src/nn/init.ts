/**
 * Initial values of declared parameters and buffers, drawn from the seeded
 * generator: one sub-stream per name, so a value depends only on the seed and
 * its name (not on declaration order).
 */
import { allocHost } from "../onnx/dtype.ts";
import type { HostTensor } from "../runtime/host_tensor.ts";
import type { Rng } from "../util/rng.ts";
import type { InitRule, ParamInfo } from "./params.ts";

/** torchvision's conv init: kaiming_normal_(mode="fan_out", nonlinearity="relu"), std √(2/fan_out). */
export function kaimingNormalFanOut(shape: readonly number[]): InitRule {
  const fanOut = shape[0] * shape.slice(2).reduce((a, b) => a * b, 1);
  return { kind: "normal", std: Math.sqrt(2 / fanOut) };
}

/** torch's default Linear/Conv weight init, kaiming_uniform_(a=√5): bound 1/√fan_in. */
export function torchDefaultWeight(shape: readonly number[]): InitRule {
  return { kind: "uniform", bound: 1 / Math.sqrt(fanIn(shape)) };
}

/** torch's default bias init for a layer with weight `weightShape`: uniform(±1/√fan_in). */
export function torchDefaultBias(weightShape: readonly number[]): InitRule {
  return { kind: "uniform", bound: 1 / Math.sqrt(fanIn(weightShape)) };
}

/** A constant fill. */
export function constantInit(value: number): InitRule {
  return { kind: "constant", value };
}

function fanIn(shape: readonly number[]): number {
  return shape.slice(1).reduce((a, b) => a * b, 1);
}

/** Fills `out` following `rule` with draws from `rng`. */
export function fillInit(out: Float32Array | Float64Array, rule: InitRule, rng: Rng): void {
  switch (rule.kind) {
    case "constant":
      out.fill(rule.value);
      return;
    case "uniform":
      for (let i = 0; i < out.length; i++) out[i] = rng.uniformIn(-rule.bound, rule.bound);
      return;
    case "normal":
      // Box–Muller, using both values of each pair.
      for (let i = 0; i < out.length; i += 2) {
        const r = Math.sqrt(-2 * Math.log(1 - rng.uniform())) * rule.std;
        const theta = 2 * Math.PI * rng.uniform();
        out[i] = r * Math.cos(theta);
        if (i + 1 < out.length) out[i + 1] = r * Math.sin(theta);
      }
      return;
    default:
      throw new Error(
        `unknown init rule ${JSON.stringify(rule)}: expected constant, uniform or normal`,
      );
  }
}

/**
 * Initial values of `entries` (from `ParamStore.entries()`): each drawn from
 * `rng.fork(name)` following its rule (conv kaiming-normal fan_out, BN 1/0,
 * Linear torch default, running mean 0 / var 1).
 */
export function initParams(entries: readonly ParamInfo[], rng: Rng): Map<string, HostTensor> {
  const values = new Map<string, HostTensor>();
  for (const e of entries) {
    if (e.dtype !== "float32" && e.dtype !== "float64") {
      throw new Error(
        `initParams: ${e.name} has dtype ${e.dtype}; only float32 and float64 are initialised`,
      );
    }
    const size = e.shape.reduce((a, b) => a * b, 1);
    const data = allocHost(e.dtype, size) as Float32Array | Float64Array;
    fillInit(data, e.init, rng.fork(e.name));
    values.set(e.name, { dtype: e.dtype, shape: [...e.shape], data });
  }
  return values;
}
