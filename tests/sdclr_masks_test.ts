/**
 * SDCLR's pruning masks (SPEC §B: one magnitude threshold over all encoder
 * conv weights, then random pruning of kept weights) and the per-epoch
 * diagnostics (mask sparsity, the rarest classes' share of the loss).
 */
import { assert, assertClose, assertEquals, assertThrowsMessage } from "./assert.ts";
import {
  computeMasks,
  encoderConvWeights,
  epochDiagnostics,
  formatDiagnostics,
  magnitudeThreshold,
  maskFeeds,
  maskSparsity,
  RareClassLossShare,
  totalSparsity,
} from "../src/methods/sdclr/mod.ts";
import { buildContrastiveGraph } from "../src/methods/contrastive.ts";
import { initParams } from "../src/nn/mod.ts";
import { Rng } from "../src/util/rng.ts";

/** Layers of the given sizes holding ±(distinct magnitudes) in random order: no ties. */
function distinctWeights(sizes: number[], rng: Rng): Map<string, Float32Array> {
  const total = sizes.reduce((a, b) => a + b, 0);
  const order = rng.permutation(total);
  const weights = new Map<string, Float32Array>();
  let k = 0;
  sizes.forEach((size, layer) => {
    const w = new Float32Array(size);
    for (let i = 0; i < size; i++, k++) {
      w[i] = ((order[k] + 1) / total) * (rng.bernoulli(0.5) ? 1 : -1) * (layer + 1) * 0.1;
    }
    weights.set(`encoder.layer${layer}.conv.weight`, w);
  });
  return weights;
}

/** Ascending |w| over all layers, in float32 (the rule's sort). */
function sortedMagnitudes(weights: Map<string, Float32Array>): Float32Array {
  const all = new Float32Array([...weights.values()].reduce((n, w) => n + w.length, 0));
  let k = 0;
  for (const w of weights.values()) for (const v of w) all[k++] = Math.abs(v);
  return all.sort();
}

function countPruned(masks: Map<string, Float32Array>): number {
  let n = 0;
  for (const m of masks.values()) for (const v of m) if (v === 0) n++;
  return n;
}

Deno.test("masks prune prune_percent of all conv weights together, within one weight", () => {
  const rng = new Rng(1, "masks");
  const sizes = [3 * 4 * 9, 4 * 4 * 9, 8 * 4 * 9, 8 * 4, 16 * 8 * 9];
  const weights = distinctWeights(sizes, rng);
  const n = sizes.reduce((a, b) => a + b, 0);
  for (const p of [0, 0.1, 0.3, 0.5, 0.9, 0.99]) {
    const masks = computeMasks(weights, { prunePercent: p });
    const pruned = countPruned(masks);
    assert(Math.abs(pruned - p * n) <= 1, `p ${p}: pruned ${pruned} of ${n}`);
    assertEquals(pruned, Math.min(Math.ceil(p * n), n - 1), `p ${p}: the rule's count`);
    // One global threshold: every kept |w| is at least every pruned |w|, across layers.
    const sorted = sortedMagnitudes(weights);
    const threshold = sorted[Math.min(Math.ceil(p * n), n - 1)];
    assertEquals(magnitudeThreshold(weights, p).threshold, threshold, `p ${p}: threshold`);
    for (const [name, w] of weights) {
      const m = masks.get(name)!;
      for (let i = 0; i < w.length; i++) {
        assertEquals(m[i], Math.abs(w[i]) >= threshold ? 1 : 0, `${name}[${i}] at p ${p}`);
      }
    }
  }
  // Global, not per layer: layer 0 holds the smallest magnitudes (scale 0.1), the last the largest.
  const layers = maskSparsity(computeMasks(weights, { prunePercent: 0.5 }));
  const values = Object.values(layers);
  assert(values[0] > 0.9 && values[values.length - 1] < 0.45, `per-layer sparsity ${values}`);
  assertClose(totalSparsity(computeMasks(weights, { prunePercent: 0.5 })), 0.5, 0, 1 / n);
});

Deno.test("ties at the threshold are kept; the index is min(ceil(p·n), n − 1) on doubles", () => {
  // |w| ascending: 0, 0, 1, 1, 1, 1 (±), 2, 3, 3, 3.
  const weights = new Map([
    ["a", Float32Array.of(0, -1, 3, 1)],
    ["b", Float32Array.of(-0, 2, -3, 3, -1, 1)],
  ]);
  // p 0.3: index ceil(3) = 3 → |w| = 1 → keep every |w| ≥ 1, so only the two zeros go (2 < 3).
  let masks = computeMasks(weights, { prunePercent: 0.3 });
  assertEquals([...masks.get("a")!], [0, 1, 1, 1]);
  assertEquals([...masks.get("b")!], [0, 1, 1, 1, 1, 1]);
  // p 0.65: index ceil(6.5) = 7 → |w| = 3: zeros, ones and the 2 go (7 pruned).
  masks = computeMasks(weights, { prunePercent: 0.65 });
  assertEquals([...masks.get("a")!, ...masks.get("b")!], [0, 0, 1, 0, 0, 0, 1, 1, 0, 0]);
  // p 0.95: index min(10, 9) = 9 → the largest |w| = 3 is kept with its ties.
  masks = computeMasks(weights, { prunePercent: 0.95 });
  assertEquals(countPruned(masks), 7);
  // p 0: index 0 → the smallest |w| (0) → nothing pruned, zeros included.
  assertEquals(countPruned(computeMasks(weights, { prunePercent: 0 })), 0);
  // The product is taken in doubles as in the original's numpy code: 0.07 · 100 =
  // 7.000000000000001, so ceil gives 8 (not 7) weights pruned.
  const hundred = distinctWeights([100], new Rng(3, "ties"));
  assertEquals(0.07 * 100 > 7, true);
  assertEquals(countPruned(computeMasks(hundred, { prunePercent: 0.07 })), 8);
  assertEquals(magnitudeThreshold(hundred, 0.07).index, 8);
});

