/**
 * The training precision a config or the bench asks for (`train.precision`),
 * what each one can run on, and the step graph it builds.
 *
 * - `float32`: everything in float32, on any device.
 * - `float16`: Conv, MatMul and Gemm in float16 with float32 master weights,
 *   BN and loss, and loss scaling (mixed_precision.ts). CUDA only: ONNX
 *   Runtime 1.29's CPU provider has no float16 Conv, so on CPU the graph would
 *   run in float32 through inserted casts and only look like float16.
 * - `float16_simulated`: float16's rounding of every value entering and
 *   leaving those ops, computed in float32, with the same loss scaling: the
 *   numerics of `float16` on any device, slower than float32 (a check, not a
 *   speed-up).
 * - `bfloat16`: refused when the config is read (schema.ts): the graph
 *   builder has no bfloat16 type and the CPU provider no bfloat16 Conv.
 */
import { BFLOAT16_UNSUPPORTED, type Precision } from "../config/schema.ts";
import type { ContrastiveSpec, ContrastiveStep } from "../methods/contrastive.ts";
import { buildContrastiveStep } from "../methods/contrastive.ts";
import type { GraphOptimizer } from "../optim/mod.ts";
import type { HostTensor } from "../runtime/host_tensor.ts";
import type { Device } from "../runtime/session.ts";
import {
  buildMixedPrecisionContrastiveStep,
  GRADS_FINITE,
  lossScaleValues,
  type LossScaling,
} from "./mixed_precision.ts";

export { BFLOAT16_UNSUPPORTED, type Precision, PRECISIONS } from "../config/schema.ts";

/** `train.loss_scale`: "dynamic" (torch GradScaler's defaults) or a fixed scale. */
export type LossScaleSetting = "dynamic" | number;

/** The loss scaling of a setting. */
export function lossScaling(setting: LossScaleSetting): LossScaling {
  return setting === "dynamic" ? { kind: "dynamic" } : { kind: "static", scale: setting };
}

/** Throws an Error naming `where` when `precision` cannot run on `device`. */
export function checkPrecision(
  precision: Precision,
  device: Device,
  where = "train.precision",
): void {
  if (precision === "bfloat16") throw new Error(`${where}: ${BFLOAT16_UNSUPPORTED}`);
  if (precision === "float16" && device !== "cuda") {
    throw new Error(
      `${where}: float16 needs the CUDA device (ONNX Runtime 1.29's CPU provider has no float16 ` +
        "Conv, so on CPU the step would compute in float32 and only look like float16); on CPU use " +
        "float32, or float16_simulated to check float16's numerics (slower than float32)",
    );
  }
}

/** Options of {@link buildStepAtPrecision}. */
export interface PrecisionOptions {
  precision: Precision;
  /** Loss scaling of the float16 modes (ignored for float32). */
  lossScale: LossScaleSetting;
  /** Graph name. */
  name?: string;
}

/** A step graph at a precision, with the carried values it adds (the dynamic loss scale). */
export interface StepAtPrecision {
  step: ContrastiveStep;
  /** Initial values of the carried inputs the precision adds (none for float32). */
  initialValues: Map<string, HostTensor>;
  /** Extra output telling whether a step's update was applied (1) or skipped on overflow (0). */
  appliedOutput: string | null;
}

/** Builds the contrastive training step of `spec` at `options.precision`. */
export function buildStepAtPrecision(
  spec: ContrastiveSpec,
  optimizer: GraphOptimizer,
  options: PrecisionOptions,
): StepAtPrecision {
  switch (options.precision) {
    case "float32":
      return {
        step: buildContrastiveStep(spec, optimizer, { name: options.name }),
        initialValues: new Map(),
        appliedOutput: null,
      };
    case "float16":
    case "float16_simulated": {
      const scaling = lossScaling(options.lossScale);
      return {
        step: buildMixedPrecisionContrastiveStep(spec, optimizer, {
          compute: options.precision,
          lossScaling: scaling,
          name: options.name,
        }),
        initialValues: lossScaleValues(scaling),
        appliedOutput: GRADS_FINITE,
      };
    }
    case "bfloat16":
      throw new Error(`train.precision: ${BFLOAT16_UNSUPPORTED}`);
  }
}
