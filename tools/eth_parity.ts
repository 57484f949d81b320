/**
 * Our side of the ETH isolation checks of issue 13 (the torch side is
 * `tools/eth_parity.py`, which imports `tools/eth_torch_reference.py`). Every
 * subcommand writes files the torch side reads, or reads files it wrote:
 *
 * ```sh
 * deno run -A tools/eth_parity.ts features CONFIG --data-dir D --out F.safetensors [--checkpoint C] [--limit N]
 * deno run -A tools/eth_parity.ts probe CONFIG --features F.safetensors --out R.json [--seed S]
 * deno run -A tools/eth_parity.ts trajectory CONFIG --data-dir D --steps K --out DIR [--batch B] [--limit N]
 * deno run -A tools/eth_parity.ts augment CONFIG --data-dir D --images N --draws R --out F.safetensors
 * deno run -A tools/eth_parity.ts loader CONFIG [--limit 50000]
 * ```
 *
 * - `features`: eval-mode encoder features of the train and test sets (the
 *   first `--limit` images of each) from a run checkpoint, or from the
 *   encoder's random initialization under the config seed; also writes the
 *   encoder weights used beside the features (`<out>.weights.safetensors`) so
 *   torch can load exactly them.
 * - `probe`: our ETH linear protocol on saved features (ours or torch's).
 * - `trajectory`: K training steps of the config from its initial weights on
 *   real data, dumping the initial weights, every step's two augmented views,
 *   μ and loss, and the final weights and BN statistics.
 * - `augment`: `--draws` augmented views of each of the first `--images`
 *   training images with their sampled parameters (crop box, flip, jitter,
 *   grayscale, blur), for the distribution comparison with torchvision.
 */
import { parseArgs } from "node:util";
import { loadConfig } from "../src/config/mod.ts";
import { writeSafetensors } from "../src/artifacts/mod.ts";
import { initialTrainingState } from "../src/artifacts/artifacts.ts";
import { Augmenter, recipeFromConfig, type ViewDraws } from "../src/augment/mod.ts";
import { EpochLoader } from "../src/data/loader.ts";
import { type ImageDataset, subsetDataset } from "../src/data/dataset.ts";
import { type ImageSource, isFullImageSet } from "../src/data/full_images.ts";
import {
  ethLinearEval,
  ethLinearOptions,
  extractFeatures,
  type FeatureSet,
  GraphEncoder,
} from "../src/eval/mod.ts";
import {
  buildContrastiveStep,
  contrastiveSpecFromConfig,
  optimizerFromConfig,
} from "../src/methods/mod.ts";
import { createOptimizer } from "../src/optim/mod.ts";
import type { HostTensor } from "../src/runtime/host_tensor.ts";
import { Session } from "../src/runtime/session.ts";
import { muRng, muScheduleFromConfig } from "../src/schedules/from_config.ts";
import { StepRunner } from "../src/train/step_runner.ts";
import { experimentProvenance, loadExperimentData } from "../src/train/experiment_data.ts";
import { Rng } from "../src/util/rng.ts";
import { readSafetensors } from "../src/artifacts/safetensors.ts";

const USAGE =
  `usage: deno run -A tools/eth_parity.ts <features|probe|trajectory|augment> CONFIG [options]
  (see the header of tools/eth_parity.ts)`;

function fail(message: string): never {
  console.error(message);
  Deno.exit(2);
}

const { positionals, values: opts } = parseArgs({
  args: Deno.args,
  allowPositionals: true,
  options: {
    "data-dir": { type: "string" },
    out: { type: "string" },
    checkpoint: { type: "string" },
    limit: { type: "string" },
    features: { type: "string" },
    seed: { type: "string" },
    steps: { type: "string" },
    batch: { type: "string" },
    images: { type: "string" },
    draws: { type: "string" },
    threads: { type: "string", default: "0" },
    set: { type: "string", multiple: true },
  },
});
const [command, configPath] = positionals;
if (!command || !configPath) fail(USAGE);
const int = (name: string, value: string | undefined, fallback?: number): number => {
  if (value === undefined) {
    if (fallback === undefined) fail(`${command}: --${name} is required`);
    return fallback;
  }
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) {
    fail(`--${name}: expected a non-negative integer, got ${value}`);
  }
  return n;
};
const need = (name: "out" | "data-dir" | "features"): string =>
  opts[name] ?? fail(`${command}: --${name} is required`);
