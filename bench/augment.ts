/**
 * Augmentation throughput on CPU: the ETH and SDCLR recipes on 32x32 CIFAR-sized
 * images, two views per image, ORT CPU at 2 intra-op threads. Prints, per batch
 * size, the median time of host sampling + packing and of the graph run, and
 * augmented views per second (both views counted).
 *
 * Run: deno run -A bench/augment.ts [--runs 7] [--threads 2] [--batches 256,512]
 */
import { parseArgs } from "node:util";
import { Augmenter, ethRecipe, type Recipe, sdclrRecipe } from "../src/augment/mod.ts";
import { Rng } from "../src/util/rng.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    runs: { type: "string", default: "7" },
    threads: { type: "string", default: "2" },
    batches: { type: "string", default: "256,512" },
  },
});
const runs = Number(values.runs);
const threads = Number(values.threads);
const batches = values.batches!.split(",").map(Number);

function median(xs: number[]): number {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

async function bench(recipe: Recipe, batch: number): Promise<void> {
  const augmenter = await Augmenter.create(recipe, { height: 32, width: 32, threads });
  const rng = new Rng(0);
  const images = new Uint8Array(batch * 3 * 32 * 32);
  for (let i = 0; i < images.length; i++) images[i] = rng.int(256);
  const sampleMs: number[] = [];
  const runMs: number[] = [];
  for (let r = 0; r < runs + 1; r++) {
    const t0 = performance.now();
    const params = augmenter.sample(rng, batch);
    const t1 = performance.now();
    await augmenter.run(images, batch, params.params);
    const t2 = performance.now();
    if (r === 0) continue; // warm-up
    sampleMs.push(t1 - t0);
    runMs.push(t2 - t1);
  }
  await augmenter.release();
  const sample = median(sampleMs);
  const run = median(runMs);
  const viewsPerSecond = (2 * batch) / ((sample + run) / 1000);
  console.log(
    `${recipe.name.padEnd(6)} batch ${String(batch).padStart(4)}: sample+pack ${
      sample.toFixed(1).padStart(6)
    } ms, ` +
      `graph ${run.toFixed(1).padStart(6)} ms, ${viewsPerSecond.toFixed(0).padStart(6)} views/s ` +
      `(graph only ${((2 * batch) / (run / 1000)).toFixed(0)} views/s)`,
  );
}

console.log(
  `augmentation, 32x32, 2 views per image, ORT CPU, ${threads} threads, median of ${runs} runs`,
);
for (const recipe of [ethRecipe(), sdclrRecipe()]) {
  for (const batch of batches) await bench(recipe, batch);
}
