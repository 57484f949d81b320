/**
 * The data sets of an experiment, read as its config names them, all before the first step: the
 * pretraining set, the probes' train/val sets, the few-shot set, the test set and the class
 * counts of the groups' reference split. Only what the config reads is loaded.
 *
 * CIFAR images are 32x32 as stored. Image files (`list`, `imagefolder`) come in two forms:
 * evaluation sets as Resize(eval_resize) + CenterCrop(image_size), and sets that are cropped at
 * random (pretraining; the SDCLR probes' training sets with `augment`) as whole images with their
 * longer side at most `data.full_image_max_side` (src/data/full_images.ts), so that
 * RandomResizedCrop sees the whole image as it does in the original.
 */
import { isAbsolute, join } from "node:path";
import { type ExperimentConfig, splitReaders } from "../config/mod.ts";
import { findCifarFiles, loadCifar } from "../data/cifar.ts";
import { cachedDataset, cachedFullImages } from "../data/cache.ts";
import { checkDataset, classCounts, type ImageDataset, subsetDataset } from "../data/dataset.ts";
import {
  decodeFullImages,
  type FullImageSet,
  type ImageSource,
  subsetFullImages,
} from "../data/full_images.ts";
import {
  decodeImageEntries,
  type ImageEntry,
  largestLabel,
  listClassNames,
  listImageFolder,
  readImageList,
} from "../data/image_folder.ts";
import { readIndexNpy } from "../data/npy.ts";
import { ProgressBar } from "../util/progress.ts";
import type { DataCounts } from "./log.ts";
import {
  datasetFingerprint,
  fileChecksums,
  knownFingerprint,
  type SetFingerprint,
} from "../data/provenance.ts";

/** Every data set a run reads (null where the config reads none). */
export interface ExperimentData {
  /** Images the encoder is pretrained on (whole images for image files). */
  pretrain: ImageSource;
  /** Training set of the linear probe and the kNN bank, evaluation transform. */
  train: ImageDataset | null;
  /** The same set as whole images, for the SDCLR probe's RandomResizedCrop (image files, `augment`). */
  trainFull: FullImageSet | null;
  /** Validation set of the SDCLR probes. */
  val: ImageDataset | null;
  /** Training set of the few-shot probe (whole images for image files with `augment`). */
  fewShot: ImageSource | null;
  test: ImageDataset | null;
  /** Number of classes. */
  classes: number;
  /** The whole official training set as read (CIFAR; null for image files), for the provenance. */
  full: ImageDataset | null;
  /** Images per class in `evaluation.groups.reference_split` (null without groups). */
  groupCounts: number[] | null;
}

/** Images per data set (the log's `data_counts`). */
export function dataCounts(data: ExperimentData): DataCounts {
  return {
    pretrain: data.pretrain.count,
    train: (data.trainFull ?? data.train)?.count ?? null,
    val: data.val?.count ?? null,
    few_shot: data.fewShot?.count ?? null,
    test: data.test?.count ?? null,
  };
}

/** A data file named in the config: relative to `data.dir` unless absolute. */
export function dataPath(dir: string, file: string): string {
  return isAbsolute(file) ? file : join(dir, file);
}

/** The images of `base` listed by the .npy file `file` (relative to `dir`); null when no file is named. */
export async function split(
  base: ImageDataset,
  dir: string,
  file: string | null,
): Promise<ImageDataset | null> {
  if (file === null) return null;
  const path = dataPath(dir, file);
  return subsetDataset(base, await readIndexNpy(path, base.count), path);
}

/** In which form each set is needed (false: not read at all). */
interface Needs {
  train: boolean;
  trainFull: boolean;
  val: boolean;
  fewShot: "eval" | "full" | false;
  test: boolean;
}

function needs(config: ExperimentConfig): Needs {
  const { linear, few_shot: fewShot } = config.evaluation;
  const readers = splitReaders(config.evaluation);
  const images = config.data.dataset === "list" || config.data.dataset === "imagefolder";
  const sdclrAugmented = images && linear?.protocol === "sdclr" && linear.augment;
  return {
    train: readers.train_split.length > 0 && !(sdclrAugmented && config.evaluation.knn === null),
    trainFull: sdclrAugmented,
    val: readers.val_split.length > 0,
    fewShot: fewShot === null ? false : images && fewShot.augment ? "full" : "eval",
    test: readers.test_split.length > 0,
  };
}

/** Reads the data sets of a config (CIFAR, image folders or list files). */
export async function loadExperimentData(config: ExperimentConfig): Promise<ExperimentData> {
  switch (config.data.dataset) {
    case "cifar10":
    case "cifar100":
      return await loadCifarData(config, config.data.dataset);
    case "imagefolder":
      return await loadImageFolderData(config);
    case "list":
      return await loadListData(config);
  }
}

