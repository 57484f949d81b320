/**
 * CIFAR-10 and CIFAR-100 readers for both official layouts:
 * - binary (`cifar-10-batches-bin/data_batch_{1..5}.bin`, `test_batch.bin`;
 *   `cifar-100-binary/{train,test}.bin`), records of label byte(s) + 3072 CHW pixel bytes;
 *   `.bin.gz` is accepted too;
 * - python (`cifar-10-batches-py/data_batch_{1..5}`, `test_batch`; `cifar-100-python/{train,test}`),
 *   pickled dicts with `data` (N×3072 uint8) and `labels` / `fine_labels` / `coarse_labels`.
 * Records keep the official order, so SDCLR's index splits apply unchanged.
 */

import { checkDataset, type ImageDataset } from "./dataset.ts";
import { exists, readFileBytes, readMaybeGzipped } from "./files.ts";
import { asIntList, asStringList, asUint8Array, dictEntry, unpickle } from "./pickle.ts";
import { CIFAR100_COARSE_CLASSES, CIFAR100_FINE_CLASSES, CIFAR10_CLASSES } from "./cifar_names.ts";

/** Which CIFAR. */
export type CifarName = "cifar10" | "cifar100";
/** Which official part. */
export type CifarSplit = "train" | "test";
/** CIFAR-100 label granularity: 100 fine classes or 20 superclasses. */
export type CifarLabelKind = "fine" | "coarse";
/** Official file layout. */
export type CifarFormat = "binary" | "python";

const SIDE = 32;
const PIXELS = 3 * SIDE * SIDE;

/** Official folder names inside a data directory. */
export const CIFAR_FOLDERS: Record<CifarName, Record<CifarFormat, string>> = {
  cifar10: { binary: "cifar-10-batches-bin", python: "cifar-10-batches-py" },
  cifar100: { binary: "cifar-100-binary", python: "cifar-100-python" },
};

/** Options of {@link loadCifar}. */
export interface CifarOptions {
  dataset: CifarName;
  split: CifarSplit;
  /** A folder holding the official folder (e.g. `data/`), or that folder itself. */
  dir: string;
  /** CIFAR-100 only; default "fine". */
  labelKind?: CifarLabelKind;
  /** Default: binary if present, else python. */
  format?: CifarFormat;
}

/** Bytes per record of a binary CIFAR file: label byte(s) + 3072 pixels. */
export function cifarRecordBytes(dataset: CifarName): number {
  return (dataset === "cifar10" ? 1 : 2) + PIXELS;
}

function classNames(dataset: CifarName, labelKind: CifarLabelKind): string[] {
  if (dataset === "cifar10") return [...CIFAR10_CLASSES];
  return [...(labelKind === "coarse" ? CIFAR100_COARSE_CLASSES : CIFAR100_FINE_CLASSES)];
}

/**
 * Parses the records of one binary CIFAR file. Throws, naming `source` and the record, when the size
 * is not a whole number of records or a label is out of range.
 */
export function parseCifarBinary(
  bytes: Uint8Array,
  dataset: CifarName,
  source: string,
  labelKind: CifarLabelKind = "fine",
): { images: Uint8Array; labels: Int32Array } {
  const record = cifarRecordBytes(dataset);
  const count = Math.floor(bytes.length / record);
  if (bytes.length % record !== 0 || count === 0) {
    throw new Error(
      `${source}: ${bytes.length} bytes is not a whole number of ${record}-byte ${dataset} records ` +
        `(${count} records + ${
          bytes.length % record
        } bytes): truncated or not a ${dataset} binary file`,
    );
  }
  const labelBytes = record - PIXELS;
  // CIFAR-100 records are <coarse><fine><pixels>.
  const labelOffset = dataset === "cifar100" && labelKind === "fine" ? 1 : 0;
  const classCount = dataset === "cifar10" ? 10 : labelKind === "fine" ? 100 : 20;
  const images = new Uint8Array(count * PIXELS);
  const labels = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    const at = i * record;
    const label = bytes[at + labelOffset];
    if (label >= classCount) {
      throw new Error(`${source}: record ${i} has label ${label}, expected 0..${classCount - 1}`);
    }
    labels[i] = label;
    images.set(bytes.subarray(at + labelBytes, at + record), i * PIXELS);
  }
  return { images, labels };
}

/** Parses one python CIFAR batch (a pickled dict). */
export function parseCifarPickle(
  bytes: Uint8Array,
  dataset: CifarName,
  source: string,
  labelKind: CifarLabelKind = "fine",
): { images: Uint8Array; labels: Int32Array } {
  const batch = unpickle(bytes, source);
  const data = asUint8Array(dictEntry(batch, "data", source), `${source} 'data'`);
  if (data.shape.length !== 2 || data.shape[1] !== PIXELS || data.fortranOrder) {
    throw new Error(
      `${source}: 'data' has shape (${data.shape.join(", ")}), expected (N, ${PIXELS}) in C order`,
    );
  }
  const key = dataset === "cifar10" ? "labels" : `${labelKind}_labels`;
  const labels = asIntList(dictEntry(batch, key, source), `${source} '${key}'`);
  if (labels.length !== data.shape[0]) {
    throw new Error(`${source}: ${labels.length} labels for ${data.shape[0]} images`);
  }
  const classCount = dataset === "cifar10" ? 10 : labelKind === "fine" ? 100 : 20;
  const bad = labels.findIndex((label) => label < 0 || label >= classCount);
  if (bad >= 0) {
    throw new Error(
      `${source}: record ${bad} has label ${labels[bad]}, expected 0..${classCount - 1}`,
    );
  }
  return { images: data.data, labels };
}