Deno.test("masks follow the weights: a change of weights between epochs changes the masks", () => {
  const rng = new Rng(5, "epochs");
  const weights = new Map<string, Float32Array>();
  for (
    const [name, size] of [["encoder.conv1.weight", 432], [
      "encoder.layer1.0.conv1.weight",
      2304,
    ]] as const
  ) {
    const w = new Float32Array(size);
    rng.fillNormal(w, 0, 0.1);
    weights.set(name, w);
  }
  const before = computeMasks(weights, { prunePercent: 0.9 });
  // An epoch of SGD moves every weight a little.
  const after = new Map([...weights].map(([name, w]) => {
    const moved = Float32Array.from(w, (v) => v + 0.02 * rng.normal());
    return [name, moved];
  }));
  const next = computeMasks(after, { prunePercent: 0.9 });
  let flipped = 0;
  for (const [name, m] of before) {
    m.forEach((v, i) => (flipped += v !== next.get(name)![i] ? 1 : 0));
  }
  assert(flipped > 10, `only ${flipped} mask entries changed`);
  assertEquals(countPruned(next), Math.ceil(0.9 * 2736), "the new masks prune as many weights");
  // The same weights give the same masks (no hidden state between calls).
  assertEquals(
    [...computeMasks(weights, { prunePercent: 0.9 }).values()].map((m) => [...m]),
    [...before.values()].map((m) => [...m]),
  );
});

Deno.test("random_prune_percent drops kept weights at rate ceil(r·n)/(n − ceil(p·n))", () => {
  const n = 100_000;
  const weights = distinctWeights([40_000, 60_000], new Rng(9, "random"));
  const options = { prunePercent: 0.9, randomPrunePercent: 0.2 };
  const magnitudeOnly = computeMasks(weights, { prunePercent: 0.9 - 0.2 });
  const masks = computeMasks(weights, options, new Rng(10, "prune"));
  const kept = n - Math.ceil((0.9 - 0.2) * n);
  const q = Math.ceil(0.2 * n) / kept;
  let keptAfter = 0;
  for (const [name, m] of masks) {
    const base = magnitudeOnly.get(name)!;
    for (let i = 0; i < m.length; i++) {
      assert(m[i] <= base[i], `${name}[${i}]: random pruning only removes kept weights`);
      keptAfter += m[i];
    }
  }
  // Binomial(kept, 1 − q): within 5 standard deviations.
  const mean = kept * (1 - q);
  const sd = Math.sqrt(kept * q * (1 - q));
  assert(Math.abs(keptAfter - mean) <= 5 * sd, `kept ${keptAfter}, expected ${mean} ± ${sd}`);
  assertClose(totalSparsity(masks), 0.9, 0, 5 * sd / n);
  // Seeded: the same generator state gives the same masks, another seed different ones.
  const again = computeMasks(weights, options, new Rng(10, "prune"));
  const other = computeMasks(weights, options, new Rng(11, "prune"));
  const same = (a: Map<string, Float32Array>, b: Map<string, Float32Array>) =>
    [...a].every(([k, m]) => m.every((v, i) => v === b.get(k)![i]));
  assert(same(masks, again), "same seed, same masks");
  assert(!same(masks, other), "another seed, other masks");
});

Deno.test("bad pruning options and weights raise errors naming the key and value", async () => {
  const weights = new Map([["w", Float32Array.of(1, 2, 3)]]);
  for (const p of [1, 1.5, -0.1, NaN]) {
    await assertThrowsMessage(
      () => computeMasks(weights, { prunePercent: p }),
      "method.prune_percent",
      String(p),
    );
  }
  await assertThrowsMessage(
    () => computeMasks(weights, { prunePercent: "0.5" as unknown as number }),
    "method.prune_percent",
    '"0.5"',
  );
  await assertThrowsMessage(
    () => computeMasks(weights, { prunePercent: 0.5, randomPrunePercent: 0.6 }, new Rng(1)),
    "method.random_prune_percent",
    "0.6",
    "[0, prune_percent = 0.5]",
  );
  await assertThrowsMessage(
    () => computeMasks(weights, { prunePercent: 0.5, randomPrunePercent: -0.1 }, new Rng(1)),
    "method.random_prune_percent",
    "-0.1",
  );
  await assertThrowsMessage(
    () => computeMasks(weights, { prunePercent: 0.5, randomPrunePercent: 0.1 }),
    "random generator",
  );
  await assertThrowsMessage(
    () => computeMasks(new Map(), { prunePercent: 0.5 }),
    "no conv weights",
  );
  await assertThrowsMessage(
    () => computeMasks(new Map([["encoder.x", Float32Array.of(1, NaN)]]), { prunePercent: 0.5 }),
    "encoder.x[1] is NaN",
  );
});