async function loadCifarData(
  config: ExperimentConfig,
  dataset: "cifar10" | "cifar100",
): Promise<ExperimentData> {
  const { data } = config;
  const need = needs(config);
  const trainAll = checkDataset(await loadCifar({ dataset, split: "train", dir: data.dir }));
  const officialTest = need.test
    ? await loadCifar({ dataset, split: "test", dir: data.dir })
    : null;
  const pick = async (file: string | null, wanted: boolean) =>
    wanted ? (await split(trainAll, data.dir, file)) ?? trainAll : null;
  const reference = config.evaluation.groups
    ? (await split(trainAll, data.dir, config.evaluation.groups.reference_split))!
    : null;
  const classes = data.num_classes ?? trainAll.classes.length;
  return {
    pretrain: (await pick(data.pretrain_split, true))!,
    train: await pick(data.train_split, need.train),
    trainFull: null,
    val: need.val ? await split(trainAll, data.dir, data.val_split) : null,
    fewShot: need.fewShot ? await split(trainAll, data.dir, data.few_shot_split) : null,
    test: officialTest && ((await split(officialTest, data.dir, data.test_split)) ?? officialTest),
    classes,
    full: trainAll,
    groupCounts: reference && classCounts(reference.labels, classes),
  };
}

/** Decodes `entries` in the evaluation form, through a cache file at `cache`. */
function decodeEval(
  config: ExperimentConfig,
  entries: ImageEntry[],
  classes: string[],
  source: string,
  cache: string,
): Promise<ImageDataset> {
  const { data } = config;
  const options = { resize: data.eval_resize ?? data.image_size, crop: data.image_size };
  return cachedDataset(cache, JSON.stringify({ source, ...options }), async () => {
    const bar = new ProgressBar(`decoding ${source}`, entries.length);
    const set = await decodeImageEntries(
      entries,
      classes,
      { ...options, onProgress: () => bar.tick() },
      source,
    );
    bar.finish();
    return set;
  });
}

/** Decodes `entries` as whole images (longer side ≤ data.full_image_max_side), through a cache file. */
function decodeFull(
  config: ExperimentConfig,
  entries: ImageEntry[],
  classes: string[],
  source: string,
  cache: string,
): Promise<FullImageSet> {
  const maxSide = config.data.full_image_max_side!;
  return cachedFullImages(cache, JSON.stringify({ source, maxSide }), async () => {
    const bar = new ProgressBar(`decoding ${source} (whole images)`, entries.length);
    const set = await decodeFullImages(
      entries,
      classes,
      { maxSide, onProgress: () => bar.tick() },
      source,
    );
    bar.finish();
    return set;
  });
}

/** Image folders: splits are .npy indices into the sorted `train/` listing, test_split into `test/`. */
async function loadImageFolderData(config: ExperimentConfig): Promise<ExperimentData> {
  const { data } = config;
  const need = needs(config);
  const trainRoot = dataPath(data.dir, "train");
  const testRoot = dataPath(data.dir, "test");
  const train = await listImageFolder(trainRoot);
  const indices = async (file: string | null, count: number) =>
    file === null
      ? null
      : { path: dataPath(data.dir, file), at: await readIndexNpy(dataPath(data.dir, file), count) };
  const classes = data.num_classes ?? train.classes.length;
  let evalAll: ImageDataset | null = null;
  let fullAll: FullImageSet | null = null;
  const evalSet = async (file: string | null) => {
    evalAll ??= await decodeEval(
      config,
      train.entries,
      train.classes,
      trainRoot,
      `${trainRoot}.cache`,
    );
    const picked = await indices(file, evalAll.count);
    return picked ? subsetDataset(evalAll, picked.at, picked.path) : evalAll;
  };
  const fullSet = async (file: string | null) => {
    fullAll ??= await decodeFull(
      config,
      train.entries,
      train.classes,
      trainRoot,
      `${trainRoot}.full.cache`,
    );
    const picked = await indices(file, fullAll.count);
    return picked ? subsetFullImages(fullAll, picked.at, picked.path) : fullAll;
  };
  let groupCounts: number[] | null = null;
  if (config.evaluation.groups) {
    const labels = Int32Array.from(train.entries, (entry) => entry.label);
    const picked = (await indices(config.evaluation.groups.reference_split, labels.length))!;
    groupCounts = classCounts(Array.from(picked.at, (i) => labels[i]), classes);
  }
  let test: ImageDataset | null = null;
  if (need.test) {
    const listed = await listImageFolder(testRoot);
    const all = await decodeEval(
      config,
      listed.entries,
      listed.classes,
      testRoot,
      `${testRoot}.cache`,
    );
    const picked = await indices(data.test_split, all.count);
    test = picked ? subsetDataset(all, picked.at, picked.path) : all;
  }
  return {
    pretrain: await fullSet(data.pretrain_split),
    train: need.train ? await evalSet(data.train_split) : null,
    trainFull: need.trainFull ? await fullSet(data.train_split) : null,
    val: need.val ? await evalSet(data.val_split) : null,
    fewShot: need.fewShot === "full"
      ? await fullSet(data.few_shot_split)
      : need.fewShot === "eval"
      ? await evalSet(data.few_shot_split)
      : null,
    test,
    classes,
    full: null,
    groupCounts,
  };
}