async function findFile(folder: string, stem: string): Promise<string | undefined> {
  for (const name of [stem, `${stem}.gz`]) {
    if (await exists(`${folder}/${name}`)) return `${folder}/${name}`;
  }
  return undefined;
}

/** The batch files of a split in official order (data_batch_1.. must be contiguous). */
async function splitFiles(
  folder: string,
  dataset: CifarName,
  split: CifarSplit,
  format: CifarFormat,
): Promise<string[]> {
  const ext = format === "binary" ? ".bin" : "";
  if (dataset === "cifar100") {
    const file = await findFile(folder, `${split}${ext}`);
    return file ? [file] : [];
  }
  if (split === "test") {
    const file = await findFile(folder, `test_batch${ext}`);
    return file ? [file] : [];
  }
  const files: string[] = [];
  for (let k = 1; k <= 5; k++) {
    const file = await findFile(folder, `data_batch_${k}${ext}`);
    if (file && files.length < k - 1) {
      throw new Error(
        `${folder}: data_batch_${files.length + 1}${ext} is missing but ${file} is present`,
      );
    }
    if (file) files.push(file);
  }
  return files;
}

/** Thrown by {@link findCifarFiles} when no folder it looks in holds the split's files. */
export class CifarFilesNotFound extends Error {}

/** Locates the official folder and batch files for `options` (throws saying where it looked). */
export async function findCifarFiles(
  options: CifarOptions,
): Promise<{ folder: string; format: CifarFormat; files: string[] }> {
  const formats: CifarFormat[] = options.format ? [options.format] : ["binary", "python"];
  const looked: string[] = [];
  for (const format of formats) {
    for (
      const folder of [`${options.dir}/${CIFAR_FOLDERS[options.dataset][format]}`, options.dir]
    ) {
      looked.push(`${folder} (${format})`);
      if (!(await exists(folder))) continue;
      const files = await splitFiles(folder, options.dataset, options.split, format);
      if (files.length) return { folder, format, files };
    }
  }
  throw new CifarFilesNotFound(
    `no ${options.dataset} ${options.split} files found; looked in ${looked.join(", ")}. ` +
      `Run \`deno run -A mod.ts data fetch ${options.dataset} --dir ${options.dir}\` ` +
      `or unpack the official archive there.`,
  );
}

async function readClassNames(
  folder: string,
  format: CifarFormat,
  dataset: CifarName,
  labelKind: CifarLabelKind,
): Promise<string[]> {
  const fallback = classNames(dataset, labelKind);
  if (format === "binary") {
    const name = dataset === "cifar10" ? "batches.meta.txt" : `${labelKind}_label_names.txt`;
    if (!(await exists(`${folder}/${name}`))) return fallback;
    const text = new TextDecoder().decode(
      await readFileBytes(`${folder}/${name}`, "CIFAR class names"),
    );
    const names = text.split("\n").map((line) => line.trim()).filter((line) => line.length);
    if (names.length !== fallback.length) {
      throw new Error(
        `${folder}/${name}: ${names.length} class names, expected ${fallback.length}`,
      );
    }
    return names;
  }
  const metaName = dataset === "cifar10" ? "batches.meta" : "meta";
  const path = `${folder}/${metaName}`;
  if (!(await exists(path))) return fallback;
  const meta = unpickle(await readFileBytes(path, "CIFAR meta"), path);
  const key = dataset === "cifar10" ? "label_names" : `${labelKind}_label_names`;
  const names = asStringList(dictEntry(meta, key, path), `${path} '${key}'`);
  if (names.length !== fallback.length) {
    throw new Error(`${path}: ${names.length} class names, expected ${fallback.length}`);
  }
  return names;
}

/** Loads a CIFAR split (all its batch files, official order) from either official layout. */
export async function loadCifar(options: CifarOptions): Promise<ImageDataset> {
  const labelKind = options.labelKind ?? "fine";
  const { folder, format, files } = await findCifarFiles(options);
  const parts = [];
  for (const file of files) {
    const bytes = await readMaybeGzipped(file, "CIFAR batch");
    parts.push(
      format === "binary"
        ? parseCifarBinary(bytes, options.dataset, file, labelKind)
        : parseCifarPickle(bytes, options.dataset, file, labelKind),
    );
  }
  const count = parts.reduce((sum, part) => sum + part.labels.length, 0);
  const images = new Uint8Array(count * PIXELS);
  const labels = new Int32Array(count);
  let at = 0;
  for (const part of parts) {
    images.set(part.images, at * PIXELS);
    labels.set(part.labels, at);
    at += part.labels.length;
  }
  return checkDataset({
    images,
    labels,
    count,
    height: SIDE,
    width: SIDE,
    classes: await readClassNames(folder, format, options.dataset, labelKind),
    source: files.length === 1 ? files[0] : `${folder} (${files.length} ${options.split} batches)`,
  });
}
