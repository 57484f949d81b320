/** The weighted kNN monitor. */
import { assertClose, assertEquals, assertThrowsMessage } from "./assert.ts";
import { type FeatureSet, knnEval, knnVote, l2NormalizeRows } from "../src/eval/mod.ts";
import { Rng } from "../src/util/rng.ts";

function featureSet(rows: number[][], labels: number[], classCount: number): FeatureSet {
  return {
    features: Float32Array.from(rows.flat()),
    labels: Int32Array.from(labels),
    count: rows.length,
    dim: rows[0].length,
    classCount,
  };
}

// Bank on the unit circle (one vector scaled by 3: cosine must ignore the norm).
const bank = featureSet([[3, 0], [0.8, 0.6], [0.6, 0.8], [0, 1]], [0, 1, 1, 2], 3);

Deno.test("knn: hand-computed votes, weighted by exp(sim / T)", async () => {
  // Query (1, 0): similarities 1, 0.8, 0.6, 0; k = 3 keeps classes 0, 1, 1.
  // T = 0.1: class 0 scores e^10 = 22026 > class 1 e^8 + e^6 = 3384, so one close vote beats two.
  // T = 1:   class 0 scores e^1 = 2.718 < class 1 e^0.8 + e^0.6 = 4.048.
  const query = featureSet([[2, 0]], [0], 3);
  const sharp = await knnEval(bank, query, { k: 3, temperature: 0.1 });
  assertEquals(sharp.accuracy, 1);
  assertEquals(sharp.k, 3);
  const soft = await knnEval(bank, query, { k: 3, temperature: 1 });
  assertEquals(soft.accuracy, 0);
  assertEquals(knnVote([1, 0.8, 0.6], [0, 1, 1], 3, 0.1), 0);
  assertEquals(knnVote([1, 0.8, 0.6], [0, 1, 1], 3, 1), 1);
  // k = 1 on the same query: only the nearest neighbour (class 0) votes.
  assertEquals(
    (await knnEval(bank, featureSet([[2, 0]], [1], 3), { k: 1, temperature: 1 })).accuracy,
    0,
  );
  // Query (0, 1) with k = 200 (capped at the 4 bank rows): class 2 at sim 1 wins at T = 0.1
  // (e^10 vs e^6 + e^8 + e^0 for classes 1 and 0).
  const up = await knnEval(bank, featureSet([[0, 5]], [2], 3), { k: 200, temperature: 0.1 });
  assertEquals(up.k, 4);
  assertEquals(up.accuracy, 1);
  assertEquals(up.perClassAccuracy.map((a) => Number.isNaN(a) ? null : a), [null, null, 1]);
});

Deno.test("knn: separated Gaussian blobs are classified perfectly with k = 200, T = 0.1", async () => {
  const rng = new Rng(7, "blobs");
  const classes = 4;
  const dim = 16;
  const centers = Array.from(
    { length: classes },
    () => Array.from({ length: dim }, () => rng.normal()),
  );
  const blobs = (perClass: number) => {
    const rows: number[][] = [];
    const labels: number[] = [];
    for (let i = 0; i < perClass * classes; i++) {
      const k = i % classes;
      rows.push(centers[k].map((c) => 3 * c + 0.3 * rng.normal()));
      labels.push(k);
    }
    return featureSet(rows, labels, classes);
  };
  const result = await knnEval(blobs(80), blobs(50), { k: 200, temperature: 0.1, chunkSize: 64 });
  assertEquals(result.k, 200);
  assertEquals(result.accuracy, 1);
  assertEquals(result.perClassAccuracy, [1, 1, 1, 1]);
});

Deno.test("knn: rows are L2-normalized as F.normalize, and bad input is named", async () => {
  const unit = l2NormalizeRows(Float32Array.of(3, 4, 0, 0), 2);
  assertClose(unit[0], 0.6, 1e-7);
  assertClose(unit[1], 0.8, 1e-7);
  assertEquals(Array.from(unit.subarray(2)), [0, 0]);
  await assertThrowsMessage(
    () => knnEval(bank, featureSet([[1, 0, 0]], [0], 3), { k: 3, temperature: 0.1 }),
    "2-d",
    "3-d",
  );
  await assertThrowsMessage(
    () => knnEval(bank, featureSet([[1, 0]], [0], 3), { k: 0, temperature: 0.1 }),
    "evaluation.knn.k",
  );
  await assertThrowsMessage(
    () => knnEval(bank, featureSet([[1, 0]], [5], 3), { k: 3, temperature: 0.1 }),
    "knn query features",
    "label 5",
  );
});