/** List files: every split is its own `relative/path label` list. */
async function loadListData(config: ExperimentConfig): Promise<ExperimentData> {
  const { data } = config;
  const need = needs(config);
  const lists = new Map<string, ImageEntry[]>();
  const entriesOf = async (file: string) => {
    const path = dataPath(data.dir, file);
    let entries = lists.get(path);
    if (!entries) {
      entries = await readImageList(path, data.dir);
      lists.set(path, entries);
    }
    return { path, entries };
  };
  // Every list the run reads is read (and every image checked to exist) before anything decodes.
  const files = [
    data.pretrain_split!,
    need.train || need.trainFull ? data.train_split! : null,
    need.val ? data.val_split! : null,
    need.fewShot ? data.few_shot_split! : null,
    need.test ? data.test_split! : null,
    config.evaluation.groups?.reference_split ?? null,
  ].filter((file): file is string => file !== null);
  for (const file of files) await entriesOf(file);
  const classes = data.num_classes ??
    Math.max(...[...lists.values()].map((entries) => largestLabel(entries))) + 1;
  const names = listClassNames([...lists.values()].flat(), classes);
  const evalList = async (file: string) => {
    const { path, entries } = await entriesOf(file);
    return await decodeEval(config, entries, names, path, `${path}.cache`);
  };
  const fullList = async (file: string) => {
    const { path, entries } = await entriesOf(file);
    return await decodeFull(config, entries, names, path, `${path}.full.cache`);
  };
  const reference = config.evaluation.groups?.reference_split;
  return {
    pretrain: await fullList(data.pretrain_split!),
    train: need.train ? await evalList(data.train_split!) : null,
    trainFull: need.trainFull ? await fullList(data.train_split!) : null,
    val: need.val ? await evalList(data.val_split!) : null,
    fewShot: need.fewShot === "full"
      ? await fullList(data.few_shot_split!)
      : need.fewShot === "eval"
      ? await evalList(data.few_shot_split!)
      : null,
    test: need.test ? await evalList(data.test_split!) : null,
    classes,
    full: null,
    groupCounts: reference
      ? classCounts((await entriesOf(reference)).entries.map((entry) => entry.label), classes)
      : null,
  };
}

/** Provenance of a run's data (the `data` entry of the run log). */
export interface DataProvenance {
  dir: string;
  /** SHA-256 of each CIFAR batch file read (other data sets: empty, see the fingerprints). */
  files: Record<string, string>;
  /**
   * Fingerprints of the decoded sets: the whole training set (CIFAR), the pretraining and
   * probe-training sets, the test set (null where the run reads none).
   */
  full: SetFingerprint | null;
  pretrain: SetFingerprint;
  train: SetFingerprint | null;
  test: SetFingerprint | null;
  /** What the whole training set is when its fingerprint is a known one, else null. */
  known: string | null;
}

/** Checksums of the data files and fingerprints of the decoded sets of a run. */
export async function experimentProvenance(
  config: ExperimentConfig,
  data: ExperimentData,
): Promise<DataProvenance> {
  const { dataset, dir } = config.data;
  let files: Record<string, string> = {};
  if (dataset === "cifar10" || dataset === "cifar100") {
    for (const split of ["train", "test"] as const) {
      if (split === "test" && data.test === null) continue;
      const found = await findCifarFiles({ dataset, split, dir });
      files = { ...files, ...(await fileChecksums(found.files)) };
    }
  }
  const full = data.full && datasetFingerprint(data.full);
  const fingerprint = (set: ImageSource | null) =>
    set === null ? null : set === data.full ? full : datasetFingerprint(set);
  return {
    dir,
    files,
    full,
    pretrain: fingerprint(data.pretrain)!,
    train: fingerprint(data.trainFull ?? data.train),
    test: fingerprint(data.test),
    known: full && knownFingerprint(full),
  };
}

/** One line for the console: the data folder and what its training set is. */
export function describeProvenance(p: DataProvenance): string {
  const set = p.full ?? p.pretrain;
  const what = p.known ??
    `not a data set this toolkit knows (training-set fingerprint ${set.sha256.slice(0, 12)}…)`;
  // A known set's description starts with its bundled folder; the folder is not said twice.
  return what.startsWith(`${p.dir}:`) ? `data: ${what}` : `data: ${p.dir}: ${what}`;
}
