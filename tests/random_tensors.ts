/** Seeded random host tensors for tests. */
import type { HostTensor } from "../src/runtime/host_tensor.ts";
import type { Rng } from "../src/util/rng.ts";

/** A float32 tensor of N(0, std²) draws from `rng`. */
export function normal(rng: Rng, shape: number[], std = 1): HostTensor {
  const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
  rng.fillNormal(data, 0, std);
  return { dtype: "float32", shape, data };
}
