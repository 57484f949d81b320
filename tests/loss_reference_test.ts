import { assert, assertClose, assertEquals, assertThrowsMessage, maxAbs } from "./assert.ts";
import {
  ntXentReference,
  ntXentWithLogWeights,
  pairInterleaved,
  unpairInterleaved,
  weightedNegativeLogWeights,
  type WeightedNtXentOptions,
  weightedNtXentReference,
} from "../src/losses/mod.ts";
import { Rng } from "../src/util/rng.ts";

function randomMatrix(rng: Rng, rows: number, dim: number, scale = 1): Float64Array {
  const z = new Float64Array(rows * dim);
  for (let n = 0; n < z.length; n++) z[n] = scale * rng.normal();
  return z;
}

function assertAllFinite(values: ArrayLike<number>, what: string) {
  for (let n = 0; n < values.length; n++) {
    assert(Number.isFinite(values[n]), `${what}: element ${n} is ${values[n]}`);
  }
}

/** Central differences of f at z, step h. */
function finiteDifferences(f: (z: Float64Array) => number, z: Float64Array, h: number) {
  const out = new Float64Array(z.length);
  for (let n = 0; n < z.length; n++) {
    const plus = z.slice();
    const minus = z.slice();
    plus[n] += h;
    minus[n] -= h;
    out[n] = (f(plus) - f(minus)) / (2 * h);
  }
  return out;
}

// Four unit rows in the plane: r0 = (1,0), r1 = (1/2, √3/2), r2 = (−1,0), r3 = (0,1).
const R3 = Math.sqrt(3) / 2;
const HAND_Z = Float64Array.from([1, 0, 0.5, R3, -1, 0, 0, 1]);
const C2 = (1 / (1 + 1e-10)) ** 2; // s = c²·cos for unit rows, c = 1/(1 + 1e-10)
const HAND_COS: number[][] = [
  [1, 0.5, -1, 0],
  [0.5, 1, -0.5, R3],
  [-1, -0.5, 1, 0],
  [0, R3, 0, 1],
];

/** The N = 2 formula written out with raw exponentials (safe at τ = 0.5). */
function handLoss(tau: number, weighted?: Omit<WeightedNtXentOptions, "temperature">): number {
  let total = 0;
  for (let i = 0; i < 4; i++) {
    const j = i ^ 1;
    const negatives = [0, 1, 2, 3].filter((k) => k !== i && k !== j);
    const s = (k: number) => C2 * HAND_COS[i][k];
    let weights = [1, 1];
    let rho = 1;
    if (weighted) {
      const { sigma, mean, lowerBound, upperBound } = weighted;
      weights = negatives.map((k) =>
        Math.exp(-((s(k) - mean) ** 2) / sigma ** 2) *
        (s(k) < lowerBound || s(k) > upperBound ? 1e-3 : 1)
      );
      if (weighted.normalization === "negatives_constant_total_weight") {
        rho = (2 + 1e-10) / (weights[0] + weights[1] + 1e-10);
      }
    }
    const positive = Math.exp(s(j) / tau);
    const denominator = positive +
      rho * negatives.reduce((acc, k, n) => acc + weights[n] * Math.exp(s(k) / tau), 0);
    total += -Math.log(positive / denominator);
  }
  return total / 4;
}

const HAND_WEIGHT = { sigma: 0.5, mean: 0.6, lowerBound: -0.9, upperBound: 0.9 };

Deno.test("NT-Xent on a hand-computed N = 2 case", () => {
  const { loss } = ntXentReference(HAND_Z, 4, 2, { temperature: 0.5 });
  assertClose(loss, handLoss(0.5), 1e-14, 0, "vs formula");
  assertClose(loss, 0.9898355744257994, 1e-14, 0, "vs value computed in Python");
});

Deno.test("WeightedNTXent on a hand-computed N = 2 case (bound active on s = −1)", () => {
  for (
    const [normalization, expected] of [
      ["negatives_constant_total_weight", 1.261531041805903],
      ["None", 0.6833681153746383],
    ] as const
  ) {
    const opts = { temperature: 0.5, ...HAND_WEIGHT, normalization };
    const { loss } = weightedNtXentReference(HAND_Z, 4, 2, opts);
    assertClose(loss, handLoss(0.5, opts), 1e-14, 0, `${normalization} vs formula`);
    assertClose(loss, expected, 1e-14, 0, `${normalization} vs value computed in Python`);
  }
});

