/**
 * Times our contrastive training step (two views → encoder → head → loss →
 * gradients → optimizer update) exactly as the runner runs it: through the
 * project's StepEngine, up to `stepsPerRun` steps per ONNX Runtime run, with
 * the project's default threads and precision unless told otherwise.
 */
import type { ContrastiveStep } from "../methods/contrastive.ts";
import { initParams } from "../nn/mod.ts";
import { allocHost } from "../onnx/dtype.ts";
import { createAdam, createSgd, type GraphOptimizer } from "../optim/mod.ts";
import type { HostTensor } from "../runtime/host_tensor.ts";
import { buildStepAtPrecision, checkPrecision } from "../train/precision.ts";
import { StepEngine, type StepInput } from "../train/step_engine.ts";
import { Rng } from "../util/rng.ts";
import { startLoadMeter } from "./cpu_load.ts";
import {
  BENCH_ADAM,
  BENCH_SGD,
  BENCH_WEIGHTED,
  type BenchConfig,
  benchSpec,
  timedSteps,
} from "./config.ts";

/** How the two views of a bench step are made. */
export const VIEWS_NOTE =
  "two fixed random views (N(0,1) floats drawn once, the same every step; no augmentation)";

/** Timings of a run of steps. */
export interface StepTimes {
  /** Milliseconds of each timed step. */
  perStepMs: number[];
  medianMs: number;
  meanMs: number;
  /** 2·batch views per median step. */
  viewsPerSecond: number;
}

/** Summarises per-step times of `batch`-image steps (views/s from the median). */
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
    viewsPerSecond: (2 * batch) / (medianMs / 1000),
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
  /** Initial parameters, buffers (and a dynamic loss scale) by input name. */
  initial: Map<string, HostTensor>;
  /** Per-step inputs: the two views. */
  batch: Record<string, HostTensor>;
  /** Inputs every step reads unchanged: SDCLR's masks. */
  shared: Record<string, HostTensor>;
  /** Per-step scalars (lr, step, μ). */
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
  checkPrecision(config.precision, config.device, "--precision");
  const built = buildStepAtPrecision(benchSpec(config), benchOptimizer(config), {
    precision: config.precision,
    lossScale: "dynamic",
    name: "bench_step",
  });
  const step = built.step;
  const rng = new Rng(config.seed, "bench");
  const initial = initParams(step.store.entries(), rng.fork("init"));
  for (const [name, value] of built.initialValues) initial.set(name, value);
  const shape = [config.batch, 3, config.imageSize, config.imageSize];
  const batch: Record<string, HostTensor> = {
    [step.inputs.view1]: randomNormal(rng.fork("view1"), shape),
    [step.inputs.view2]: randomNormal(rng.fork("view2"), shape),
  };
  const shared: Record<string, HostTensor> = {};
  const maskRng = rng.fork("masks");
  for (const name of step.inputs.masks) {
    const input = step.graph.findInput(name)!;
    const mask = new Float32Array((input.shape as number[]).reduce((a, b) => a * b, 1));
    for (let i = 0; i < mask.length; i++) mask[i] = maskRng.uniform() < config.prunePercent ? 0 : 1;
    shared[name] = { dtype: "float32", shape: [...input.shape as number[]], data: mask };
  }
  const lr = config.optimizer === "adam" ? BENCH_ADAM.lr : BENCH_SGD.lr;
  // `step` stays 1 (Adam's bias corrections cost the same at any step).
  const scalars: Record<string, number> = { lr, step: 1 };
  if (step.inputs.mu) scalars[step.inputs.mu] = BENCH_WEIGHTED.mu;
  return { step, initial, batch, shared, scalars };
}

/** The optimizer of the bench step: SDCLR's SGD with momentum or ETH's Adam. */
export function benchOptimizer(config: BenchConfig): GraphOptimizer {
  return config.optimizer === "adam"
    ? createAdam({
      kind: "adam",
      betas: [...BENCH_ADAM.betas],
      eps: BENCH_ADAM.eps,
      weightDecay: BENCH_ADAM.weightDecay,
    })
    : createSgd({ kind: "sgd", momentum: BENCH_SGD.momentum, weightDecay: BENCH_SGD.weightDecay });
}

/** Every input of one step (initial values, zero optimizer state, views, masks, scalars) by name. */
export function stepFeeds(prepared: PreparedStep): Record<string, HostTensor> {
  const feeds: Record<string, HostTensor> = { ...prepared.batch, ...prepared.shared };
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

/** The mean of per-step loads weighted by step time; null when any is unknown. */
export function weightedLoad(perStepMs: number[], loads: (number | null)[]): number | null {
  let weighted = 0;
  let total = 0;
  for (let i = 0; i < perStepMs.length; i++) {
    const load = loads[i];
    if (load === null || load === undefined) return null;
    weighted += load * perStepMs[i];
    total += perStepMs[i];
  }
  return total > 0 ? weighted / total : null;
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

/**
 * Runs `warmup` untimed steps, then at least `steps` timed ones in runs of
 * `stepsPerRun` (as the runner groups them); each step of a run is credited
 * with the run's time over its step count. `onStep` sees each run's ms per step;
 * `afterRun`, awaited after each timed run outside the timing, lets a
 * reference take its turn (the bench's interleaved torch steps).
 */
export async function timeOurStep(
  config: BenchConfig,
  prepared: PreparedStep,
  onStep?: (ms: number, loss: number) => void,
  afterRun?: (steps: number) => Promise<void>,
): Promise<OurStepResult> {
  const t0 = performance.now();
  const values = new Map(prepared.initial);
  const engine = await StepEngine.create(prepared.step, values, {
    session: { device: config.device, threads: config.threads },
    stepsPerRun: config.stepsPerRun,
    shared: prepared.step.inputs.masks,
  });
  const sessionSeconds = (performance.now() - t0) / 1000;
  const input: StepInput = { batch: prepared.batch, scalars: prepared.scalars };
  const runSteps = async (count: number) => {
    const results = await engine.run(new Array(count).fill(input), prepared.shared);
    return results[results.length - 1].loss;
  };
  try {
    let loss = NaN;
    for (let done = 0; done < config.warmup;) {
      const count = Math.min(config.stepsPerRun, config.warmup - done);
      loss = await runSteps(count);
      done += count;
    }
    const perStepMs: number[] = [];
    const otherCoresPerStep: (number | null)[] = [];
    const total = timedSteps(config);
    for (let done = 0; done < total; done += config.stepsPerRun) {
      const runLoad = startLoadMeter();
      const start = performance.now();
      loss = await runSteps(config.stepsPerRun);
      const ms = (performance.now() - start) / config.stepsPerRun;
      const others = runLoad();
      for (let i = 0; i < config.stepsPerRun; i++) {
        perStepMs.push(ms);
        otherCoresPerStep.push(others);
      }
      onStep?.(ms, loss);
      await afterRun?.(config.stepsPerRun);
    }
    // Time-weighted over our runs only: a reference taking turns in between is not "other load".
    const others = weightedLoad(perStepMs, otherCoresPerStep);
    if (!Number.isFinite(loss)) throw new Error(`bench: our step gave a non-finite loss (${loss})`);
    return {
      ...summariseTimes(perStepMs, config.batch),
      loss,
      sessionSeconds,
      otherCores: others,
      otherCoresPerStep,
      inputs: engine.session.inputNames.length,
      outputs: engine.session.outputNames.length,
    };
  } finally {
    await engine.release();
  }
}
