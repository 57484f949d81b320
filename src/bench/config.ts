/**
 * What a benchmark run times: the model, method, loss, batch and runtime
 * settings, read and checked from the `bench` command's options.
 */
import { DEFAULT_STEPS_PER_RUN, type Precision, PRECISIONS } from "../config/schema.ts";
import { type ContrastiveSpec } from "../methods/contrastive.ts";
import {
  RESNET_ARCHS,
  RESNET_STEMS,
  type ResNetArch,
  resnetFeatureDim,
  type ResNetStem,
} from "../nn/mod.ts";
import type { Device } from "../runtime/session.ts";
import { resolveThreads } from "../runtime/threads.ts";

/** Contrastive methods the bench can time. */
export const BENCH_METHODS = ["simclr", "sdclr"] as const;
/** Losses the bench can time. */
export const BENCH_LOSSES = ["ntxent", "weighted"] as const;
/** Optimizers the bench can time: SDCLR's SGD with momentum, ETH's Adam. */
export const BENCH_OPTIMIZERS = ["sgd", "adam"] as const;
/** Projection heads: SimCLR's and SDCLR's (with BN), ETH's linear projection. */
export const BENCH_HEADS = ["simclr", "sdclr", "linear"] as const;

/** One benchmark configuration (shared by our step and the PyTorch reference). */
export interface BenchConfig {
  model: ResNetArch;
  stem: ResNetStem;
  /** Channel multiplier of the encoder (1 = torchvision). */
  width: number;
  method: typeof BENCH_METHODS[number];
  loss: typeof BENCH_LOSSES[number];
  optimizer: typeof BENCH_OPTIMIZERS[number];
  head: typeof BENCH_HEADS[number];
  /** Compute precision of our step (train.precision). */
  precision: Precision;
  /** Steps per ONNX Runtime run (train.steps_per_run). */
  stepsPerRun: number;
  /** Images per step; every step sees 2·batch views. */
  batch: number;
  imageSize: number;
  /** Timed steps (at least; rounded up to whole runs of `stepsPerRun`). */
  steps: number;
  /** Untimed steps first (session warm-up, allocator growth). */
  warmup: number;
  device: Device;
  /** Intra-op threads, ours and torch's (0: the project default, resolveThreads). */
  threads: number;
  temperature: number;
  /** Fraction of conv weights zeroed in SDCLR's masks (only their values change, not the cost). */
  prunePercent: number;
  seed: number;
}

/** SGD of the bench step (SDCLR's optimizer, SPEC §B). */
export const BENCH_SGD = { momentum: 0.9, weightDecay: 1e-4, lr: 0.05 } as const;

/** Adam of the bench step with `--optimizer adam` (the ETH experiments' settings). */
export const BENCH_ADAM = {
  lr: 1e-3,
  weightDecay: 1e-6,
  betas: [0.9, 0.999] as [number, number],
  eps: 1e-8,
} as const;

/** Weighted-loss settings of the bench (ETH experiment 10: σ 0.5, bounds ±1, μ fed as 0). */
export const BENCH_WEIGHTED = {
  sigma: 0.5,
  lowerBound: -1,
  upperBound: 1,
  normalization: "negatives_constant_total_weight",
  mu: 0,
} as const;

/** Raw option values as the CLI parser hands them over (strings and booleans). */
export type RawBenchOptions = Record<string, unknown>;

function pick<T extends string>(
  raw: RawBenchOptions,
  key: string,
  allowed: readonly T[],
  fallback: T,
): T {
  const value = raw[key] ?? fallback;
  if (typeof value !== "string" || !(allowed as readonly string[]).includes(value)) {
    throw new Error(
      `--${key}: unknown value ${JSON.stringify(value)}; expected one of ${allowed.join(", ")}`,
    );
  }
  return value as T;
}

function num(
  raw: RawBenchOptions,
  key: string,
  fallback: number,
  check: { min: number; integer?: boolean; max?: number },
): number {
  const given = raw[key];
  const value = given === undefined ? fallback : Number(given);
  const ok = Number.isFinite(value) && value >= check.min &&
    (check.max === undefined || value <= check.max) &&
    (!check.integer || Number.isInteger(value));
  if (!ok) {
    const kind = check.integer ? "an integer" : "a number";
    const range = check.max === undefined ? `>= ${check.min}` : `in [${check.min}, ${check.max}]`;
    throw new Error(`--${key}: expected ${kind} ${range}, got ${JSON.stringify(given)}`);
  }
  return value;
}

