import { assert, assertEquals } from "./assert.ts";
import {
  cosineAnnealing,
  createMuSchedule,
  lrAt,
  type MuSchedule,
  type MuScheduleConfig,
  type MuScheduleState,
  sdclrWarmupCosine,
  validateLrSchedule,
} from "../src/schedules/mod.ts";
import { Rng } from "../src/util/rng.ts";

/** Asserts that `fn` throws synchronously with a message matching `pattern`. */
function assertThrowsMatching(fn: () => unknown, pattern: RegExp): void {
  try {
    fn();
  } catch (e) {
    const message = (e as Error).message;
    assert(
      pattern.test(message),
      `error message ${JSON.stringify(message)} does not match ${pattern}`,
    );
    return;
  }
  throw new Error(`expected an error matching ${pattern}`);
}

/** μ used during each of `epochs` epochs (read once per epoch, before its end). */
function perEpoch(schedule: MuSchedule, epochs: number): number[] {
  const out: number[] = [];
  for (let e = 0; e < epochs; e++) {
    out.push(schedule.value());
    schedule.epochEnd();
  }
  return out;
}

// `weight_config` blocks as they appear in the ETH configs.
const LINEAR_M1_TO_1: MuScheduleConfig = {
  mean: "LinearParam",
  mean_config: { begin: -1, end: 1, factor: 0.99, steps: 500 },
};
const CONST_06_AS_LINEAR: MuScheduleConfig = {
  mean: "LinearParam",
  mean_config: { begin: 0.6, end: 0.6, factor: 0.98, steps: 500 },
};
const LINEAR_06_TO_M06_250: MuScheduleConfig = {
  mean: "LinearParam",
  mean_config: { begin: 0.6, end: -0.6, factor: 0.98, steps: 250 },
};
const EXPONENTIAL_099: MuScheduleConfig = {
  mean: "ExponentialParam",
  mean_config: { begin: -1, end: 1, factor: 0.99, steps: 500 },
};
const RANDOM: MuScheduleConfig = {
  mean: "RandomParam",
  mean_config: { begin: -1, end: 1, factor: 0.99, steps: 500 },
};
const RANDOM_EVERY_ITER: MuScheduleConfig = {
  mean: "RandomParamEveryIter",
  mean_config: { begin: -1, end: 1, factor: 0.98, steps: 500 },
};
const RANDOM_THEN_CONST: MuScheduleConfig = {
  mean: "RandomThenConst",
  mean_config: { begin: -1, end: 1, factor: 0.98, steps: 200, const_value: 0.8 },
};

Deno.test("LinearParam −1 → 1 over 500 epochs, then constant (values as Python computes them)", () => {
  const mu = perEpoch(createMuSchedule(LINEAR_M1_TO_1, new Rng(42, "mu")), 601);
  assertEquals(mu[0], -1);
  assertEquals(mu[1], -0.996);
  // Accumulated additions of 2/500, exactly as the original's `parameter += ...`.
  assertEquals(mu[250], 8.604228440844963e-16);
  assertEquals(mu[500], 1.0000000000000016);
  assertEquals(mu[600], mu[500]);
  for (let e = 1; e <= 500; e++) {
    assert(Math.abs(mu[e] - mu[e - 1] - 0.004) < 1e-15, `epoch ${e}`);
  }
});

Deno.test("LinearParam with begin = end is a constant; 0.6 → −0.6 over 250 epochs stops there", () => {
  assertEquals(
    perEpoch(createMuSchedule(CONST_06_AS_LINEAR, new Rng(42, "mu")), 500),
    Array(500).fill(0.6),
  );
  const mu = perEpoch(createMuSchedule(LINEAR_06_TO_M06_250, new Rng(42, "mu")), 500);
  assertEquals(mu[250], -0.6000000000000038);
  assertEquals(mu[499], mu[250]);
  assert(Math.abs(mu[125]) < 1e-14, `midpoint ${mu[125]}`);
});

