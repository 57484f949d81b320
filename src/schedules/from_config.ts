/**
 * Schedules of an experiment config: μ (from the weighted loss's `mean`) and
 * the learning rate (from `optimizer.lr` and `lr_schedule`), plus the
 * per-epoch plan the `plan` command prints and the runner follows.
 */
import type { ExperimentConfig, MeanSchedule } from "../config/mod.ts";
import { batchCount } from "../data/loader.ts";
import { Rng } from "../util/rng.ts";
import { lrAt, type LrSchedule, validateLrSchedule } from "./lr.ts";
import { createMuSchedule, type MuSchedule, type MuScheduleConfig } from "./mu.ts";

/** Our config's μ schedule in the ETH `{ mean, mean_config }` form the schedule classes read. */
export function ethMeanConfig(mean: MeanSchedule): MuScheduleConfig {
  switch (mean.type) {
    case "const":
      return { mean: mean.value };
    case "linear":
      return {
        mean: "LinearParam",
        mean_config: { begin: mean.begin, end: mean.end, steps: mean.steps },
      };
    case "exponential":
      return {
        mean: "ExponentialParam",
        mean_config: { begin: mean.begin, end: mean.end, factor: mean.factor },
      };
    case "random":
      return { mean: "RandomParam", mean_config: { begin: mean.begin, end: mean.end } };
    case "random_every_iter":
      return { mean: "RandomParamEveryIter", mean_config: { begin: mean.begin, end: mean.end } };
    case "random_then_const":
      return {
        mean: "RandomThenConst",
        mean_config: {
          begin: mean.begin,
          end: mean.end,
          steps: mean.steps,
          const_value: mean.const_value,
        },
      };
  }
}

/** The μ schedule of a config, or null when its loss is not weighted. */
export function muScheduleFromConfig(config: ExperimentConfig, rng: Rng): MuSchedule | null {
  if (config.loss.type !== "weighted_ntxent") return null;
  return createMuSchedule(ethMeanConfig(config.loss.mean), rng, "loss.mean");
}

/**
 * Contrastive batches need two images: a last batch of one is dropped (src/data/loader.ts
 * batchCount), a different image each epoch.
 */
export const MIN_CONTRASTIVE_BATCH = 2;

/** Pretraining iterations per epoch for a data set of `count` images (see {@link MIN_CONTRASTIVE_BATCH}). */
export function iterationsPerEpoch(count: number, batchSize: number, dropLast: boolean): number {
  const n = batchCount(count, batchSize, dropLast, MIN_CONTRASTIVE_BATCH);
  if (n < 1) {
    throw new Error(
      `train.batch_size ${batchSize} leaves no iteration for ${count} images` +
        (dropLast ? " (drop_last)" : ""),
    );
  }
  return n;
}

/** The learning-rate schedule of a config for a run of `iterations` per epoch. */
export function lrScheduleFromConfig(config: ExperimentConfig, iterations: number): LrSchedule {
  const base = config.optimizer.lr;
  const s = config.lr_schedule;
  switch (s.type) {
    case "constant":
      return validateLrSchedule({ kind: "constant", base });
    case "warmup_cosine":
      return validateLrSchedule({
        kind: "warmup_cosine",
        base,
        warmupIterations: s.warmup_epochs * iterations,
        totalIterations: config.train.epochs * iterations,
        minLr: s.final_lr,
      }, "lr_schedule");
    case "step":
      return validateLrSchedule({
        kind: "step",
        base,
        gamma: s.gamma,
        milestones: s.milestones,
        iterationsPerEpoch: iterations,
      }, "lr_schedule");
  }
}

/** One epoch of the plan. */
export interface EpochPlan {
  epoch: number;
  /** μ in force during the epoch (its first iteration's value for per-iteration schedules); null if unweighted. */
  mu: number | null;
  /** Learning rate at the epoch's first iteration. */
  lr: number;
}

/**
 * The per-epoch schedule exactly as a run draws it: per-iteration μ draws
 * are consumed for every iteration, so the values equal the run's.
 */
export function planEpochs(config: ExperimentConfig, iterations: number, muRng: Rng): EpochPlan[] {
  const mu = muScheduleFromConfig(config, muRng);
  const lr = lrScheduleFromConfig(config, iterations);
  const perIteration = mu?.name === "RandomParamEveryIter";
  const plan: EpochPlan[] = [];
  for (let epoch = 0; epoch < config.train.epochs; epoch++) {
    let first: number | null = null;
    if (mu) {
      first = perIteration ? mu.value() : mu.current();
      if (perIteration) { for (let i = 1; i < iterations; i++) mu.value(); }
    }
    plan.push({ epoch, mu: first, lr: lrAt(lr, epoch * iterations) });
    mu?.epochEnd();
  }
  return plan;
}

/** The generator μ schedules draw from: the config seed's "mu" stream (the runner uses the same). */
export function muRng(seed: number): Rng {
  return new Rng(seed, "mu");
}
