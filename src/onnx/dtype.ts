/** Element types the builder knows, with their ONNX codes and typed arrays. */

/** Element type of a tensor. */
export type DType = "float32" | "float64" | "float16" | "int64" | "int32" | "uint8" | "bool";

/** ONNX `TensorProto.DataType` code of each dtype. */
export const ONNX_DTYPE_CODE: Record<DType, number> = {
  float32: 1,
  uint8: 2,
  int32: 6,
  int64: 7,
  bool: 9,
  float16: 10,
  float64: 11,
};

/** Inverse of {@link ONNX_DTYPE_CODE}. */
export function dtypeFromOnnxCode(code: number): DType {
  for (const [name, value] of Object.entries(ONNX_DTYPE_CODE)) {
    if (value === code) return name as DType;
  }
  throw new Error(`unsupported ONNX element type code ${code}`);
}

/** Whether the dtype is a floating-point type (differentiable). */
export function isFloat(dtype: DType): boolean {
  return dtype === "float32" || dtype === "float64" || dtype === "float16";
}

/** Typed array holding values of a dtype on the host. */
export type HostArray =
  | Float32Array
  | Float64Array
  | Uint16Array
  | BigInt64Array
  | Int32Array
  | Uint8Array;

/** Allocates a host array for `count` elements of `dtype`. */
export function allocHost(dtype: DType, count: number): HostArray {
  switch (dtype) {
    case "float32":
      return new Float32Array(count);
    case "float64":
      return new Float64Array(count);
    case "float16":
      return new Uint16Array(count);
    case "int64":
      return new BigInt64Array(count);
    case "int32":
      return new Int32Array(count);
    case "uint8":
    case "bool":
      return new Uint8Array(count);
  }
}

/** Bytes per element. */
export function bytesPerElement(dtype: DType): number {
  return allocHost(dtype, 0).BYTES_PER_ELEMENT;
}