Deno.test("ExponentialParam μ_t = end + (begin − end)·factor^t", () => {
  const mu = perEpoch(createMuSchedule(EXPONENTIAL_099, new Rng(42, "mu")), 501);
  assertEquals(mu[0], -1);
  assertEquals(mu[1], -0.98);
  assertEquals(mu[100], 0.2679353174535415); // the original's iterated product, from Python
  assertEquals(mu[500], 0.9868590339151708);
  for (const t of [0, 1, 10, 100, 500]) {
    assert(Math.abs(mu[t] - (1 - 2 * 0.99 ** t)) < 1e-13, `t=${t}`);
  }
  const fast = perEpoch(
    createMuSchedule(
      { ...EXPONENTIAL_099, mean_config: { begin: 1, end: 0, factor: 0.5 } },
      new Rng(1),
    ),
    4,
  );
  assertEquals(fast, [1, 0.5, 0.25, 0.125]);
});

Deno.test("constant μ: a plain number or ConstParam", () => {
  assertEquals(perEpoch(createMuSchedule({ mean: 0.4 }, new Rng(42)), 3), [0.4, 0.4, 0.4]);
  const c = createMuSchedule(
    { mean: "ConstParam", mean_config: { const_value: -0.25 } },
    new Rng(42),
  );
  assertEquals(c.name, "ConstParam");
  assertEquals(perEpoch(c, 3), [-0.25, -0.25, -0.25]);
});

Deno.test("RandomParam: one draw (begin − end)·u + end per epoch, in (begin, end], from the seed", () => {
  const mu = perEpoch(createMuSchedule(RANDOM, new Rng(42, "mu")), 500);
  const rng = new Rng(42, "mu");
  const expected = mu.map(() => (-1 - 1) * rng.uniform() + 1);
  assertEquals(mu, expected);
  assert(mu.every((m) => m > -1 && m <= 1), "values in (−1, 1]");
  assert(Math.min(...mu) < -0.9 && Math.max(...mu) > 0.9, "draws cover the interval");
  assert(Math.abs(mu.reduce((a, b) => a + b, 0) / mu.length) < 0.1, "mean near 0");
  assertEquals(perEpoch(createMuSchedule(RANDOM, new Rng(42, "mu")), 500), mu, "same seed");
  const otherSeed = perEpoch(createMuSchedule(RANDOM, new Rng(43, "mu")), 500);
  assert(otherSeed.every((m, e) => m !== mu[e]), "another seed gives other draws");
  // Reading twice within an epoch does not draw.
  const s = createMuSchedule(RANDOM, new Rng(42, "mu"));
  assertEquals(s.value(), s.value());
});

Deno.test("RandomParamEveryIter: every read consumes a draw, epoch end draws once more", () => {
  const s = createMuSchedule(RANDOM_EVERY_ITER, new Rng(42, "mu"));
  const rng = new Rng(42, "mu");
  const draw = () => (-1 - 1) * rng.uniform() + 1;
  const d = Array.from({ length: 7 }, draw);
  // Construction drew d0; reads return d0, d1, d2; epoch end replaces d3 by d4.
  assertEquals(s.current(), d[0]);
  assertEquals([s.value(), s.value(), s.value()], [d[0], d[1], d[2]]);
  s.epochEnd();
  assertEquals([s.value(), s.value()], [d[4], d[5]]);
  assertEquals(s.state().rng.counter, 7);
});

Deno.test("RandomThenConst: random for the first `steps` epoch ends, then const_value", () => {
  const s = createMuSchedule(RANDOM_THEN_CONST, new Rng(42, "mu"));
  const mu = perEpoch(s, 500);
  const rng = new Rng(42, "mu");
  for (let e = 0; e <= 200; e++) assertEquals(mu[e], (-1 - 1) * rng.uniform() + 1, `epoch ${e}`);
  for (let e = 201; e < 500; e++) assertEquals(mu[e], 0.8, `epoch ${e}`);
  assertEquals(s.state().rng.counter, 201, "201 draws: construction + 200 epoch ends");
  const steps300 = perEpoch(
    createMuSchedule(
      { ...RANDOM_THEN_CONST, mean_config: { ...RANDOM_THEN_CONST.mean_config, steps: 300 } },
      new Rng(42, "mu"),
    ),
    302,
  );
  assert(steps300[300] !== 0.8, `epoch 300 is still random: ${steps300[300]}`);
  assertEquals(steps300[301], 0.8);
});