Deno.test("gradients match central finite differences (weights held constant)", () => {
  const rng = new Rng(7, "loss-fd");
  const rows = 6, dim = 4;
  for (const temperature of [0.1, 0.5]) {
    const z = randomMatrix(rng, rows, dim);
    const nt = ntXentReference(z, rows, dim, { temperature });
    const ntFd = finiteDifferences(
      (x) => ntXentReference(x, rows, dim, { temperature }).loss,
      z,
      1e-6,
    );
    const ntScale = maxAbs(nt.grad);
    for (let n = 0; n < z.length; n++) {
      assertClose(
        nt.grad[n],
        ntFd[n],
        0,
        1e-7 * (1 + ntScale),
        `NT-Xent τ=${temperature} dz[${n}]`,
      );
    }

    for (const normalization of ["negatives_constant_total_weight", "None"] as const) {
      const opts: WeightedNtXentOptions = {
        temperature,
        sigma: 0.25,
        mean: 0.3,
        lowerBound: -0.5,
        upperBound: 0.9,
        normalization,
      };
      const weighted = weightedNtXentReference(z, rows, dim, opts);
      const frozen = weightedNegativeLogWeights(z, rows, dim, opts);
      const fd = finiteDifferences(
        (x) => ntXentWithLogWeights(x, rows, dim, temperature, frozen).loss,
        z,
        1e-6,
      );
      const scale = maxAbs(weighted.grad);
      for (let n = 0; n < z.length; n++) {
        assertClose(weighted.grad[n], fd[n], 0, 1e-7 * (1 + scale), `${normalization} dz[${n}]`);
      }
      // Letting the weights follow z gives a different derivative: the test above
      // would catch a gradient that flowed through α or ρ.
      const unfrozenFd = finiteDifferences(
        (x) => weightedNtXentReference(x, rows, dim, opts).loss,
        z,
        1e-6,
      );
      let largest = 0;
      for (let n = 0; n < z.length; n++) {
        largest = Math.max(largest, Math.abs(unfrozenFd[n] - weighted.grad[n]));
      }
      assert(largest > 1e-3, `weights should matter to the full derivative (${largest})`);
    }
  }
});

Deno.test("no NaN or Infinity for σ = 0.25, small τ, collapsed, zero and huge rows", () => {
  const rng = new Rng(11, "loss-nan");
  const rows = 8, dim = 5;
  const collapsedRow = randomMatrix(rng, 1, dim);
  const inputs: Record<string, Float64Array> = {
    random: randomMatrix(rng, rows, dim),
    collapsed: Float64Array.from({ length: rows * dim }, (_, n) => collapsedRow[n % dim]),
    "collapsed huge": Float64Array.from(
      { length: rows * dim },
      (_, n) => 1e300 * collapsedRow[n % dim],
    ),
    "huge rows": randomMatrix(rng, rows, dim, 1e200),
    "tiny rows": randomMatrix(rng, rows, dim, 1e-200),
    zeros: new Float64Array(rows * dim),
    // Every positive pair on opposite poles: the worst case for the loss.
    "swapped pairs": Float64Array.from(
      { length: rows * dim },
      (_, n) => (Math.floor(n / dim) % 2 === 0 ? 1 : -1) * collapsedRow[n % dim],
    ),
  };
  for (const [name, z] of Object.entries(inputs)) {
    for (const temperature of [0.05, 0.1, 1e-4]) {
      const nt = ntXentReference(z, rows, dim, { temperature });
      assert(Number.isFinite(nt.loss) && nt.loss >= 0, `${name} τ=${temperature}: ${nt.loss}`);
      assertAllFinite(nt.grad, `${name} NT-Xent τ=${temperature} grad`);
      for (const mean of [-1, 0.6, 1]) {
        for (const normalization of ["negatives_constant_total_weight", "None"] as const) {
          for (const [lowerBound, upperBound] of [[-1, 1], [-0.5, 0.5]]) {
            const opts = { temperature, sigma: 0.25, mean, lowerBound, upperBound, normalization };
            const w = weightedNtXentReference(z, rows, dim, opts);
            const what = `${name} ${JSON.stringify(opts)}`;
            assert(Number.isFinite(w.loss) && w.loss >= 0, `${what}: loss ${w.loss}`);
            assertAllFinite(w.grad, `${what} grad`);
          }
        }
      }
    }
  }
  // Collapsed rows: every similarity equal, so NT-Xent is log(2N − 1) exactly.
  assertClose(
    ntXentReference(inputs.collapsed, rows, dim, { temperature: 0.05 }).loss,
    Math.log(rows - 1),
    1e-12,
    0,
    "collapsed loss",
  );
  // Swapped pairs: ℓ = log(1 + 3 + 3e^{2/τ}) ≈ 2/τ + log 3, finite although e^{2/τ} is not.
  const far = ntXentReference(inputs["swapped pairs"], rows, dim, { temperature: 1e-4 }).loss;
  assertClose(far, 2 / 1e-4 + Math.log(3), 1e-9, 0, "swapped pairs loss");
});