const session = { threads: int("threads", opts.threads) };
const loaded = await loadConfig(configPath, {
  set: opts.set ?? [],
  ...(opts["data-dir"] ? { dataDir: opts["data-dir"] } : {}),
});
const config = loaded.config;
const seed = int("seed", opts.seed, config.seed);

/** Writes tensors and JSON-string metadata. */
async function save(path: string, tensors: Record<string, HostTensor>, meta: object) {
  const metadata = Object.fromEntries(
    Object.entries(meta).map(([k, v]) => [k, typeof v === "string" ? v : JSON.stringify(v)]),
  );
  await writeSafetensors(path, tensors, metadata);
  console.error(`wrote ${path}`);
}

const f32 = (shape: number[], data: Float32Array): HostTensor => ({
  dtype: "float32",
  shape,
  data,
});
const i32 = (data: Int32Array): HostTensor => ({ dtype: "int32", shape: [data.length], data });

/** Parameters and buffers of the config's fused step at its initialization under `seed`. */
function initialValues(batch: number) {
  const spec = contrastiveSpecFromConfig(config);
  const optimizer = createOptimizer(optimizerFromConfig(config.optimizer).optimizer);
  const step = buildContrastiveStep({ ...spec, batchSize: batch }, optimizer);
  return { spec, step, values: initialTrainingState(step, seed) };
}

/** Only the model's tensors (no optimizer state), under our names. */
function modelTensors(values: ReadonlyMap<string, HostTensor>): Record<string, HostTensor> {
  const out: Record<string, HostTensor> = {};
  for (const [name, t] of values) {
    if (/\.(exp_avg|exp_avg_sq|momentum_buffer)$/.test(name)) continue;
    out[name] = t;
  }
  return out;
}

async function features() {
  const out = need("out");
  const data = await loadExperimentData(config);
  const limit = opts.limit === undefined ? null : int("limit", opts.limit);
  const first = (n: number) => Int32Array.from({ length: Math.min(n, limit ?? n) }, (_, i) => i);
  const spec = contrastiveSpecFromConfig(config);
  let values: Map<string, HostTensor>;
  if (opts.checkpoint) {
    // A run checkpoint (checkpoints/<experiment>/last.safetensors) or any safetensors file of
    // named parameters and BN buffers (e.g. trajectory's final.safetensors).
    values = new Map(Object.entries((await readSafetensors(opts.checkpoint)).tensors));
  } else {
    values = initialValues(2).values;
  }
  const encoder = await GraphEncoder.create(spec, values, session);
  const extract = async (source: ImageSource | null, split: string): Promise<FeatureSet> => {
    const set = decoded(source, split);
    return await extractFeatures(encoder, set, {
      indices: first(set.count),
      classCount: data.classes,
      progress: `features ${split}`,
    });
  };
  const start = performance.now();
  const train = await extract(data.train, "train");
  const test = await extract(data.test, "test");
  await encoder.release();
  const meta = {
    source: "ours",
    config: configPath,
    checkpoint: opts.checkpoint ?? `random init, seed ${seed}`,
    seconds: (performance.now() - start) / 1000,
    data: await experimentProvenance(config, data),
  };
  await save(out, {
    train_features: f32([train.count, train.dim], train.features),
    train_labels: i32(train.labels),
    test_features: f32([test.count, test.dim], test.features),
    test_labels: i32(test.labels),
  }, meta);
  await save(
    `${out.replace(/\.safetensors$/, "")}.weights.safetensors`,
    modelTensors(values),
    meta,
  );
}

async function probe() {
  const path = need("features");
  const out = need("out");
  const { tensors, metadata } = await readSafetensors(path);
  const set = (split: string): FeatureSet => {
    const x = tensors[`${split}_features`];
    const y = tensors[`${split}_labels`];
    if (!x || !y) fail(`${path}: no ${split}_features / ${split}_labels`);
    const labels = y.dtype === "int32"
      ? y.data as Int32Array
      : Int32Array.from(y.data as ArrayLike<number | bigint>, Number);
    return {
      features: x.data as Float32Array,
      labels,
      count: x.shape[0] as number,
      dim: x.shape[1] as number,
      classCount: config.data.num_classes ?? 10,
    };
  };
  const linear = config.evaluation.linear;
  if (!linear || linear.protocol !== "eth") {
    fail(`${configPath}: evaluation.linear is not the ETH protocol`);
  }
  const result = await ethLinearEval(set("train"), set("test"), {
    ...ethLinearOptions(linear, seed, session),
    progress: true,
  });
  await Deno.writeTextFile(
    out,
    JSON.stringify(
      { tool: "tools/eth_parity.ts probe", features: path, meta: metadata, seed, result },
      null,
      1,
    ),
  );
  console.log(
    JSON.stringify({
      val: result.search.map((r) => r.valAccuracy),
      weightDecay: result.weightDecay,
      test: result.testAccuracy,
    }),
  );
}

