import { assert, assertAllClose, assertClose, assertThrowsMessage } from "./assert.ts";
import { gradients } from "../src/autodiff/mod.ts";
import type { DType } from "../src/onnx/dtype.ts";
import { Graph } from "../src/onnx/mod.ts";
import {
  ntXentGraph,
  ntXentReference,
  type Pairing,
  pairInterleaved,
  weightedNtXentGraph,
  weightedNtXentReference,
  type WeightNormalization,
} from "../src/losses/mod.ts";
import { Session } from "../src/runtime/session.ts";
import { Rng } from "../src/util/rng.ts";

interface Case {
  n: number;
  dim: number;
  temperature: number;
  weighted?: {
    sigma: number;
    mean: number;
    lowerBound: number;
    upperBound: number;
    normalization: WeightNormalization;
  };
}

/** Loss and gradient of a graph loss on z, via ORT. */
async function graphLoss(
  z: Float64Array,
  c: Case,
  dtype: DType,
  pairing: Pairing = "interleaved",
): Promise<{ loss: number; grad: number[] }> {
  const rows = 2 * c.n;
  const graph = new Graph("loss");
  const zt = graph.input("z", dtype, [rows, c.dim]);
  const mu = graph.input("mu", dtype, []);
  const { loss } = c.weighted
    ? weightedNtXentGraph(zt, mu, { temperature: c.temperature, pairing, ...c.weighted })
    : ntXentGraph(zt, { temperature: c.temperature, pairing });
  graph.output(loss, "loss");
  graph.output(gradients(loss, [zt]).get(zt)!, "z_grad");
  const session = await Session.create(graph);
  const data = dtype === "float64" ? Float64Array.from(z) : Float32Array.from(z);
  const muValue = c.weighted?.mean ?? 0;
  const out = await session.run({
    z: { dtype, shape: [rows, c.dim], data },
    mu: {
      dtype,
      shape: [],
      data: dtype === "float64" ? Float64Array.of(muValue) : Float32Array.of(muValue),
    },
  });
  await session.release();
  return { loss: Number(out.loss.data[0]), grad: Array.from(out.z_grad.data as Float64Array) };
}

function reference(z: Float64Array, c: Case) {
  const rows = 2 * c.n;
  return c.weighted
    ? weightedNtXentReference(z, rows, c.dim, { temperature: c.temperature, ...c.weighted })
    : ntXentReference(z, rows, c.dim, { temperature: c.temperature });
}

function randomZ(rng: Rng, rows: number, dim: number): Float64Array {
  return Float64Array.from({ length: rows * dim }, () => rng.normal());
}

function cases(): Case[] {
  const out: Case[] = [];
  for (const n of [2, 3, 64]) {
    for (const temperature of [0.05, 0.1, 0.5]) {
      out.push({ n, dim: 8, temperature });
      for (const sigma of [0.25, 0.5, 1]) {
        for (const mean of [-1, 0, 0.6, 1]) {
          if (n === 64 && !(sigma === 0.5 && (mean === 0.6 || mean === -1))) continue;
          for (const bounds of [[-1.1, 1.1], [-0.2, 0.4]]) {
            for (const normalization of ["negatives_constant_total_weight", "None"] as const) {
              out.push({
                n,
                dim: 8,
                temperature,
                weighted: {
                  sigma,
                  mean,
                  lowerBound: bounds[0],
                  upperBound: bounds[1],
                  normalization,
                },
              });
            }
          }
        }
      }
    }
  }
  return out;
}

async function compareAll(dtype: DType, rtol: number) {
  const rng = new Rng(7, `loss-graph-${dtype}`);
  let worst = 0;
  let count = 0;
  for (const c of cases()) {
    const z = randomZ(rng, 2 * c.n, c.dim);
    const ref = reference(z, c);
    const got = await graphLoss(z, c, dtype);
    const label = JSON.stringify(c);
    assertClose(got.loss, ref.loss, rtol, 0, `loss ${label}`);
    const scale = Math.max(...Array.from(ref.grad, Math.abs));
    assertAllClose(got.grad, Array.from(ref.grad), rtol, rtol * scale, `grad ${label}`);
    worst = Math.max(worst, Math.abs(got.loss - ref.loss) / Math.abs(ref.loss));
    count++;
  }
  assert(count > 150, `ran ${count} cases`);
  return worst;
}

Deno.test("graph losses equal the float64 references (float64 graphs, 1e-6)", async () => {
  await compareAll("float64", 1e-6);
});

Deno.test("graph losses equal the references (float32 graphs, 1e-5)", async () => {
  await compareAll("float32", 1e-5);
});

Deno.test("halves pairing (SDCLR branches) equals interleaved pairing on re-ordered rows", async () => {
  const rng = new Rng(3, "halves");
  const n = 5;
  const dim = 6;
  const z1 = randomZ(rng, n, dim);
  const z2 = randomZ(rng, n, dim);
  const stacked = new Float64Array([...z1, ...z2]);
  const interleaved = pairInterleaved(z1, z2, n, dim);
  for (
    const c of [
      { n, dim, temperature: 0.2 },
      {
        n,
        dim,
        temperature: 0.2,
        weighted: {
          sigma: 0.5,
          mean: 0.3,
          lowerBound: -1,
          upperBound: 1,
          normalization: "None" as const,
        },
      },
    ]
  ) {
    const a = await graphLoss(stacked, c, "float64", "halves");
    const b = reference(interleaved, c);
    assertClose(a.loss, b.loss, 1e-9);
  }
});

Deno.test("graph losses stay finite where raw exponentials overflow", async () => {
  const rows = 8;
  const dim = 4;
  const collapsed = Float64Array.from({ length: rows * dim }, (_, i) => (i % dim) + 1);
  const big = Float64Array.from({ length: rows * dim }, (_, i) => 1e20 * Math.sin(i + 1));
  for (const z of [collapsed, big]) {
    for (const temperature of [0.05, 0.1]) {
      const c: Case = {
        n: rows / 2,
        dim,
        temperature,
        weighted: {
          sigma: 0.25,
          mean: -1,
          lowerBound: -0.5,
          upperBound: 0.5,
          normalization: "negatives_constant_total_weight",
        },
      };
      const got = await graphLoss(z, c, "float32");
      assert(Number.isFinite(got.loss), `loss ${got.loss}`);
      assert(got.grad.every(Number.isFinite), "gradient finite");
      assertClose(got.loss, reference(z, c).loss, 1e-5);
    }
  }
});

Deno.test("bad loss options name the key and value", async () => {
  const graph = new Graph("bad");
  const z = graph.input("z", "float32", [8, 4]);
  const mu = graph.input("mu", "float32", []);
  const base = {
    temperature: 0.1,
    sigma: 0.5,
    lowerBound: -1,
    upperBound: 1,
    normalization: "None" as const,
  };
  await assertThrowsMessage(() => ntXentGraph(z, { temperature: 0 }), "temperature", "0");
  await assertThrowsMessage(
    () => weightedNtXentGraph(z, mu, { ...base, sigma: -1 }),
    "sigma",
    "-1",
  );
  await assertThrowsMessage(
    () => weightedNtXentGraph(z, mu, { ...base, lowerBound: 1 }),
    "lower 1",
    "upper 1",
  );
  await assertThrowsMessage(
    () => weightedNtXentGraph(z, mu, { ...base, normalization: "l2" as never }),
    "weight_normalization",
    "l2",
  );
});
