/**
 * Whole images of different sizes (ImageNet as SDCLR reads it): the bounded decode, the canvas a
 * batch is gathered into, the cache, and the augmentation that crops each image from its whole
 * extent without ever reading the canvas padding.
 */
import jpeg from "jpeg-js";
import { assert, assertAllClose, assertEquals, assertThrowsMessage } from "./assert.ts";
import {
  augmentationGraph,
  packBatch,
  planRecipe,
  type Recipe,
  sampleBatch,
  sdclrImageNetRecipe,
} from "../src/augment/mod.ts";
import {
  batchCount,
  boundedSize,
  cachedFullImages,
  decodeFullImages,
  EpochLoader,
  type FullImageSet,
  fullImageSet,
  gatherCanvas,
  loadFullImageCache,
  resizeBilinear,
  saveFullImageCache,
  subsetFullImages,
} from "../src/data/mod.ts";
import { Session } from "../src/runtime/session.ts";
import type { HostTensor } from "../src/runtime/host_tensor.ts";
import { Rng } from "../src/util/rng.ts";

/** Smooth CHW images of the given [height, width] sizes. */
function wholeImages(sizes: [number, number][], seed = 0): FullImageSet {
  const rng = new Rng(seed, "whole");
  const images = sizes.map(([height, width]) => {
    const data = new Uint8Array(3 * height * width);
    for (let c = 0; c < 3; c++) {
      const [a, b, phase] = [rng.uniformIn(-4, 4), rng.uniformIn(-4, 4), rng.uniformIn(0, 6)];
      for (let y = 0; y < height; y++) {
        for (let x = 0; x < width; x++) {
          const v = 0.5 + 0.5 * Math.sin((a * x) / width + (b * y) / height + phase);
          data[(c * height + y) * width + x] = Math.round(255 * v);
        }
      }
    }
    return { data, height, width };
  });
  return fullImageSet(
    images,
    Int32Array.from(sizes, (_, i) => i % 2),
    ["a", "b"],
    1000,
    "synthetic",
  );
}

async function runAugmentation(
  recipe: Recipe,
  height: number,
  width: number,
  images: Uint8Array,
  params: HostTensor,
  batch: number,
): Promise<Float32Array[]> {
  const plan = planRecipe(recipe, height, width);
  const views = params.shape[0];
  const session = await Session.create(augmentationGraph(plan, { views }), { threads: 1 });
  try {
    const out = await session.run({
      images: { dtype: "uint8", shape: [batch, 3, height, width], data: images },
      params,
    });
    return session.outputNames.map((name) => out[name].data as Float32Array);
  } finally {
    await session.release();
  }
}

Deno.test("whole images on a canvas augment as each image alone, and the padding is never read", async () => {
  const set = wholeImages([[30, 44], [41, 23], [37, 37]]);
  assertEquals([set.height, set.width], [41, 44]);
  const recipe = sdclrImageNetRecipe(16);
  const canvasPlan = planRecipe(recipe, set.height, set.width);
  const indices = Int32Array.of(0, 1, 2);
  const batch = gatherCanvas(set, indices);
  assertEquals(Array.from(batch.sizes), [30, 44, 41, 23, 37, 37]);
  const drawn = sampleBatch(canvasPlan, new Rng(3, "views"), 3, 2, batch.sizes);
  // Every crop lies inside its own image.
  drawn.draws.forEach((view) =>
    view.forEach((draws, b) => {
      const box =
        (draws[0] as { box: { top: number; left: number; height: number; width: number } })
          .box;
      assert(box.top + box.height <= batch.sizes[2 * b], `crop rows of image ${b}`);
      assert(box.left + box.width <= batch.sizes[2 * b + 1], `crop columns of image ${b}`);
    })
  );
  const onCanvas = await runAugmentation(
    recipe,
    set.height,
    set.width,
    batch.images,
    drawn.params,
    3,
  );
  // The same canvas with its padding painted white gives the same views.
  const painted = batch.images.slice();
  const plane = set.height * set.width;
  for (let b = 0; b < 3; b++) {
    for (let c = 0; c < 3; c++) {
      for (let y = 0; y < set.height; y++) {
        for (let x = 0; x < set.width; x++) {
          if (y >= batch.sizes[2 * b] || x >= batch.sizes[2 * b + 1]) {
            painted[(b * 3 + c) * plane + y * set.width + x] = 255;
          }
        }
      }
    }
  }
  const paintedViews = await runAugmentation(
    recipe,
    set.height,
    set.width,
    painted,
    drawn.params,
    3,
  );
  onCanvas.forEach((view, v) => assertEquals(paintedViews[v], view, `view ${v}: padding read`));
  // Each image alone, planned at its own size, with the same draws.
  const outSize = 3 * 16 * 16;
  for (let b = 0; b < 3; b++) {
    const [h, w] = [set.heights[b], set.widths[b]];
    const alone = planRecipe(recipe, h, w);
    const params = packBatch(alone, drawn.draws.map((view) => [view[b]]));
    const views = await runAugmentation(recipe, h, w, set.pixels[b], params, 1);
    views.forEach((view, v) =>
      assertAllClose(
        view,
        onCanvas[v].subarray(b * outSize, (b + 1) * outSize),
        0,
        1e-5,
        `image ${b} view ${v}`,
      )
    );
  }
});

