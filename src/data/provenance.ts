/**
 * Where a run's pixels came from: SHA-256 of the data files read and a
 * fingerprint of the decoded arrays, so that a result obtained on the CIFAR-10
 * rebuilt from JPEGs (`shared/datasets/make-cifar10-bin.py`, lossy) is never
 * taken for one on the official archive. Fingerprints known to this toolkit
 * are named in the log.
 */
import { createHash } from "node:crypto";
import { basename } from "node:path";
import { type ImageSource, isFullImageSet } from "./full_images.ts";
import { readFileBytes } from "./files.ts";

/** The decoded form of a data set, reduced to one hash. */
export interface SetFingerprint {
  count: number;
  /**
   * SHA-256 (hex) over the pixels as stored (uint8, CHW per image, images in
   * order) followed by the labels as int32 little-endian.
   */
  sha256: string;
}

/**
 * Fingerprint of a decoded data set (see {@link SetFingerprint}); whole images of
 * different sizes are hashed one after the other, each with its height and width.
 */
export function datasetFingerprint(dataset: ImageSource): SetFingerprint {
  const hash = createHash("sha256");
  if (isFullImageSet(dataset)) {
    dataset.pixels.forEach((pixels, i) => {
      hash.update(new Uint8Array(Int32Array.of(dataset.heights[i], dataset.widths[i]).buffer));
      hash.update(pixels);
    });
  } else {
    hash.update(dataset.images);
  }
  const labels = new Uint8Array(4 * dataset.labels.length);
  const view = new DataView(labels.buffer);
  dataset.labels.forEach((label, i) => view.setInt32(4 * i, label, true));
  hash.update(labels);
  return { count: dataset.count, sha256: hash.digest("hex") };
}

/** SHA-256 (hex) of each file, keyed by file name. */
export async function fileChecksums(paths: readonly string[]): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const path of paths) {
    const bytes = await readFileBytes(path, "data file");
    out[basename(path)] = createHash("sha256").update(bytes).digest("hex");
  }
  return out;
}

/**
 * Train-set fingerprints this toolkit knows, with what they are. The
 * official archive's decoded arrays are not listed: no machine this was built
 * on holds it, and a guess would be worse than "unknown".
 */
export const KNOWN_TRAIN_FINGERPRINTS: Readonly<Record<string, string>> = {
  "6809bcaaec3d00d610b84873a6b57cb80262df5b29134dfb7afbdbf98ffad815":
    "CIFAR-10 rebuilt from JPEGs by shared/datasets/make-cifar10-bin.py (lossy; not the official archive)",
  "22e5e69da9167cc9c585e861f8e8ecb137aeb07200e059ae5adc0ac9a436b51a":
    "data/cifar10-mini: the first 2,000 records of the JPEG-rebuilt data_batch_1 (not the official archive)",
};

/** What a known train-set fingerprint is, or null. */
export function knownFingerprint(fingerprint: SetFingerprint): string | null {
  return KNOWN_TRAIN_FINGERPRINTS[fingerprint.sha256] ?? null;
}