/** Reads and checks the bench options; throws an Error naming the option and what it expects. */
export function parseBenchConfig(raw: RawBenchOptions): BenchConfig {
  const model = pick(raw, "model", RESNET_ARCHS, "resnet18");
  const stem = pick(raw, "stem", RESNET_STEMS, "cifar");
  const width = num(raw, "width", 1, { min: 1 / 64 });
  if (Math.abs(64 * width - Math.round(64 * width)) > 1e-9) {
    throw new Error(`--width: ${width} must make 64·width an integer (e.g. 1, 0.5, 0.0625)`);
  }
  const method = pick(raw, "method", BENCH_METHODS, "simclr");
  return {
    model,
    stem,
    width,
    method,
    loss: pick(raw, "loss", BENCH_LOSSES, "ntxent"),
    optimizer: pick(raw, "optimizer", BENCH_OPTIMIZERS, "sgd"),
    head: pick(raw, "head", BENCH_HEADS, method),
    precision: pick(raw, "precision", PRECISIONS, "float32"),
    stepsPerRun: num(raw, "steps-per-run", DEFAULT_STEPS_PER_RUN, { min: 1, integer: true }),
    // NT-Xent needs at least two pairs (2N >= 4).
    batch: num(raw, "batch", 32, { min: 2, integer: true }),
    imageSize: num(raw, "size", 32, { min: 8, integer: true }),
    steps: num(raw, "steps", 10, { min: 1, integer: true }),
    warmup: num(raw, "warmup", 2, { min: 0, integer: true }),
    device: pick(raw, "device", ["cpu", "cuda"] as const, "cpu"),
    threads: num(raw, "threads", 0, { min: 0, integer: true }),
    temperature: num(raw, "temperature", 0.2, { min: 1e-6 }),
    prunePercent: num(raw, "prune", 0.9, { min: 0, max: 0.999 }),
    seed: num(raw, "seed", 0, { min: 0, integer: true }),
  };
}

/** The contrastive spec our step is built from. */
export function benchSpec(config: BenchConfig): ContrastiveSpec {
  const encoder = { arch: config.model, stem: config.stem, width: config.width };
  const hiddenDim = resnetFeatureDim(encoder);
  return {
    encoder,
    head: config.head === "linear"
      ? { kind: "projection", outDim: 128 }
      : { kind: config.head, hiddenDim, outDim: 128 },
    loss: config.loss === "ntxent" ? { type: "ntxent", temperature: config.temperature } : {
      type: "weighted_ntxent",
      temperature: config.temperature,
      sigma: BENCH_WEIGHTED.sigma,
      lowerBound: BENCH_WEIGHTED.lowerBound,
      upperBound: BENCH_WEIGHTED.upperBound,
      normalization: BENCH_WEIGHTED.normalization,
    },
    method: { name: config.method },
    batchSize: config.batch,
    imageSize: config.imageSize,
  };
}

/** A one-line description of the configuration. */
export function describeConfig(config: BenchConfig): string {
  const width = config.width === 1 ? "" : ` width ${config.width}`;
  return `${config.method} ${config.loss} ${config.model}/${config.stem}${width} ${config.imageSize}x${config.imageSize}` +
    ` ${config.head} head, ${config.optimizer}, ${config.precision},` +
    ` batch ${config.batch} (${2 * config.batch} views), ${
      timedSteps(config)
    } steps after ${config.warmup} warm-up,` +
    ` ${config.stepsPerRun} per run, ${config.device}, ${
      config.threads || `default (${resolveThreads(0, config.device)})`
    } threads`;
}

/** Steps actually timed: `steps` rounded up to whole runs of `stepsPerRun`. */
export function timedSteps(config: BenchConfig): number {
  return Math.ceil(config.steps / config.stepsPerRun) * config.stepsPerRun;
}