Deno.test("encoderConvWeights and maskFeeds cover exactly the step graph's mask inputs", async () => {
  const built = buildContrastiveGraph({
    encoder: { arch: "resnet18", stem: "cifar", width: 1 / 16 },
    head: { kind: "sdclr", outDim: 8 },
    loss: { type: "ntxent", temperature: 0.2 },
    method: { name: "sdclr" },
    batchSize: 2,
    imageSize: 8,
  });
  const values = initParams(built.store.entries(), new Rng(2, "init"));
  const weights = encoderConvWeights(built.store, values);
  assertEquals(weights.size, 20, "ResNet-18: 17 convs and 3 downsample convs; no head weights");
  assert([...weights.keys()].every((k) => k.startsWith("encoder.")), "encoder weights only");
  const masks = computeMasks(weights, { prunePercent: 0.9 });
  const feeds = maskFeeds(built.store, masks);
  assertEquals(Object.keys(feeds).sort(), [...built.inputs.masks].sort());
  for (const [name, feed] of Object.entries(feeds)) {
    assertEquals(feed.shape, built.graph.findInput(name)!.shape, `${name} shape`);
  }
  const short = new Map(masks);
  short.delete("encoder.conv1.weight");
  await assertThrowsMessage(
    () => maskFeeds(built.store, short),
    "encoder.conv1.weight",
    "got none",
  );
  values.delete("encoder.layer1.0.conv2.weight");
  await assertThrowsMessage(
    () => encoderConvWeights(built.store, values),
    "no value for encoder.layer1.0.conv2.weight",
  );
});

Deno.test("maskSparsity reports the zero fraction per layer", () => {
  const masks = new Map([
    ["encoder.conv1.weight", Float32Array.of(0, 1, 1, 0)],
    ["encoder.layer1.0.conv1.weight", Float32Array.of(1, 1, 1, 1, 1, 1, 1, 0)],
  ]);
  assertEquals(maskSparsity(masks), {
    "encoder.conv1.weight": 0.5,
    "encoder.layer1.0.conv1.weight": 0.125,
  });
  assertEquals(totalSparsity(masks), 3 / 12);
});

Deno.test("RareClassLossShare: the k rarest classes' share of an epoch's loss", async () => {
  // Counts in the pretraining split: classes 3 and 1 are the rarest (ties broken by index).
  const share = new RareClassLossShare([100, 5, 50, 5, 20], 2);
  assertEquals(share.rareClasses, [1, 3]);
  // Step 1: labels [0, 1, 3]; anchors i and i + 3 are the two views of image i.
  share.add(Float32Array.of(1, 4, 2, 1, 2, 2), [0, 1, 3]);
  // Step 2 (bigint labels, as an int64 tensor gives them): labels [2, 1].
  share.add([0.5, 3, 0.5, 1], BigInt64Array.of(2n, 1n));
  const r = share.result();
  assertEquals(r.classLoss, [2, 10, 1, 4, 0]);
  assertEquals(r.classAnchors, [2, 4, 2, 2, 0]);
  assertEquals(r.totalLoss, 17);
  assertClose(r.lossShare, 14 / 17, 1e-12);
  assertClose(r.sampleShare, 6 / 10, 1e-12);
  const diagnostics = epochDiagnostics(
    new Map([["encoder.conv1.weight", Float32Array.of(0, 0, 0, 1)]]),
    share,
  );
  assertEquals(diagnostics.sparsity, 0.75);
  assertEquals(
    formatDiagnostics(diagnostics),
    "mask sparsity 75.0% (layers 75.0%–75.0%); 2 rarest classes carry 82.4% of the loss with 60.0% of the samples",
  );
  share.reset();
  assertEquals(share.result().totalLoss, 0);
  assertEquals(share.result().lossShare, 0);

  await assertThrowsMessage(() => share.add([1, 2, 3], [0]), "3 values", "2 × 1 labels");
  await assertThrowsMessage(() => share.add([1, 2], [5]), "label 5", "[0, 5)");
  await assertThrowsMessage(() => share.add([NaN, 2], [0]), "not finite");
  await assertThrowsMessage(() => new RareClassLossShare([3, 4], 3), "rareCount 3", "[1, 2]");
  await assertThrowsMessage(() => new RareClassLossShare([3, -1], 1), "classCounts[1] = -1");
});
