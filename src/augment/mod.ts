/**
 * Augmentation as an ONNX graph fed by seeded host randomness: recipes as
 * data, torchvision-faithful parameter sampling, the graph, a float64
 * reference of every op, and a session wrapper.
 * @module
 */
export * from "./recipes.ts";
export * from "./params.ts";
export { augmentationGraph, type AugmentGraphOptions, buildAugmentation } from "./graph.ts";
export * as reference from "./reference.ts";
export { Augmenter, type AugmenterOptions } from "./runner.ts";