async function trajectory() {
  const out = need("out");
  const steps = int("steps", opts.steps);
  const batch = int("batch", opts.batch, config.train.batch_size);
  const data = await loadExperimentData(config);
  const all = decoded(data.pretrain, "pretrain");
  const limit = opts.limit === undefined ? all.count : int("limit", opts.limit);
  const pretrain = limit < all.count
    ? subsetDataset(all, Int32Array.from({ length: limit }, (_, i) => i), "first images")
    : all;
  const { spec, step, values } = initialValues(batch);
  await Deno.mkdir(out, { recursive: true });
  const provenance = await experimentProvenance(config, data);
  await save(`${out}/initial.safetensors`, modelTensors(values), { seed, data: provenance });
  const loader = new EpochLoader({
    dataset: pretrain,
    batchSize: batch,
    seed: config.seed,
    dropLast: config.train.drop_last,
  });
  const augmenter = await Augmenter.create(recipeFromConfig(config.augmentation), {
    ...session,
    height: pretrain.height,
    width: pretrain.width,
  });
  const mu = muScheduleFromConfig(config, muRng(config.seed));
  const { lr } = optimizerFromConfig(config.optimizer);
  const sessions = new Map<number, StepRunner>();
  const runnerFor = async (size: number) => {
    let runner = sessions.get(size);
    if (!runner) {
      const s = size === batch ? step : buildContrastiveStep(
        { ...spec, batchSize: size },
        createOptimizer(optimizerFromConfig(config.optimizer).optimizer),
      );
      runner = new StepRunner(await Session.create(s.graph, session), s.layout, values);
      sessions.set(size, runner);
    }
    return runner;
  };
  const losses: number[] = [];
  const mus: number[] = [];
  const sizes: number[] = [];
  let done = 0;
  for (let epoch = 0; done < steps; epoch++) {
    for await (const b of loader.epoch(epoch)) {
      const size = b.indices.length;
      const runner = await runnerFor(size);
      const { views } = await augmenter.augment(
        b.images,
        size,
        new Rng(config.seed, `augment/${epoch}/${b.step}`),
      );
      const muValue = mu ? mu.value() : 0;
      const result = await runner.step(
        { view1: views[0], view2: views[1] },
        { lr, step: done + 1, mu: muValue },
      );
      await save(`${out}/step_${done}.safetensors`, {
        view1: views[0],
        view2: views[1],
        indices: i32(b.indices),
      }, { epoch, step: b.step, mu: muValue, loss: result.loss });
      losses.push(result.loss);
      mus.push(muValue);
      sizes.push(size);
      console.error(`step ${done}: loss ${result.loss.toFixed(6)} (batch ${size})`);
      done++;
      if (done === steps) break;
    }
    mu?.epochEnd();
  }
  await save(`${out}/final.safetensors`, modelTensors(values), { steps });
  await Deno.writeTextFile(
    `${out}/trajectory.json`,
    JSON.stringify(
      { config: configPath, seed, batch, lr, steps, losses, mus, sizes, data: provenance },
      null,
      1,
    ),
  );
  await augmenter.release();
  for (const r of sessions.values()) await r.session.release();
}

/** Columns of the `draws` table written by `augment` (NaN where a transform was not applied). */
const DRAW_COLUMNS = [
  "crop_top",
  "crop_left",
  "crop_height",
  "crop_width",
  "flip",
  "jitter",
  "brightness",
  "contrast",
  "saturation",
  "hue",
  "jitter_order",
  "grayscale",
  "blur",
  "sigma",
] as const;

