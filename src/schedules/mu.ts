/**
 * Schedules for μ, the mean of the ETH Gaussian weight (SPEC §A "Schedules for μ").
 *
 * They mirror the `Parameter` classes of the original `src/losses/weights.py`:
 * μ starts at its initial value and changes only at {@link MuSchedule.epochEnd}
 * (the original's `step()`), except `RandomParamEveryIter`, whose reading
 * consumes a draw. Random draws come from the {@link Rng} given at creation
 * (the original uses Python's `random` seeded with 42), one `uniform()` per draw.
 */

import { Rng, type RngState } from "../util/rng.ts";

/** Schedule class names as written in ETH configs (`weight_config.mean`), plus `ConstParam`. */
export const MU_SCHEDULE_NAMES = [
  "ConstParam",
  "LinearParam",
  "ExponentialParam",
  "RandomParam",
  "RandomParamEveryIter",
  "RandomThenConst",
] as const;

/** One of {@link MU_SCHEDULE_NAMES}. */
export type MuScheduleName = typeof MU_SCHEDULE_NAMES[number];

/** ETH `mean_config`; which keys are read depends on the schedule (extra keys are ignored, as in the original). */
export interface MeanConfig {
  /** LinearParam/ExponentialParam: first value; Random*: one end of the interval. */
  begin?: number;
  /** LinearParam/ExponentialParam: target value; Random*: the other end of the interval. */
  end?: number;
  /** LinearParam: number of epoch-end updates to reach `end`; RandomThenConst: number of random epoch-end draws. */
  steps?: number;
  /** ExponentialParam: μ_t = end + (begin − end)·factor^t. */
  factor?: number;
  /** RandomThenConst (and ConstParam): the constant value. */
  const_value?: number;
}

/** The part of an ETH `weight_config` that defines μ: `mean` is a class name or a plain number. */
export interface MuScheduleConfig {
  mean: number | string;
  mean_config?: MeanConfig | null;
}

/** Everything needed to continue a schedule exactly (save it in a checkpoint). */
export interface MuScheduleState {
  name: MuScheduleName;
  /** Current μ (the original's `parameter`). */
  parameter: number;
  /** Epoch-end updates counted so far (LinearParam, RandomThenConst). */
  count: number;
  /** factor^t so far (ExponentialParam; the original multiplies iteratively). */
  exponential: number;
  /** The generator's state (its counter says how many draws were used). */
  rng: RngState;
}

/** A μ schedule. */
export interface MuSchedule {
  /** The schedule class. */
  readonly name: MuScheduleName;
  /** μ for the next training step; for `RandomParamEveryIter` this consumes a draw (the next read differs). */
  value(): number;
  /** μ as {@link MuSchedule.value} would return it, without consuming a draw (for logging). */
  current(): number;
  /** The once-per-epoch update (the original's `step()`), called after every epoch. */
  epochEnd(): void;
  /** The state to checkpoint. */
  state(): MuScheduleState;
  /** Continues from a saved state; the schedule then uses a generator restored from `state.rng`. */
  restore(state: MuScheduleState): void;
}

interface Params {
  begin: number;
  end: number;
  steps: number;
  factor: number;
  constValue: number;
}

/**
 * Creates the μ schedule of an ETH `weight_config` (`{ mean, mean_config }`).
 *
 * @param config `mean` is a number (constant μ) or one of {@link MU_SCHEDULE_NAMES}.
 * @param rng generator for the random schedules (give it a dedicated stream, e.g. `rng.fork("mu")`);
 *   the schedule owns it from then on.
 * @param where prefix of the config path used in error messages.
 */
export function createMuSchedule(
  config: MuScheduleConfig,
  rng: Rng,
  where = "weight_config",
): MuSchedule {
  if (config === null || typeof config !== "object") {
    throw new Error(`${where}: expected an object with "mean" and "mean_config", got ${config}`);
  }
  const mean = config.mean;
  if (typeof mean === "number") {
    if (!Number.isFinite(mean)) {
      throw new Error(`${where}.mean: expected a finite number or a schedule name, got ${mean}`);
    }
    return new EthMuSchedule("ConstParam", { ...NO_PARAMS, constValue: mean }, rng);
  }
  if (typeof mean !== "string" || !(MU_SCHEDULE_NAMES as readonly string[]).includes(mean)) {
    throw new Error(
      `${where}.mean: unknown μ schedule ${JSON.stringify(mean)}; expected a number or one of ${
        MU_SCHEDULE_NAMES.join(", ")
      }`,
    );
  }
  const name = mean as MuScheduleName;
  const raw = config.mean_config;
  if (raw === null || raw === undefined || typeof raw !== "object") {
    throw new Error(`${where}.mean_config: ${name} needs a mean_config object, got ${raw}`);
  }
  const at = `${where}.mean_config`;
  const num = (key: keyof MeanConfig) => finiteNumber(at, key, raw[key]);
  switch (name) {
    case "ConstParam":
      return new EthMuSchedule(name, { ...NO_PARAMS, constValue: num("const_value") }, rng);
    case "LinearParam":
      return new EthMuSchedule(name, {
        ...NO_PARAMS,
        begin: num("begin"),
        end: num("end"),
        steps: count(at, "steps", raw.steps),
      }, rng);
    case "ExponentialParam":
      return new EthMuSchedule(
        name,
        { ...NO_PARAMS, begin: num("begin"), end: num("end"), factor: num("factor") },
        rng,
      );
    case "RandomParam":
    case "RandomParamEveryIter":
      return new EthMuSchedule(name, { ...NO_PARAMS, begin: num("begin"), end: num("end") }, rng);
    case "RandomThenConst":
      return new EthMuSchedule(name, {
        ...NO_PARAMS,
        begin: num("begin"),
        end: num("end"),
        steps: count(at, "steps", raw.steps),
        constValue: num("const_value"),
      }, rng);
  }
}