Deno.test("loss is invariant to row scale, also for norms near the float64 limit", () => {
  const rng = new Rng(3, "loss-scale");
  const rows = 6, dim = 3;
  const z = randomMatrix(rng, rows, dim);
  const big = z.map((x) => x * 1e300);
  const opts: WeightedNtXentOptions = {
    temperature: 0.1,
    sigma: 0.5,
    mean: 0.2,
    lowerBound: -1,
    upperBound: 1,
    normalization: "negatives_constant_total_weight",
  };
  assertClose(
    weightedNtXentReference(big, rows, dim, opts).loss,
    weightedNtXentReference(z, rows, dim, opts).loss,
    1e-8,
    0,
    "scaled loss",
  );
  // d(loss)/dz scales as 1/‖z‖.
  const g = ntXentReference(z, rows, dim, { temperature: 0.1 }).grad;
  const gBig = ntXentReference(big, rows, dim, { temperature: 0.1 }).grad;
  for (let n = 0; n < g.length; n++) assertClose(gBig[n] * 1e300, g[n], 1e-8, 1e-12, `dz[${n}]`);
});

Deno.test("None and constant-total-weight agree with NT-Xent when every weight is 1", () => {
  const rng = new Rng(5, "loss-unit-weights");
  for (const rows of [4, 6, 16]) {
    const dim = 4;
    const z = randomMatrix(rng, rows, dim);
    const nt = ntXentReference(z, rows, dim, { temperature: 0.2 });
    for (const normalization of ["negatives_constant_total_weight", "None"] as const) {
      const w = weightedNtXentReference(z, rows, dim, {
        temperature: 0.2,
        sigma: 1e6,
        mean: 0,
        lowerBound: -2,
        upperBound: 2,
        normalization,
      });
      assertClose(w.loss, nt.loss, 1e-10, 0, `${normalization} rows=${rows} loss`);
      for (let n = 0; n < z.length; n++) {
        assertClose(w.grad[n], nt.grad[n], 1e-8, 1e-12, `${normalization} rows=${rows} dz[${n}]`);
      }
    }
  }
});

interface GoldenCase {
  name: string;
  loss: "ntxent" | "weighted";
  rows: number;
  dim: number;
  options: WeightedNtXentOptions;
  z: number[];
  loss_value: number | null;
  grad: number[] | null;
  original_finite: boolean;
  original_finite_float32: boolean;
}

Deno.test("agrees with the torch float64 golden values of the original formulas", async () => {
  const text = await Deno.readTextFile(new URL("./fixtures/loss_golden.json", import.meta.url));
  const cases: GoldenCase[] = JSON.parse(text).cases;
  assert(cases.length >= 30, `expected the full fixture, got ${cases.length} cases`);
  let compared = 0;
  for (const c of cases) {
    const z = Float64Array.from(c.z);
    const ours = c.loss === "ntxent"
      ? ntXentReference(z, c.rows, c.dim, { temperature: c.options.temperature })
      : weightedNtXentReference(z, c.rows, c.dim, c.options);
    assert(Number.isFinite(ours.loss), `${c.name}: loss ${ours.loss}`);
    assertAllFinite(ours.grad, `${c.name} grad`);
    if (c.loss_value === null || c.grad === null) continue;
    compared++;
    // The golden values use raw exponentials: ~1e-16 absolute noise in the loss.
    assertClose(ours.loss, c.loss_value, 1e-6, 1e-12, `${c.name} loss`);
    for (let r = 0; r < c.rows; r++) {
      let norm = 0;
      for (let k = 0; k < c.dim; k++) norm = Math.hypot(norm, z[r * c.dim + k]);
      // Rounding floor of a gradient row: 1e-10 of its natural scale 1/(τ(‖z‖ + ε)).
      const floor = 1e-10 / (c.options.temperature * (norm + 1e-10));
      for (let k = 0; k < c.dim; k++) {
        const n = r * c.dim + k;
        assertClose(ours.grad[n], c.grad[n], 1e-6, floor, `${c.name} dz[${r},${k}]`);
      }
    }
  }
  assert(compared >= 30, `compared ${compared} cases`);
  assert(
    cases.some((c) => c.loss_value === null),
    "fixture lacks a case where raw exps overflow",
  );
});

