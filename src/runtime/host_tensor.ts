/** Tensors on the host, as fed to and fetched from ONNX Runtime. */
import type { DType, HostArray } from "../onnx/dtype.ts";

/** A host tensor: dtype, static shape and values. */
export interface HostTensor {
  dtype: DType;
  shape: number[];
  data: HostArray;
}

/** Makes a float32 host tensor. */
export function f32(data: ArrayLike<number>, shape: number[]): HostTensor {
  return checked({ dtype: "float32", shape, data: Float32Array.from(data) });
}

/** Makes a float64 host tensor. */
export function f64(data: ArrayLike<number>, shape: number[]): HostTensor {
  return checked({ dtype: "float64", shape, data: Float64Array.from(data) });
}

/** Makes an int64 host tensor. */
export function i64(data: ArrayLike<number>, shape: number[]): HostTensor {
  return checked({
    dtype: "int64",
    shape,
    data: BigInt64Array.from(Array.from(data), (v) => BigInt(v)),
  });
}

/** A scalar host tensor of a float dtype. */
export function scalar(value: number, dtype: DType = "float32"): HostTensor {
  return dtype === "float64" ? f64([value], []) : f32([value], []);
}

/** Throws when the value count does not match the shape. */
export function checked(t: HostTensor): HostTensor {
  const count = t.shape.reduce((n, d) => n * d, 1);
  if (t.data.length !== count) {
    throw new Error(`host tensor: ${t.data.length} values for shape [${t.shape.join(", ")}]`);
  }
  return t;
}

/** Values of a float tensor as numbers. */
export function toNumbers(t: HostTensor): number[] {
  return Array.from(t.data as ArrayLike<number | bigint>, (v) => Number(v));
}