Deno.test("whole images: bounded decode, subsets share pixels, canvas layout", async () => {
  assertEquals(boundedSize(500, 375, 320), [320, 240]);
  assertEquals(boundedSize(375, 500, 320), [240, 320]);
  assertEquals(boundedSize(200, 100, 320), [200, 100]);
  assertEquals(boundedSize(1000, 3, 320), [320, 1]);

  const dir = await Deno.makeTempDir();
  try {
    const rgba = new Uint8Array(80 * 40 * 4);
    for (let i = 0; i < 80 * 40; i++) rgba.set([(i * 7) % 256, (i * 3) % 256, i % 256, 255], 4 * i);
    await Deno.writeFile(
      `${dir}/wide.jpg`,
      jpeg.encode({ width: 80, height: 40, data: rgba }, 95).data,
    );
    const entries = [{ path: `${dir}/wide.jpg`, label: 1, where: "list.txt:1" }];
    const set = await decodeFullImages(entries, ["a", "b"], { maxSide: 32 }, "list.txt");
    assertEquals([set.count, set.widths[0], set.heights[0], set.width, set.height], [
      1,
      32,
      16,
      32,
      16,
    ]);
    // The pixels are Pillow's bilinear shrink of the decoded JPEG.
    const decoded = jpeg.decode(await Deno.readFile(`${dir}/wide.jpg`), { formatAsRGBA: false });
    const shrunk = resizeBilinear(
      { width: 80, height: 40, data: decoded.data as Uint8Array },
      32,
      16,
    );
    assertEquals(set.pixels[0][16 * 32 + 5 * 32 + 7], shrunk.data[(5 * 32 + 7) * 3 + 1]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }

  const set = wholeImages([[3, 5], [4, 2], [2, 2]]);
  const subset = subsetFullImages(set, [2, 0], "pick");
  assertEquals(Array.from(subset.heights), [2, 3]);
  assert(subset.pixels[1] === set.pixels[0], "subsets share pixel arrays");
  assertEquals([subset.height, subset.width], [set.height, set.width]);
  const canvas = gatherCanvas(set, Int32Array.of(1));
  // Image 1 is 4x2 at the top-left of the 4x5 canvas; the rest stays zero.
  assertEquals(canvas.images.length, 3 * 4 * 5);
  for (let c = 0; c < 3; c++) {
    for (let y = 0; y < 4; y++) {
      for (let x = 0; x < 5; x++) {
        const expected = x < 2 ? set.pixels[1][(c * 4 + y) * 2 + x] : 0;
        assertEquals(canvas.images[(c * 4 + y) * 5 + x], expected, `c${c} y${y} x${x}`);
      }
    }
  }
});

Deno.test("whole-image cache: round trip, key check, damaged file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const set = wholeImages([[5, 7], [6, 3], [2, 9]]);
    const path = `${dir}/list.txt.full.cache`;
    await saveFullImageCache(path, set, "k1");
    const { set: loaded, key } = await loadFullImageCache(path);
    assertEquals(key, "k1");
    assertEquals(loaded.pixels, set.pixels);
    assertEquals([loaded.heights, loaded.widths, loaded.labels], [
      set.heights,
      set.widths,
      set.labels,
    ]);
    assertEquals([loaded.height, loaded.width, loaded.maxSide], [6, 9, 1000]);
    let builds = 0;
    const build = () => {
      builds++;
      return Promise.resolve(wholeImages([[2, 2]]));
    };
    assertEquals((await cachedFullImages(path, "k1", build)).count, 3);
    assertEquals((await cachedFullImages(path, "k2", build)).count, 1);
    assertEquals(builds, 1);
    const bytes = await Deno.readFile(path);
    await Deno.writeFile(path, bytes.subarray(0, bytes.length - 1));
    await assertThrowsMessage(() => loadFullImageCache(path), "damaged whole-image cache");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a last batch of one image is dropped where a contrastive batch needs two", () => {
  assertEquals(batchCount(65, 64, false), 2);
  assertEquals(batchCount(65, 64, false, 2), 1);
  assertEquals(batchCount(66, 64, false, 2), 2);
  assertEquals(batchCount(65, 64, true, 2), 1);
  assertEquals(batchCount(64, 64, false, 2), 1);
  const set = wholeImages(Array.from({ length: 5 }, () => [3, 3] as [number, number]));
  const loader = new EpochLoader({ dataset: set, batchSize: 2, seed: 0, minLastBatch: 2 });
  const seen = loader.batchIndices(0).flatMap((b) => Array.from(b));
  assertEquals(seen.length, 4, "two batches of two; the fifth image waits for another epoch");
  const dropped = (epoch: number) =>
    [0, 1, 2, 3, 4].find((i) => !loader.batchIndices(epoch).some((b) => b.includes(i)));
  assert(new Set([0, 1, 2, 3, 4, 5, 6, 7].map(dropped)).size > 1, "a different image each epoch");
});
