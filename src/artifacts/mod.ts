/**
 * Training artifacts (training, eval, optimizer and fused-step graphs, a
 * manifest) and checkpoints in the safetensors format.
 *
 * @module
 */
export * from "./safetensors.ts";
export * from "./checkpoint.ts";
export * from "./artifacts.ts";