const NO_PARAMS: Params = { begin: 0, end: 0, steps: 0, factor: 1, constValue: 0 };

class EthMuSchedule implements MuSchedule {
  readonly name: MuScheduleName;
  #params: Params;
  #rng: Rng;
  #parameter: number;
  #count = 0;
  #exponential = 1;

  constructor(name: MuScheduleName, params: Params, rng: Rng) {
    this.name = name;
    this.#params = params;
    this.#rng = rng;
    switch (name) {
      case "ConstParam":
        this.#parameter = params.constValue;
        break;
      case "LinearParam":
      case "ExponentialParam":
        this.#parameter = params.begin;
        break;
      default: // the random ones draw once at construction
        this.#parameter = this.#draw();
    }
  }

  /** (begin − end)·u + end, u ∈ [0, 1): a value in (begin, end] when begin < end. */
  #draw(): number {
    const { begin, end } = this.#params;
    return (begin - end) * this.#rng.uniform() + end;
  }

  value(): number {
    const v = this.#parameter;
    if (this.name === "RandomParamEveryIter") this.#parameter = this.#draw();
    return v;
  }

  current(): number {
    return this.#parameter;
  }

  epochEnd(): void {
    const p = this.#params;
    switch (this.name) {
      case "ConstParam":
        return;
      case "LinearParam":
        // Accumulated additions, as the original (not begin + t·delta).
        if (this.#count < p.steps) this.#parameter += (p.end - p.begin) / p.steps;
        this.#count++;
        return;
      case "ExponentialParam":
        this.#exponential *= p.factor;
        this.#parameter = p.end + (p.begin - p.end) * this.#exponential;
        return;
      case "RandomParam":
      case "RandomParamEveryIter":
        this.#parameter = this.#draw();
        return;
      case "RandomThenConst":
        if (this.#count < p.steps) {
          this.#parameter = this.#draw();
          this.#count++;
        } else {
          this.#parameter = p.constValue;
        }
        return;
    }
  }

  state(): MuScheduleState {
    return {
      name: this.name,
      parameter: this.#parameter,
      count: this.#count,
      exponential: this.#exponential,
      rng: this.#rng.state(),
    };
  }

  restore(state: MuScheduleState): void {
    const where = `MuSchedule.restore (${this.name})`;
    if (state === null || typeof state !== "object") {
      throw new Error(`${where}: expected a state object, got ${state}`);
    }
    if (state.name !== this.name) {
      throw new Error(
        `${where}: state.name is ${JSON.stringify(state.name)}, expected "${this.name}"`,
      );
    }
    const parameter = finiteNumber(where, "state.parameter", state.parameter);
    const exponential = finiteNumber(where, "state.exponential", state.exponential);
    const epochs = count(where, "state.count", state.count);
    const r = state.rng;
    if (
      r === null || typeof r !== "object" || !Number.isInteger(r.seed) ||
      typeof r.stream !== "string" || !Number.isInteger(r.counter) || r.counter < 0
    ) {
      throw new Error(
        `${where}: state.rng must be {seed: integer, stream: string, counter: integer ≥ 0}, got ${
          JSON.stringify(r)
        }`,
      );
    }
    this.#parameter = parameter;
    this.#exponential = exponential;
    this.#count = epochs;
    this.#rng = Rng.fromState(r);
  }
}

function finiteNumber(where: string, key: string, value: unknown): number {
  if (typeof value !== "number" || !Number.isFinite(value)) {
    throw new Error(`${where}.${key}: expected a finite number, got ${JSON.stringify(value)}`);
  }
  return value;
}

function count(where: string, key: string, value: unknown): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0) {
    throw new Error(`${where}.${key}: expected an integer ≥ 0, got ${JSON.stringify(value)}`);
  }
  return value;
}
