/**
 * Data-pipeline throughput (`deno task bench-data`): augmented views/s for
 * 32x32 CIFAR (ETH and SDCLR recipes, two views per image) on ORT CPU, the
 * JPEG decode rate, and the share of a ResNet-18 training step that the
 * augmentation of its batch would take, all measured in this one run.
 *
 *   deno task bench-data [--threads 2] [--batch 256] [--step-batch 32] [--runs 5] [--jpeg-dir DIR]
 */
import { parseArgs } from "node:util";
import jpeg from "jpeg-js";
import { Augmenter, ethRecipe, type Recipe, sdclrRecipe } from "../src/augment/mod.ts";
import { decodeImage } from "../src/data/image_decode.ts";
import { buildContrastiveStep } from "../src/methods/contrastive.ts";
import { initParams } from "../src/nn/mod.ts";
import { createOptimizer } from "../src/optim/mod.ts";
import { Session } from "../src/runtime/session.ts";
import { StepRunner } from "../src/train/step_runner.ts";
import { Rng } from "../src/util/rng.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    threads: { type: "string", default: "2" },
    batch: { type: "string", default: "256" },
    "step-batch": { type: "string", default: "32" },
    runs: { type: "string", default: "5" },
    "jpeg-dir": { type: "string" },
  },
});
const threads = Number(values.threads);
const batch = Number(values.batch);
const stepBatch = Number(values["step-batch"]);
const runs = Number(values.runs);
const rng = new Rng(0, "bench-data");

function median(xs: number[]): number {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

function randomImages(count: number, side = 32): Uint8Array {
  const images = new Uint8Array(count * 3 * side * side);
  for (let i = 0; i < images.length; i++) images[i] = rng.int(256);
  return images;
}

/** Median ms of sampling + running the augmentation of `size` images (two views). */
async function augmentMs(recipe: Recipe, size: number): Promise<number> {
  const augmenter = await Augmenter.create(recipe, { height: 32, width: 32, threads });
  const images = randomImages(size);
  const times: number[] = [];
  for (let r = 0; r <= runs; r++) {
    const t0 = performance.now();
    await augmenter.augment(images, size, rng);
    if (r > 0) times.push(performance.now() - t0);
  }
  await augmenter.release();
  return median(times);
}

/** JPEG files to decode: a folder given by --jpeg-dir, else CIFAR-sized images encoded here. */
async function jpegFiles(): Promise<{ files: Uint8Array[]; source: string }> {
  const dir = values["jpeg-dir"];
  if (dir) {
    const files: Uint8Array[] = [];
    for await (const entry of Deno.readDir(dir)) {
      if (/\.jpe?g$/i.test(entry.name)) files.push(await Deno.readFile(`${dir}/${entry.name}`));
      if (files.length >= 500) break;
    }
    if (files.length === 0) throw new Error(`--jpeg-dir ${dir}: no .jpg files`);
    return { files, source: dir };
  }
  const files: Uint8Array[] = [];
  for (const side of [32, 375]) {
    for (let i = 0; i < (side === 32 ? 500 : 20); i++) {
      const width = side === 32 ? 32 : 500;
      const data = new Uint8Array(width * side * 4);
      // Smooth gradients plus noise: compresses like a photo, not like static.
      for (let p = 0; p < width * side; p++) {
        const x = p % width;
        const y = Math.floor(p / width);
        for (let c = 0; c < 3; c++) data[4 * p + c] = (x * (c + 1) + y * 2 + rng.int(24)) & 255;
        data[4 * p + 3] = 255;
      }
      files.push(jpeg.encode({ data, width, height: side }, 90).data);
    }
  }
  return { files, source: "encoded here: 500 of 32x32 and 20 of 500x375 at quality 90" };
}

console.log(`data pipeline, ORT CPU, ${threads} threads, median of ${runs} runs`);
for (const recipe of [ethRecipe(), sdclrRecipe()]) {
  const ms = await augmentMs(recipe, batch);
  console.log(
    `augment ${recipe.name.padEnd(5)} batch ${batch}: ${ms.toFixed(1)} ms, ${
      ((2 * batch) / (ms / 1000)).toFixed(0)
    } views/s`,
  );
}

const { files, source } = await jpegFiles();
const bySize = new Map<string, { count: number; ms: number }>();
for (const [i, bytes] of files.entries()) {
  const t0 = performance.now();
  const image = decodeImage(bytes, `image ${i}`);
  const key = `${image.width}x${image.height}`;
  const entry = bySize.get(key) ?? { count: 0, ms: 0 };
  entry.count++;
  entry.ms += performance.now() - t0;
  bySize.set(key, entry);
}
for (const [size, { count, ms }] of bySize) {
  console.log(
    `decode JPEG ${size}: ${
      (count / (ms / 1000)).toFixed(0)
    } images/s (${count} images; ${source})`,
  );
}

// The augmentation's share of a ResNet-18 (CIFAR stem) SimCLR step at the same batch.
const step = buildContrastiveStep(
  {
    encoder: { arch: "resnet18", stem: "cifar" },
    head: { kind: "simclr" },
    loss: { type: "ntxent", temperature: 0.2 },
    method: { name: "simclr" },
    batchSize: stepBatch,
    imageSize: 32,
  },
  createOptimizer({ kind: "sgd", momentum: 0.9, weightDecay: 1e-4 }),
);
const session = await Session.create(step.graph, { threads });
const runner = new StepRunner(
  session,
  step.layout,
  initParams(step.store.entries(), rng.fork("init")),
);
const augmenter = await Augmenter.create(ethRecipe(), { height: 32, width: 32, threads });
const images = randomImages(stepBatch);
const augmentTimes: number[] = [];
const stepTimes: number[] = [];
for (let r = 0; r <= Math.min(runs, 3); r++) {
  const t0 = performance.now();
  const { views } = await augmenter.augment(images, stepBatch, rng);
  const t1 = performance.now();
  await runner.step({ view1: views[0], view2: views[1] }, { lr: 0.1 });
  const t2 = performance.now();
  if (r === 0) continue;
  augmentTimes.push(t1 - t0);
  stepTimes.push(t2 - t1);
}
const a = median(augmentTimes);
const s = median(stepTimes);
console.log(
  `ResNet-18 step, batch ${stepBatch}: augmentation ${a.toFixed(1)} ms + step ${
    s.toFixed(0)
  } ms: ` +
    `augmentation is ${((100 * a) / (a + s)).toFixed(1)} % of the time`,
);
await augmenter.release();
await session.release();
