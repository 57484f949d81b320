/**
 * Training: the fused step (loss, gradients, update in one graph) and its host
 * loop, several steps per run (the step engine), precision (float32, mixed
 * float16), and the experiment runner.
 * @module
 */
export * from "./fused_step.ts";
export * from "./step_runner.ts";
export * from "./multi_step.ts";
export * from "./step_engine.ts";
export * from "./mixed_precision.ts";
export * from "./precision.ts";
export { runExperiment, type RunOptions } from "./runner.ts";
export { type ExperimentLog } from "./log.ts";
export { exitCodeOfRun, STOP_SIGNALS, type StopSignal } from "./stop_signals.ts";
export { type ExperimentData, loadExperimentData } from "./experiment_data.ts";
export { crossEntropy, trainSupervised } from "./supervised.ts";
