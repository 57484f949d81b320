/**
 * ONNX Runtime execution: sessions on CPU or CUDA, host tensors, device
 * choice, CUDA provider setup and library checks, the offline GPU bundle.
 * @module
 */
export * from "./host_tensor.ts";
export * from "./session.ts";
export * from "./session_options.ts";
export * from "./threads.ts";
export * from "./providers.ts";
export * from "./device.ts";
export * from "./cuda_setup.ts";
