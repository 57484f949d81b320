/**
 * Learning-rate schedules as pure functions of the optimizer update index
 * (SPEC §A: constant; SPEC §B: SDCLR warm-up + cosine per iteration, step
 * decay of the linear probes).
 *
 * {@link lrAt} takes the 0-based index of the update in the run and returns
 * the learning rate the original code uses for that update, including when
 * its scheduler steps (see each variant).
 */

/** A constant learning rate (ETH: Adam lr 1e-3, no schedule). */
export interface ConstantLr {
  kind: "constant";
  base: number;
}

/**
 * SDCLR `cosine_annealing`: for scheduler iteration it,
 * lr = base·it/W while it < W, then minLr + (base − minLr)·½(1 + cos(π(it − W)/(T − W))).
 * SDCLR calls `scheduler.step()` before every update, so update k (0-based)
 * uses it = k + 1: the first update gets base/W, the last (k = T − 1) minLr.
 */
export interface WarmupCosineLr {
  kind: "warmup_cosine";
  base: number;
  /** W = warm-up epochs × iterations per epoch (SDCLR: 10 epochs). */
  warmupIterations: number;
  /** T = epochs × iterations per epoch. */
  totalIterations: number;
  /** Final learning rate (SDCLR: 1e-6). */
  minLr: number;
}

/**
 * Step decay of the SDCLR linear probe (`MultiStepLR(milestones, gamma)`):
 * lr = base·gamma^(number of milestones m ≤ e) during epoch e, where epochs
 * are numbered from 1 as in the original loop, which steps the scheduler at
 * the start of every epoch. So milestone 10 first applies to the 10th epoch
 * (0-based epoch 9).
 */
export interface StepDecayLr {
  kind: "step";
  base: number;
  /** Factor per milestone (SDCLR: 0.1). */
  gamma: number;
  /** 1-based epoch numbers, strictly increasing (SDCLR: [10, 20]; few-shot [40, 60]). */
  milestones: number[];
  iterationsPerEpoch: number;
}

/** Any learning-rate schedule; `kind` tells which. */
export type LrSchedule = ConstantLr | WarmupCosineLr | StepDecayLr;

/** The `kind` values of {@link LrSchedule}. */
export const LR_SCHEDULE_KINDS = ["constant", "warmup_cosine", "step"] as const;

/**
 * SDCLR's `cosine_annealing(step, total_steps, lr_max, lr_min, warmup_steps)`, verbatim.
 */
export function cosineAnnealing(
  step: number,
  totalSteps: number,
  lrMax: number,
  lrMin: number,
  warmupSteps = 0,
): number {
  if (step < warmupSteps) return lrMax * step / warmupSteps;
  return lrMin + (lrMax - lrMin) * 0.5 *
      (1 + Math.cos((step - warmupSteps) / (totalSteps - warmupSteps) * Math.PI));
}

/**
 * The SDCLR pretraining schedule from epochs: W = warmupEpochs·iterationsPerEpoch,
 * T = epochs·iterationsPerEpoch.
 */
export function sdclrWarmupCosine(opts: {
  base: number;
  epochs: number;
  iterationsPerEpoch: number;
  warmupEpochs?: number;
  minLr?: number;
}): WarmupCosineLr {
  const { base, epochs, iterationsPerEpoch, warmupEpochs = 10, minLr = 1e-6 } = opts;
  const where = "sdclrWarmupCosine";
  positiveInteger(where, "epochs", epochs);
  positiveInteger(where, "iterationsPerEpoch", iterationsPerEpoch);
  nonNegativeInteger(where, "warmupEpochs", warmupEpochs);
  return validateLrSchedule({
    kind: "warmup_cosine",
    base,
    warmupIterations: warmupEpochs * iterationsPerEpoch,
    totalIterations: epochs * iterationsPerEpoch,
    minLr,
  }, where);
}

/**
 * Checks a schedule and returns it; errors name `where.<key>` and the value.
 */
export function validateLrSchedule<S extends LrSchedule>(schedule: S, where = "lr_schedule"): S {
  if (schedule === null || typeof schedule !== "object") {
    throw new Error(`${where}: expected an object with a "kind", got ${schedule}`);
  }
  const s = schedule as LrSchedule;
  positiveNumber(where, "base", s.base);
  switch (s.kind) {
    case "constant":
      return schedule;
    case "warmup_cosine": {
      nonNegativeInteger(where, "warmupIterations", s.warmupIterations);
      positiveInteger(where, "totalIterations", s.totalIterations);
      if (typeof s.minLr !== "number" || !Number.isFinite(s.minLr) || s.minLr < 0) {
        throw new Error(`${where}.minLr: expected a finite number ≥ 0, got ${s.minLr}`);
      }
      return schedule;
    }
    case "step": {
      positiveNumber(where, "gamma", s.gamma);
      positiveInteger(where, "iterationsPerEpoch", s.iterationsPerEpoch);
      if (!Array.isArray(s.milestones)) {
        throw new Error(`${where}.milestones: expected an array of epochs, got ${s.milestones}`);
      }
      s.milestones.forEach((m, n) => {
        positiveInteger(where, `milestones[${n}]`, m);
        if (n > 0 && m <= s.milestones[n - 1]) {
          throw new Error(
            `${where}.milestones: must be strictly increasing, got ${JSON.stringify(s.milestones)}`,
          );
        }
      });
      return schedule;
    }
    default:
      throw new Error(
        `${where}.kind: unknown learning-rate schedule ${
          JSON.stringify((s as { kind: unknown }).kind)
        }; expected one of ${LR_SCHEDULE_KINDS.join(", ")}`,
      );
  }
}

/**
 * The learning rate of optimizer update `update` (0-based, counted over the whole run).
 */
export function lrAt(schedule: LrSchedule, update: number): number {
  if (!Number.isInteger(update) || update < 0) {
    throw new Error(`lrAt: update must be an integer ≥ 0, got ${update}`);
  }
  switch (schedule.kind) {
    case "constant":
      return schedule.base;
    case "warmup_cosine": {
      const { base, warmupIterations, totalIterations, minLr } = schedule;
      if (update >= totalIterations) {
        throw new Error(
          `lrAt: update ${update} is past the schedule's totalIterations ${totalIterations}`,
        );
      }
      // A run shorter than its warm-up (e.g. `--epochs 2` of a 10-epoch warm-up) never leaves it.
      if (totalIterations <= warmupIterations) return (base * (update + 1)) / warmupIterations;
      return cosineAnnealing(update + 1, totalIterations, base, minLr, warmupIterations);
    }
    case "step": {
      const epochNumber = Math.floor(update / schedule.iterationsPerEpoch) + 1;
      let lr = schedule.base;
      for (const m of schedule.milestones) if (m <= epochNumber) lr *= schedule.gamma;
      return lr;
    }
  }
}

function positiveNumber(where: string, key: string, value: unknown): void {
  if (typeof value !== "number" || !Number.isFinite(value) || value <= 0) {
    throw new Error(`${where}.${key}: expected a finite number > 0, got ${value}`);
  }
}

function positiveInteger(where: string, key: string, value: unknown): void {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1) {
    throw new Error(`${where}.${key}: expected an integer ≥ 1, got ${value}`);
  }
}

function nonNegativeInteger(where: string, key: string, value: unknown): void {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0) {
    throw new Error(`${where}.${key}: expected an integer ≥ 0, got ${value}`);
  }
}
