/**
 * What the runner and the bench run a training step with: one ONNX Runtime
 * session taking up to K steps per run. K = 1 runs the fused step graph
 * itself; K > 1 runs the multi-step `Loop` built from it (multi_step.ts),
 * which copies parameters, buffers and optimizer state in and out once per
 * run instead of once per step. The steps of a run and their results are
 * the same whatever K is: the Loop's steps are grouped freely into runs
 * without changing a bit (tests/multi_step_test.ts), so a run stopped and
 * resumed between any two steps continues exactly.
 */
import type { Graph } from "../onnx/mod.ts";
import type { HostTensor } from "../runtime/host_tensor.ts";
import { Session, type SessionOptions } from "../runtime/session.ts";
import type { FusedStepLayout } from "./fused_step.ts";
import { buildMultiStep, MultiStepRunner } from "./multi_step.ts";
import { type StepResult, StepRunner } from "./step_runner.ts";

/** One step's per-step inputs (views, ...) by graph input name, and its scalars (lr, step, μ). */
export interface StepInput {
  batch: Record<string, HostTensor>;
  scalars: Record<string, number>;
}

/** Options of {@link StepEngine.create}. */
export interface StepEngineOptions {
  session: SessionOptions;
  /** Most steps per session run (K ≥ 1). */
  stepsPerRun: number;
  /** Inputs every step of a run reads unchanged (SDCLR masks), fed once per run. */
  shared?: string[];
}

/** Runs training steps, up to K per session run, carrying the state in `values`. */
export class StepEngine {
  private constructor(
    readonly session: Session,
    readonly stepsPerRun: number,
    private readonly runner: StepRunner | MultiStepRunner,
    private readonly layout: FusedStepLayout,
  ) {}

  /**
   * A session for the fused step `step` (from buildFusedStep) taking up to
   * `options.stepsPerRun` steps per run. `values` holds the carried values
   * (missing optimizer state starts at zero) and is updated in place, so
   * engines of several batch sizes built on one map share their state.
   */
  static async create(
    step: { graph: Graph; layout: FusedStepLayout },
    values: Map<string, HostTensor>,
    options: StepEngineOptions,
  ): Promise<StepEngine> {
    const k = options.stepsPerRun;
    if (!Number.isInteger(k) || k < 1) {
      throw new Error(`steps per run: expected an integer >= 1, got ${k}`);
    }
    if (k === 1) {
      const session = await Session.create(step.graph, options.session);
      return new StepEngine(session, 1, new StepRunner(session, step.layout, values), step.layout);
    }
    const multi = buildMultiStep(step.graph, step.layout, k, { shared: options.shared });
    const session = await Session.create(multi.graph, options.session);
    return new StepEngine(
      session,
      k,
      new MultiStepRunner(session, multi.layout, values),
      step.layout,
    );
  }

  /**
   * Runs `steps` (1 to K of them) in one session run; `shared` holds the
   * inputs named in `options.shared`. Returns each step's loss and extras.
   */
  async run(steps: StepInput[], shared: Record<string, HostTensor> = {}): Promise<StepResult[]> {
    if (steps.length < 1 || steps.length > this.stepsPerRun) {
      throw new Error(
        `step engine: a run takes 1 to ${this.stepsPerRun} steps, got ${steps.length}`,
      );
    }
    if (this.runner instanceof StepRunner) {
      return [await this.runner.step({ ...steps[0].batch, ...shared }, steps[0].scalars)];
    }
    const result = await this.runner.run(
      steps.map((s) => s.batch),
      steps.map((s) => s.scalars),
      shared,
    );
    return result.losses.map((loss, i) => {
      const extras: Record<string, HostTensor> = {};
      for (const name of this.layout.extras) extras[name] = sliceStep(result.extras[name], i);
      return { loss, extras };
    });
  }

  /** Frees the session. */
  async release(): Promise<void> {
    await this.session.release();
  }
}

/** Step `i` of a [steps, ...] tensor, as a view (no copy). */
function sliceStep(stacked: HostTensor, i: number): HostTensor {
  const shape = stacked.shape.slice(1);
  const size = shape.reduce((a, b) => a * b, 1);
  return {
    dtype: stacked.dtype,
    shape,
    data: stacked.data.subarray(i * size, (i + 1) * size) as HostTensor["data"],
  };
}