function drawRow(draws: ViewDraws): number[] {
  const row = new Map<string, number>(DRAW_COLUMNS.map((c) => [c, NaN]));
  for (const d of draws) {
    switch (d.kind) {
      case "random_resized_crop":
        if (d.box) {
          row.set("crop_top", d.box.top).set("crop_left", d.box.left);
          row.set("crop_height", d.box.height).set("crop_width", d.box.width);
        }
        break;
      case "horizontal_flip":
        row.set("flip", d.applied ? 1 : 0);
        break;
      case "color_jitter":
        row.set("jitter", d.applied ? 1 : 0);
        if (d.jitter) {
          row.set("brightness", d.jitter.brightness ?? NaN).set(
            "contrast",
            d.jitter.contrast ?? NaN,
          );
          row.set("saturation", d.jitter.saturation ?? NaN).set("hue", d.jitter.hue ?? NaN);
          // torch.randperm(4) as four digits, first applied first
          row.set("jitter_order", d.jitter.order.reduce((acc, op) => 10 * acc + op, 0));
        }
        break;
      case "grayscale":
        row.set("grayscale", d.applied ? 1 : 0);
        break;
      case "gaussian_blur":
        row.set("blur", d.applied ? 1 : 0);
        if (d.applied) row.set("sigma", d.sigma);
        break;
    }
  }
  return DRAW_COLUMNS.map((c) => row.get(c)!);
}

async function augment() {
  const out = need("out");
  const images = int("images", opts.images);
  const draws = int("draws", opts.draws, 1);
  const data = await loadExperimentData(config);
  const n = Math.min(images, data.pretrain.count);
  const { height, width } = data.pretrain;
  const augmenter = await Augmenter.create(recipeFromConfig(config.augmentation), {
    ...session,
    height,
    width,
    views: 1,
  });
  const size = 3 * height * width;
  const pixels = decoded(data.pretrain, "pretrain").images.subarray(0, n * size);
  const views = new Float32Array(draws * n * size);
  const table = new Float32Array(draws * n * DRAW_COLUMNS.length);
  for (let d = 0; d < draws; d++) {
    const result = await augmenter.augment(pixels, n, new Rng(seed, `parity/augment/${d}`));
    views.set(result.views[0].data as Float32Array, d * n * size);
    result.params.draws[0].forEach((view, i) =>
      table.set(drawRow(view), (d * n + i) * DRAW_COLUMNS.length)
    );
  }
  await save(out, {
    views: f32([draws, n, 3, height, width], views),
    draws: f32([draws, n, DRAW_COLUMNS.length], table),
  }, { images: n, draws, columns: DRAW_COLUMNS, data: await experimentProvenance(config, data) });
  await augmenter.release();
}

/** Steps per epoch, the last batch's size, each image once per epoch, a new order per epoch. */
function loader() {
  const count = int("limit", opts.limit, 50000);
  const batch = config.train.batch_size;
  const dataset = {
    images: new Uint8Array(count * 3),
    labels: new Int32Array(count),
    count,
    height: 1,
    width: 1,
    classes: ["x"],
    source: "indices",
  };
  const epochs = new EpochLoader({
    dataset,
    batchSize: batch,
    seed,
    dropLast: config.train.drop_last,
  });
  const [e0, e1] = [epochs.batchIndices(0), epochs.batchIndices(1)];
  const once = (bs: Int32Array[]) => {
    const seen = bs.flatMap((b) => [...b]).sort((a, b) => a - b);
    return seen.length === count && seen.every((v, i) => v === i);
  };
  const same = e0.every((b, k) => b.every((v, i) => v === e1[k][i]));
  console.log(JSON.stringify({
    count,
    batch,
    steps: e0.length,
    last: e0[e0.length - 1].length,
    each_once: once(e0) && once(e1),
    epoch_orders_differ: !same,
    first_batch_sorted: [...e0[0]].every((v, i, a) => i === 0 || a[i - 1] < v),
  }));
  return Promise.resolve();
}

const commands: Record<string, () => Promise<void>> = {
  features,
  probe,
  trajectory,
  augment,
  loader,
};
if (!commands[command]) fail(USAGE);
await commands[command]();

/** A set of the config as decoded same-size images (the ETH configs read CIFAR). */
function decoded(set: ImageSource | null, name: string): ImageDataset {
  if (set === null) throw new Error(`${name}: the config reads no such set`);
  if (isFullImageSet(set)) {
    throw new Error(`${name}: whole images of different sizes; these checks take CIFAR configs`);
  }
  return set;
}
