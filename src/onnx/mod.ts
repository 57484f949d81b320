/**
 * Typed ONNX graph builder: tensors, nodes with build-time shape checks,
 * op helpers, and conversion to and from ONNX model bytes.
 * @module
 */
export * from "./dtype.ts";
export * from "./graph.ts";
export * as ops from "./ops.ts";
export { broadcastShapes, KNOWN_OPS } from "./shapes.ts";
export * from "./proto.ts";
