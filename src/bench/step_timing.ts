/**
 * Times our fused contrastive training step (two views → encoder → head →
 * loss → gradients → SGD update, one ONNX Runtime run per step) through the
 * project's own Session and StepRunner, after warm-up.
 */
import { buildContrastiveStep, type ContrastiveStep } from "../methods/contrastive.ts";
import { initParams } from "../nn/mod.ts";
import { allocHost } from "../onnx/dtype.ts";
import { createSgd } from "../optim/mod.ts";
import type { HostTensor } from "../runtime/host_tensor.ts";
import { Session } from "../runtime/session.ts";
import { StepRunner } from "../train/step_runner.ts";
import { Rng } from "../util/rng.ts";
import { startLoadMeter } from "./cpu_load.ts";
import { BENCH_SGD, BENCH_WEIGHTED, type BenchConfig, benchSpec } from "./config.ts";

/** How the two views of a bench step are made. */
export const VIEWS_NOTE =
  "two fixed random views (N(0,1) floats drawn once, the same every step; no augmentation)";

/** Timings of a run of steps. */
export interface StepTimes {
  /** Milliseconds of each timed step. */
  perStepMs: number[];
  medianMs: number;
  meanMs: number;
  /** 2·batch·steps / total timed seconds. */
  viewsPerSecond: number;
}

/** Summarises per-step times of `batch`-image steps. */
export function summariseTimes(perStepMs: number[], batch: number): StepTimes {
  if (perStepMs.length === 0) throw new Error("summariseTimes: no timed steps");
  const sorted = [...perStepMs].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const medianMs = sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  const total = perStepMs.reduce((a, b) => a + b, 0);
  return {
    perStepMs,
    medianMs,
    meanMs: total / perStepMs.length,
    viewsPerSecond: (2 * batch * perStepMs.length) / (total / 1000),
  };
}

/** Peak resident set size of this process (VmHWM of /proc/self/status), in bytes; null where unreadable. */
export function peakRssBytes(): number | null {
  try {
    const match = Deno.readTextFileSync("/proc/self/status").match(/^VmHWM:\s+(\d+)\s+kB/m);
    return match ? Number(match[1]) * 1024 : null;
  } catch {
    return null;
  }
}

/** A built bench step with everything needed to run it. */
export interface PreparedStep {
  step: ContrastiveStep;
  /** Initial parameters and buffers by input name. */
  initial: Map<string, HostTensor>;
  /** Per-step inputs: the two views and, for SDCLR, the masks. */
  batch: Record<string, HostTensor>;
  /** Per-step scalars (lr, μ). */
  scalars: Record<string, number>;
}

function randomNormal(rng: Rng, shape: number[]): HostTensor {
  const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
  rng.fillNormal(data, 0, 1);
  return { dtype: "float32", shape, data };
}

/**
 * Builds the step graph of `config`, initial values (seeded), the two fixed
 * views and, for SDCLR, masks keeping a random `1 − prunePercent` of each
 * conv weight (mask values do not change the cost of the step).
 */
export function prepareStep(config: BenchConfig): PreparedStep {
  const optimizer = createSgd({
    kind: "sgd",
    momentum: BENCH_SGD.momentum,
    weightDecay: BENCH_SGD.weightDecay,
  });
  const step = buildContrastiveStep(benchSpec(config), optimizer, { name: "bench_step" });
  const rng = new Rng(config.seed, "bench");
  const initial = initParams(step.store.entries(), rng.fork("init"));
  const shape = [config.batch, 3, config.imageSize, config.imageSize];
  const batch: Record<string, HostTensor> = {
    [step.inputs.view1]: randomNormal(rng.fork("view1"), shape),
    [step.inputs.view2]: randomNormal(rng.fork("view2"), shape),
  };
  const maskRng = rng.fork("masks");
  for (const name of step.inputs.masks) {
    const input = step.graph.findInput(name)!;
    const mask = new Float32Array((input.shape as number[]).reduce((a, b) => a * b, 1));
    for (let i = 0; i < mask.length; i++) mask[i] = maskRng.uniform() < config.prunePercent ? 0 : 1;
    batch[name] = { dtype: "float32", shape: [...input.shape as number[]], data: mask };
  }
  const scalars: Record<string, number> = { lr: BENCH_SGD.lr };
  if (step.inputs.mu) scalars[step.inputs.mu] = BENCH_WEIGHTED.mu;
  return { step, initial, batch, scalars };
}

/** Every input of one step (initial values, zero optimizer state, views, masks, scalars) by name. */
export function stepFeeds(prepared: PreparedStep): Record<string, HostTensor> {
  const feeds: Record<string, HostTensor> = { ...prepared.batch };
  for (const c of prepared.step.layout.carried) {
    const shape = c.shape as number[];
    feeds[c.input] = prepared.initial.get(c.input) ??
      { dtype: c.dtype, shape, data: allocHost(c.dtype, shape.reduce((a, b) => a * b, 1)) };
  }
  for (const s of prepared.step.layout.scalars) {
    const value = prepared.scalars[s.name];
    if (value === undefined) throw new Error(`bench: no value for the step scalar ${s.name}`);
    feeds[s.name] = {
      dtype: s.dtype,
      shape: [],
      data: s.dtype === "float64" ? Float64Array.of(value) : Float32Array.of(value),
    };
  }
  return feeds;
}

/** Result of timing our step. */
export interface OurStepResult extends StepTimes {
  /** Loss of the last step (finite unless something is wrong). */
  loss: number;
  /** Seconds to create the session (graph optimisation included). */
  sessionSeconds: number;
  /** CPU cores other processes kept busy during the timed steps (null: unknown). */
  otherCores: number | null;
  /** The same per timed step. */
  otherCoresPerStep: (number | null)[];
  /** Number of graph inputs and outputs fed and fetched per step. */
  inputs: number;
  outputs: number;
}

/** Runs `warmup` then `steps` timed steps of the prepared step; `onStep` sees each timed step's ms. */
export async function timeOurStep(
  config: BenchConfig,
  prepared: PreparedStep,
  onStep?: (ms: number, loss: number) => void,
): Promise<OurStepResult> {
  const t0 = performance.now();
  const session = await Session.create(prepared.step.graph, {
    device: config.device,
    threads: config.threads,
  });
  const sessionSeconds = (performance.now() - t0) / 1000;
  try {
    const runner = new StepRunner(session, prepared.step.layout, prepared.initial);
    let loss = NaN;
    for (let i = 0; i < config.warmup; i++) {
      loss = (await runner.step(prepared.batch, prepared.scalars)).loss;
    }
    const perStepMs: number[] = [];
    const otherCoresPerStep: (number | null)[] = [];
    const otherCores = startLoadMeter();
    for (let i = 0; i < config.steps; i++) {
      const stepLoad = startLoadMeter();
      const start = performance.now();
      loss = (await runner.step(prepared.batch, prepared.scalars)).loss;
      const ms = performance.now() - start;
      otherCoresPerStep.push(stepLoad());
      perStepMs.push(ms);
      onStep?.(ms, loss);
    }
    const others = otherCores();
    if (!Number.isFinite(loss)) throw new Error(`bench: our step gave a non-finite loss (${loss})`);
    return {
      ...summariseTimes(perStepMs, config.batch),
      loss,
      sessionSeconds,
      otherCores: others,
      otherCoresPerStep,
      inputs: session.inputNames.length,
      outputs: session.outputNames.length,
    };
  } finally {
    await session.release();
  }
}