Deno.test("SDCLR pairing: interleaving [branch 1; branch 2] gives SDCLR's NT-Xent", () => {
  const rng = new Rng(9, "loss-sdclr");
  const n = 5, dim = 4, t = 0.2;
  const z1 = randomMatrix(rng, n, dim);
  const z2 = randomMatrix(rng, n, dim);
  // SDCLR's nt_xent: rows [z1; z2], the positive of row i is row i ± N.
  const sdclr = (a: Float64Array, b: Float64Array) => {
    const all = [...Array(2 * n)].map((_, i) => {
      const row = (i < n ? a : b).subarray((i % n) * dim, (i % n + 1) * dim);
      const norm = Math.hypot(...row);
      return Array.from(row, (x) => x / (norm + 1e-10));
    });
    const sim = (i: number, k: number) => all[i].reduce((acc, x, c) => acc + x * all[k][c], 0);
    let total = 0;
    for (let i = 0; i < 2 * n; i++) {
      const p = (i + n) % (2 * n);
      const pos = Math.exp(sim(i, p) / t);
      let neg = 0;
      for (let k = 0; k < 2 * n; k++) if (k !== i && k !== p) neg += Math.exp(sim(i, k) / t);
      total += -Math.log(pos / (pos + neg));
    }
    return total / (2 * n);
  };
  const ours = ntXentReference(pairInterleaved(z1, z2, n, dim), 2 * n, dim, { temperature: t });
  assertClose(ours.loss, sdclr(z1, z2), 1e-13, 0, "loss");

  const { first, second } = unpairInterleaved(ours.grad, n, dim);
  const fd1 = finiteDifferences((x) => sdclr(x, z2), z1, 1e-6);
  const fd2 = finiteDifferences((x) => sdclr(z1, x), z2, 1e-6);
  for (let k = 0; k < n * dim; k++) {
    assertClose(first[k], fd1[k], 0, 1e-7, `branch-1 dz[${k}]`);
    assertClose(second[k], fd2[k], 0, 1e-7, `branch-2 dz[${k}]`);
  }
  const back = unpairInterleaved(pairInterleaved(z1, z2, n, dim), n, dim);
  assertEquals(Array.from(back.first), Array.from(z1));
  assertEquals(Array.from(back.second), Array.from(z2));
  assertEquals(
    Array.from(pairInterleaved(Float64Array.of(1, 2, 3, 4), Float64Array.of(5, 6, 7, 8), 2, 2)),
    [1, 2, 5, 6, 3, 4, 7, 8],
  );
});

Deno.test("bad options and shapes are rejected with the key and the value", async () => {
  const z = HAND_Z;
  const good: WeightedNtXentOptions = {
    temperature: 0.1,
    sigma: 0.5,
    mean: 0,
    lowerBound: -1,
    upperBound: 1,
    normalization: "None",
  };
  const bad: [Partial<WeightedNtXentOptions> | Record<string, unknown>, string[]][] = [
    [{ sigma: 0 }, ["sigma", "got 0"]],
    [{ sigma: -1 }, ["sigma", "got -1"]],
    [{ temperature: 0 }, ["temperature", "got 0"]],
    [{ temperature: -0.1 }, ["temperature", "got -0.1"]],
    [{ temperature: NaN }, ["temperature", "got NaN"]],
    [{ lowerBound: 1, upperBound: 1 }, [
      "lowerBound must be < upperBound",
      "lowerBound 1",
      "upperBound 1",
    ]],
    [{ lowerBound: 0.5, upperBound: -0.5 }, ["lowerBound 0.5", "upperBound -0.5"]],
    [{ normalization: "none" }, ["normalization", 'got "none"']],
    [{ normalization: "constant_total_weight" }, ["normalization", '"constant_total_weight"']],
  ];
  for (const [change, fragments] of bad) {
    const opts = { ...good, ...change } as WeightedNtXentOptions;
    await assertThrowsMessage(
      () => weightedNtXentReference(z, 4, 2, opts),
      "weightedNtXentReference",
      ...fragments,
    );
  }
  await assertThrowsMessage(
    () => ntXentReference(z, 4, 2, { temperature: 0 }),
    "temperature",
    "got 0",
  );
  await assertThrowsMessage(
    () => ntXentReference(z, 3, 2, { temperature: 1 }),
    "rows must be even",
    "got 3",
  );
  await assertThrowsMessage(
    () => ntXentReference(z, 4, 3, { temperature: 1 }),
    "z has 8 values, expected",
  );
  await assertThrowsMessage(
    () => ntXentReference(Float64Array.of(1, 0, 0, NaN), 2, 2, { temperature: 1 }),
    "z[3] is NaN",
  );
  await assertThrowsMessage(
    () => pairInterleaved(new Float64Array(4), new Float64Array(6), 2, 2),
    "second has 6 values",
  );
});