Deno.test("state() / restore() continues exactly like an uninterrupted run", () => {
  const configs = [
    LINEAR_M1_TO_1,
    EXPONENTIAL_099,
    RANDOM,
    RANDOM_EVERY_ITER,
    RANDOM_THEN_CONST,
    { mean: 0.6 },
  ];
  for (const config of configs) {
    // Three reads per epoch, as three training iterations would do.
    const run = (s: MuSchedule, epochs: number) => {
      const out: number[] = [];
      for (let e = 0; e < epochs; e++) {
        for (let it = 0; it < 3; it++) out.push(s.value());
        s.epochEnd();
      }
      return out;
    };
    const whole = run(createMuSchedule(config, new Rng(42, "mu")), 600);
    const first = createMuSchedule(config, new Rng(42, "mu"));
    const head = run(first, 450);
    const saved: MuScheduleState = JSON.parse(JSON.stringify(first.state()));
    // A fresh process: same config, a new generator at counter 0.
    const resumed = createMuSchedule(config, new Rng(42, "mu"));
    resumed.restore(saved);
    assertEquals([...head, ...run(resumed, 150)], whole, String(config.mean));
  }
  const linear = createMuSchedule(LINEAR_M1_TO_1, new Rng(1));
  const random = createMuSchedule(RANDOM, new Rng(1));
  assertThrowsMatching(
    () => linear.restore(random.state()),
    /state.name is "RandomParam", expected "LinearParam"/,
  );
  assertThrowsMatching(
    () => random.restore({ ...random.state(), rng: { seed: 1, stream: "mu", counter: -1 } }),
    /state.rng/,
  );
});

Deno.test("bad μ configs name the key and the value", () => {
  const rng = new Rng(42);
  const cases: [unknown, RegExp][] = [
    [
      { mean: "CosineParam", mean_config: {} },
      /weight_config\.mean: unknown μ schedule "CosineParam"/,
    ],
    [{ mean: "LinearParam" }, /weight_config\.mean_config: LinearParam needs a mean_config/],
    [
      { mean: "LinearParam", mean_config: { begin: -1, end: 1 } },
      /mean_config\.steps: .*got undefined/,
    ],
    [{ mean: "LinearParam", mean_config: { begin: -1, end: 1, steps: 2.5 } }, /steps: .*got 2\.5/],
    [{ mean: "ExponentialParam", mean_config: { begin: 0, end: 1 } }, /mean_config\.factor/],
    [{ mean: "RandomParam", mean_config: { begin: "0", end: 1 } }, /mean_config\.begin: .*got "0"/],
    [{ mean: "RandomThenConst", mean_config: { begin: 0, end: 1, steps: 3 } }, /const_value/],
    [{ mean: Infinity }, /weight_config\.mean: .*got Infinity/],
  ];
  for (const [config, message] of cases) {
    assertThrowsMatching(() => createMuSchedule(config as MuScheduleConfig, rng), message);
  }
});

Deno.test("constant learning rate", () => {
  const s = validateLrSchedule({ kind: "constant", base: 1e-3 });
  assertEquals(lrAt(s, 0), 1e-3);
  assertEquals(lrAt(s, 123456), 1e-3);
});

Deno.test("SDCLR warm-up + cosine per iteration", () => {
  const base = 0.5, ipe = 22;
  const s = sdclrWarmupCosine({ base, epochs: 2000, iterationsPerEpoch: ipe });
  const W = 220, T = 44000;
  assertEquals(s.warmupIterations, W);
  assertEquals(s.totalIterations, T);
  // SDCLR steps its scheduler before each update: update k uses iteration k + 1.
  assertEquals(lrAt(s, 0), base * 1 / W);
  assertEquals(lrAt(s, 109), base * 110 / W);
  assertEquals(lrAt(s, W - 2), base * (W - 1) / W);
  assertEquals(lrAt(s, W - 1), base); // it = W: cos(0) = 1
  const mid = (W + T) / 2;
  assert(Math.abs(lrAt(s, mid - 1) - (1e-6 + (base - 1e-6) / 2)) < 1e-15);
  assertEquals(lrAt(s, T - 1), 1e-6); // it = T: cos(π) = −1
  for (let k = W; k < T - 1; k += 997) {
    assert(lrAt(s, k) < lrAt(s, k - 1), `decreasing at ${k}`);
    // The original's LambdaLR factor form: base·cosine_annealing(it, T, 1, 1e-6/base, W).
    const original = base * cosineAnnealing(k + 1, T, 1, 1e-6 / base, W);
    assert(Math.abs(lrAt(s, k) - original) <= 1e-15 * base, `update ${k}`);
  }
  assertThrowsMatching(
    () => lrAt(s, T),
    /update 44000 is past the schedule's totalIterations 44000/,
  );
  assertThrowsMatching(() => lrAt(s, -1), /update must be an integer ≥ 0, got -1/);
});

