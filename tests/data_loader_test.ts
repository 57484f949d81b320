import assert from "node:assert/strict";
import {
  type Batch,
  cachedDataset,
  EpochLoader,
  type ImageDataset,
  loadDatasetCache,
  saveDatasetCache,
} from "../src/data/mod.ts";

function assertEquals(actual: unknown, expected: unknown, message?: string): void {
  assert.deepStrictEqual(actual, expected, message ?? "values differ");
}

/** A 2×2-pixel data set whose image i is filled with the value i and labelled i % 3. */
function tinyDataset(count: number): ImageDataset {
  const images = new Uint8Array(count * 12);
  for (let i = 0; i < count; i++) images.fill(i, i * 12, (i + 1) * 12);
  return {
    images,
    labels: Int32Array.from({ length: count }, (_, i) => i % 3),
    count,
    height: 2,
    width: 2,
    classes: ["a", "b", "c"],
    source: "tiny",
  };
}

async function collect(iterator: AsyncGenerator<Batch>): Promise<Batch[]> {
  const out: Batch[] = [];
  for await (const batch of iterator) out.push(batch);
  return out;
}

Deno.test("EpochLoader: one seeded permutation per epoch, every image once", async () => {
  const loader = new EpochLoader({ dataset: tinyDataset(10), batchSize: 4, seed: 7 });
  assertEquals(loader.batchesPerEpoch, 3);
  const batches = await collect(loader.epoch(0));
  assertEquals(batches.map((b) => b.indices.length), [4, 4, 2]);
  const seen = batches.flatMap((b) => Array.from(b.indices));
  assertEquals([...seen].sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.notDeepStrictEqual(seen, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  // Gathered pixels and labels follow the indices (image i is filled with i).
  for (const batch of batches) {
    batch.indices.forEach((index, k) => {
      assertEquals(
        Array.from(batch.images.subarray(k * 12, (k + 1) * 12)),
        new Array(12).fill(index),
      );
      assertEquals(batch.labels[k], index % 3);
    });
  }
  // Same (seed, epoch) → same order; other epoch or seed → another order.
  assertEquals(loader.order(0), Int32Array.from(seen));
  assertEquals(
    new EpochLoader({ dataset: tinyDataset(10), batchSize: 3, seed: 7 }).order(0),
    loader.order(0),
  );
  assert.notDeepStrictEqual(loader.order(1), loader.order(0));
  assert.notDeepStrictEqual(
    new EpochLoader({ dataset: tinyDataset(10), batchSize: 4, seed: 8 }).order(0),
    loader.order(0),
  );
});

Deno.test("EpochLoader resumes exactly at (epoch, step); dropLast; subsets; no shuffle", async () => {
  const dataset = tinyDataset(10);
  const loader = new EpochLoader({ dataset, batchSize: 4, seed: 1 });
  const full = await collect(loader.epoch(3));
  const resumed = await collect(new EpochLoader({ dataset, batchSize: 4, seed: 1 }).epoch(3, 1));
  assertEquals(resumed.map((b) => b.step), [1, 2]);
  assertEquals(
    resumed.map((b) => Array.from(b.indices)),
    full.slice(1).map((b) => Array.from(b.indices)),
  );

  const dropping = new EpochLoader({ dataset, batchSize: 4, seed: 1, dropLast: true });
  assertEquals(dropping.batchesPerEpoch, 2);
  assertEquals((await collect(dropping.epoch(0))).map((b) => b.indices.length), [4, 4]);

  const subset = new EpochLoader({
    dataset,
    batchSize: 2,
    seed: 1,
    indices: [9, 4, 2],
    shuffle: false,
  });
  assertEquals((await collect(subset.epoch(5))).map((b) => Array.from(b.indices)), [[9, 4], [2]]);

  assert.throws(() => new EpochLoader({ dataset, batchSize: 2, seed: 1, indices: [3, 10] }), {
    message: "EpochLoader: index 10 at position 1 is outside the 10 images of tiny",
  });
  assert.throws(() => new EpochLoader({ dataset, batchSize: 11, seed: 1, dropLast: true }), {
    message: "EpochLoader: 10 images make no batch of 11 with dropLast",
  });
});

Deno.test("dataset cache: save/load round trip, key check, damaged file, no temp file left", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const dataset = tinyDataset(5);
    const path = `${dir}/tiny.cache`;
    await saveDatasetCache(path, dataset, "key-1");
    assertEquals([...Deno.readDirSync(dir)].map((e) => e.name), ["tiny.cache"]);
    const { dataset: loaded, key } = await loadDatasetCache(path);
    assertEquals(key, "key-1");
    assertEquals(loaded.images, dataset.images);
    assertEquals(loaded.labels, dataset.labels);
    assertEquals([loaded.count, loaded.height, loaded.width, loaded.classes], [5, 2, 2, [
      "a",
      "b",
      "c",
    ]]);

    let builds = 0;
    const build = () => {
      builds++;
      return Promise.resolve(tinyDataset(4));
    };
    assertEquals((await cachedDataset(path, "key-1", build)).count, 5);
    assertEquals(builds, 0);
    assertEquals((await cachedDataset(path, "key-2", build)).count, 4);
    assertEquals(builds, 1);
    assertEquals((await cachedDataset(path, "key-2", build)).count, 4);
    assertEquals(builds, 1);

    const bytes = await Deno.readFile(path);
    await Deno.writeFile(path, bytes.subarray(0, bytes.length - 3));
    await assert.rejects(() => loadDatasetCache(path), {
      message: `${path}: damaged data set cache (${
        bytes.length - 3
      } bytes, expected ${bytes.length}); delete it to decode again`,
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
