/**
 * Training-step throughput: our fused contrastive step through ONNX Runtime,
 * the cost of its host↔runtime copies, an ORT profile of where the time
 * goes, and an equivalent PyTorch step (bench/torch_step.py) run in the same
 * invocation for the ratio.
 *
 * ```ts
 * const config = parseBenchConfig({ model: "resnet18", batch: "32", threads: "2" });
 * const report = await runBench(config, { reference: "torch" });
 * console.log(JSON.stringify(reportJson(report)));
 * ```
 * @module
 */
export * from "./config.ts";
export * from "./step_timing.ts";
export * from "./cpu_load.ts";
export * from "./device_memory.ts";
export * from "./io_cost.ts";
export * from "./profile.ts";
export * from "./torch_reference.ts";
export * from "./run.ts";