Deno.test("step decay of the linear probe (MultiStepLR stepped at each 1-based epoch)", () => {
  const s = validateLrSchedule({
    kind: "step",
    base: 30,
    gamma: 0.1,
    milestones: [10, 20],
    iterationsPerEpoch: 352,
  });
  const atEpoch = (e: number) => lrAt(s, e * 352 + 17); // 0-based epoch e
  assertEquals(atEpoch(0), 30);
  assertEquals(atEpoch(8), 30);
  assert(Math.abs(atEpoch(9) - 3) < 1e-14, `${atEpoch(9)}`); // 10th epoch
  assert(Math.abs(atEpoch(18) - 3) < 1e-14);
  assert(Math.abs(atEpoch(19) - 0.3) < 1e-15); // 20th epoch
  assert(Math.abs(atEpoch(29) - 0.3) < 1e-15);
  assertEquals(lrAt(s, 9 * 352 - 1), 30);
  assert(Math.abs(lrAt(s, 9 * 352) - 3) < 1e-14);
});

Deno.test("a run shorter than its warm-up stays in the linear warm-up", () => {
  // `--epochs 2` of an SDCLR config (10 warm-up epochs): W = 10·88, T = 2·88.
  const s = sdclrWarmupCosine({ base: 0.5, epochs: 2, iterationsPerEpoch: 88, warmupEpochs: 10 });
  assertEquals(lrAt(s, 0), 0.5 / 880);
  assert(Math.abs(lrAt(s, 175) - (0.5 * 176) / 880) < 1e-15);
  const equal = sdclrWarmupCosine({ base: 1, epochs: 10, iterationsPerEpoch: 1, warmupEpochs: 10 });
  assertEquals(lrAt(equal, 9), 1, "T = W: the last step reaches the base rate, no 0/0");
});

Deno.test("bad learning-rate schedules name the key and the value", () => {
  const cases: [unknown, RegExp][] = [
    [{ kind: "linear", base: 1 }, /lr_schedule\.kind: unknown learning-rate schedule "linear"/],
    [{ kind: "constant", base: 0 }, /lr_schedule\.base: .*got 0/],
    [
      { kind: "warmup_cosine", base: 1, warmupIterations: 1.5, totalIterations: 10, minLr: 0 },
      /warmupIterations: .*got 1\.5/,
    ],
    [
      { kind: "warmup_cosine", base: 1, warmupIterations: 1, totalIterations: 10, minLr: -1 },
      /minLr: .*got -1/,
    ],
    [
      { kind: "step", base: 1, gamma: 0.1, milestones: [20, 10], iterationsPerEpoch: 5 },
      /milestones: must be strictly increasing/,
    ],
    [
      { kind: "step", base: 1, gamma: 0, milestones: [10], iterationsPerEpoch: 5 },
      /gamma: .*got 0/,
    ],
    [
      { kind: "step", base: 1, gamma: 0.1, milestones: [10], iterationsPerEpoch: 0 },
      /iterationsPerEpoch: .*got 0/,
    ],
  ];
  for (const [config, message] of cases) {
    assertThrowsMatching(() => validateLrSchedule(config as never), message);
  }
  assertThrowsMatching(
    () => sdclrWarmupCosine({ base: 0.5, epochs: 0, iterationsPerEpoch: 10 }),
    /sdclrWarmupCosine\.epochs: .*got 0/,
  );
});
