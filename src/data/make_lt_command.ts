/**
 * `data make-lt`: writes a long-tail split and its balanced / few-shot companions as SDCLR-style
 * int64 `.npy` files.
 *
 *   data make-lt --dataset cifar10 --imbalance 100 --seed S --out DIR
 *                [--data-dir D] [--labels FILE] [--val valIdxList.npy] [--n-max N] [--val-seed P]
 *
 * Labels come from the CIFAR training set in --data-dir (default `data`) or from --labels (`.npy`,
 * `.txt` with one label per line, or raw bytes, one per image). The split draws from every
 * training image outside the validation list: SDCLR's valIdxList with --val, otherwise a balanced
 * train/val split made here (seeded by --val-seed, default 0, so every split seed shares it) and
 * written as trainIdxList/valIdxList beside the split.
 */

import { parseArgs } from "node:util";
import { loadCifar } from "./cifar.ts";
import { readFileBytes } from "./files.ts";
import { complement, makeLongTailSplit, makeTrainValSplit } from "./long_tail.ts";
import { readIndexNpy, readNpy, writeInt64Npy } from "./npy.ts";

/** Per-dataset sizes of SDCLR's splits. */
export const LONG_TAIL_PRESETS = {
  cifar10: { classes: 10, trainPerClass: 4500, valPerClass: 500, prefix: "" },
  cifar100: { classes: 100, trainPerClass: 400, valPerClass: 50, prefix: "cifar100_" },
} as const;

/** What {@link makeLtCommand} wrote. */
export interface MakeLtResult {
  files: string[];
  counts: number[];
  classOrder: number[];
  sizes: { longTail: number; balanced: number; fewShot: number };
}

/** Reads labels from `.npy`, `.txt` (whitespace-separated ints) or raw bytes (one per image). */
export async function readLabelsFile(path: string): Promise<Int32Array> {
  if (path.endsWith(".npy")) {
    const array = await readNpy(path);
    if (array.shape.length !== 1 || !/^[<>|=][iu][1248]$/.test(array.descr)) {
      throw new Error(
        `${path}: expected a 1-d integer label array, found ${array.descr} (${array.shape})`,
      );
    }
    return Int32Array.from(array.data as ArrayLike<number | bigint>, (v) => Number(v));
  }
  const bytes = await readFileBytes(path, "labels file");
  if (!path.endsWith(".txt")) return Int32Array.from(bytes);
  const words = new TextDecoder().decode(bytes).split(/\s+/).filter((w) => w.length);
  return Int32Array.from(words, (word, i) => {
    if (!/^\d+$/.test(word)) {
      throw new Error(`${path}: label ${i + 1} is '${word}', expected an integer`);
    }
    return Number(word);
  });
}

function integerOption(value: string | undefined, name: string, fallback?: number): number {
  if (value === undefined) {
    if (fallback === undefined) throw new Error(`data make-lt: --${name} is required`);
    return fallback;
  }
  if (!/^-?\d+$/.test(value)) {
    throw new Error(`data make-lt: --${name} must be an integer, got '${value}'`);
  }
  return Number(value);
}

/** Runs `data make-lt` with command-line `args` (without the subcommand words). */
export async function makeLtCommand(args: string[]): Promise<MakeLtResult> {
  const { values } = parseArgs({
    args,
    options: {
      dataset: { type: "string" },
      imbalance: { type: "string" },
      seed: { type: "string" },
      out: { type: "string" },
      "data-dir": { type: "string", default: "data" },
      labels: { type: "string" },
      val: { type: "string" },
      "n-max": { type: "string" },
      "val-seed": { type: "string" },
    },
    strict: true,
  });
  const dataset = values.dataset;
  if (dataset !== "cifar10" && dataset !== "cifar100") {
    throw new Error(`data make-lt: --dataset must be cifar10 or cifar100, got '${dataset ?? ""}'`);
  }
  if (!values.out) throw new Error("data make-lt: --out DIR is required");
  const imbalance = Number(values.imbalance);
  if (!(imbalance >= 1)) {
    throw new Error(
      `data make-lt: --imbalance must be a number >= 1, got '${values.imbalance ?? ""}'`,
    );
  }
  const seed = integerOption(values.seed, "seed");
  const preset = LONG_TAIL_PRESETS[dataset];

  const labels = values.labels
    ? await readLabelsFile(values.labels)
    : (await loadCifar({ dataset, split: "train", dir: values["data-dir"]! })).labels;
  const outputs: [string, ArrayLike<number>][] = [];
  let pool: ArrayLike<number>;
  if (values.val) {
    pool = complement(labels.length, await readIndexNpy(values.val, labels.length));
  } else {
    const split = makeTrainValSplit({
      labels,
      classes: preset.classes,
      trainPerClass: preset.trainPerClass,
      valPerClass: preset.valPerClass,
      seed: integerOption(values["val-seed"], "val-seed", 0),
    });
    pool = split.pool;
    outputs.push([`${preset.prefix}trainIdxList.npy`, split.train], [
      `${preset.prefix}valIdxList.npy`,
      split.val,
    ]);
  }
  const split = makeLongTailSplit({
    labels,
    classes: preset.classes,
    imbalance,
    seed,
    pool,
    nMax: values["n-max"] === undefined ? undefined : integerOption(values["n-max"], "n-max"),
  });
  const stem = `${preset.prefix}split${seed}`;
  outputs.push(
    [`${stem}_D_i.npy`, split.longTail],
    [`${stem}_D_b.npy`, split.balanced],
    [`${stem}_S_b.npy`, split.fewShot],
  );
  await Deno.mkdir(values.out, { recursive: true });
  const files: string[] = [];
  for (const [name, indices] of outputs) {
    const path = `${values.out}/${name}`;
    await writeInt64Npy(path, indices);
    files.push(path);
  }
  console.log(
    `${dataset} long-tail split seed ${seed}, imbalance ${imbalance}: D_i ${split.longTail.length} ` +
      `(per class ${
        split.counts.join(" ")
      }), D_b ${split.balanced.length}, S_b ${split.fewShot.length}`,
  );
  for (const file of files) console.log(`wrote ${file}`);
  return {
    files,
    counts: split.counts,
    classOrder: Array.from(split.classOrder),
    sizes: {
      longTail: split.longTail.length,
      balanced: split.balanced.length,
      fewShot: split.fewShot.length,
    },
  };
}
