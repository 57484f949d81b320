/**
 * The data sets of an experiment, read as its config names them: the
 * pretraining set (a split of the training set when one is given), the probe's
 * train/val sets, the few-shot set and the test set.
 */
import { isAbsolute, join } from "node:path";
import type { ExperimentConfig } from "../config/mod.ts";
import { findCifarFiles, loadCifar } from "../data/cifar.ts";
import { cachedDataset } from "../data/cache.ts";
import { checkDataset, type ImageDataset, subsetDataset } from "../data/dataset.ts";
import { loadImageFolder, loadImageList } from "../data/image_folder.ts";
import { readIndexNpy } from "../data/npy.ts";
import {
  datasetFingerprint,
  fileChecksums,
  knownFingerprint,
  type SetFingerprint,
} from "../data/provenance.ts";

/** Every data set a run may need (null where the config names none). */
export interface ExperimentData {
  /** The whole training set (split files index into it). */
  full: ImageDataset;
  /** Images the encoder is pretrained on. */
  pretrain: ImageDataset;
  /** Training set of the linear probe (the whole training set unless a split is named). */
  train: ImageDataset;
  val: ImageDataset | null;
  fewShot: ImageDataset | null;
  test: ImageDataset;
  /** Number of classes. */
  classes: number;
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

async function listSet(
  config: ExperimentConfig,
  file: string | null,
): Promise<ImageDataset | null> {
  if (file === null) return null;
  const { data } = config;
  const path = dataPath(data.dir, file);
  const options = {
    resize: data.eval_resize ?? data.image_size,
    crop: data.image_size,
    classCount: data.num_classes ?? undefined,
  };
  const key = JSON.stringify({ path, ...options });
  return await cachedDataset(`${path}.cache`, key, () => loadImageList(path, data.dir, options));
}

/** Reads the data sets of a config (CIFAR, image folders or list files). */
export async function loadExperimentData(config: ExperimentConfig): Promise<ExperimentData> {
  const { data } = config;
  let trainAll: ImageDataset;
  let test: ImageDataset;
  if (data.dataset === "cifar10" || data.dataset === "cifar100") {
    trainAll = await loadCifar({ dataset: data.dataset, split: "train", dir: data.dir });
    test = await loadCifar({ dataset: data.dataset, split: "test", dir: data.dir });
  } else if (data.dataset === "imagefolder") {
    const options = { resize: data.eval_resize ?? data.image_size, crop: data.image_size };
    const load = (part: string) => {
      const root = dataPath(data.dir, part);
      return cachedDataset(
        `${root}.cache`,
        JSON.stringify({ root, ...options }),
        () => loadImageFolder(root, options),
      );
    };
    trainAll = await load("train");
    test = await load(data.test_split ?? "test");
  } else {
    trainAll = (await listSet(config, data.pretrain_split))!;
    test = (await listSet(config, data.test_split))!;
    const train = (await listSet(config, data.train_split)) ?? trainAll;
    return {
      full: trainAll,
      pretrain: trainAll,
      train,
      val: await listSet(config, data.val_split),
      fewShot: await listSet(config, data.few_shot_split),
      test,
      classes: data.num_classes ?? train.classes.length,
    };
  }
  checkDataset(trainAll);
  return {
    full: trainAll,
    pretrain: (await split(trainAll, data.dir, data.pretrain_split)) ?? trainAll,
    train: (await split(trainAll, data.dir, data.train_split)) ?? trainAll,
    val: await split(trainAll, data.dir, data.val_split),
    fewShot: await split(trainAll, data.dir, data.few_shot_split),
    test,
    classes: data.num_classes ?? trainAll.classes.length,
  };
}

/** Provenance of a run's data (the `data` entry of the run log). */
export interface DataProvenance {
  dir: string;
  /** SHA-256 of each CIFAR batch file read (other data sets: empty, see the fingerprints). */
  files: Record<string, string>;
  /** Fingerprints of the decoded sets: the whole training set, the pretraining and probe-training sets, the test set. */
  full: SetFingerprint;
  pretrain: SetFingerprint;
  train: SetFingerprint;
  test: SetFingerprint;
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
      const found = await findCifarFiles({ dataset, split, dir });
      files = { ...files, ...(await fileChecksums(found.files)) };
    }
  }
  const full = datasetFingerprint(data.full);
  return {
    dir,
    files,
    full,
    pretrain: data.pretrain === data.full ? full : datasetFingerprint(data.pretrain),
    train: data.train === data.full ? full : datasetFingerprint(data.train),
    test: datasetFingerprint(data.test),
    known: knownFingerprint(full),
  };
}

/** One line for the console: the data folder and what its training set is. */
export function describeProvenance(p: DataProvenance): string {
  const what = p.known ??
    `not a data set this toolkit knows (training-set fingerprint ${p.full.sha256.slice(0, 12)}…)`;
  return `data: ${p.dir}: ${what}`;
}
