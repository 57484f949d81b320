/**
 * Epoch iteration over a data set: one seeded permutation per epoch, derived from (seed, epoch)
 * only, so a run resumed at (epoch, step) sees exactly the batches it would have seen.
 */

import { Rng } from "../util/rng.ts";
import { imageBytes } from "./dataset.ts";
import { gatherCanvas, type ImageSource, isFullImageSet } from "./full_images.ts";

/**
 * Batches per epoch of `size` images: a last partial batch is kept unless `dropLast`, or unless it
 * is smaller than `minLastBatch` (contrastive learning needs two images: a last batch of one is
 * dropped, a different image each epoch).
 */
export function batchCount(
  size: number,
  batchSize: number,
  dropLast: boolean,
  minLastBatch = 1,
): number {
  const full = Math.floor(size / batchSize);
  const rest = size - full * batchSize;
  return full + (!dropLast && rest >= Math.max(1, minLastBatch) ? 1 : 0);
}

/** Options of {@link EpochLoader}. */
export interface EpochLoaderOptions {
  /** Fixed-size images, or whole images gathered onto a canvas (see full_images.ts). */
  dataset: ImageSource;
  batchSize: number;
  seed: number;
  /** The images to iterate (e.g. a split's indices); default: all. */
  indices?: ArrayLike<number>;
  /** Default true; false keeps `indices` order every epoch. */
  shuffle?: boolean;
  /** Drop the last incomplete batch (default false). */
  dropLast?: boolean;
  /** Drop a last incomplete batch smaller than this (default 1: keep any). */
  minLastBatch?: number;
}

/** One batch: images gathered into N×3×H×W uint8 (NCHW) with their labels and data-set indices. */
export interface Batch {
  epoch: number;
  /** Batch number within the epoch. */
  step: number;
  indices: Int32Array;
  images: Uint8Array;
  labels: Int32Array;
  /** Whole images: [height, width] of image k at 2k, 2k + 1 (each at the canvas' top-left); else null. */
  sizes: Int32Array | null;
}

/** Batches of a data set, reshuffled every epoch from (seed, epoch). */
export class EpochLoader {
  readonly dataset: ImageSource;
  readonly batchSize: number;
  readonly seed: number;
  readonly shuffle: boolean;
  readonly dropLast: boolean;
  readonly minLastBatch: number;
  /** Data-set indices iterated each epoch (before shuffling). */
  readonly indices: Int32Array;

  constructor(options: EpochLoaderOptions) {
    const { dataset, batchSize } = options;
    if (!(Number.isInteger(batchSize) && batchSize > 0)) {
      throw new Error(`EpochLoader: batchSize must be a positive integer, got ${batchSize}`);
    }
    this.dataset = dataset;
    this.batchSize = batchSize;
    this.seed = options.seed;
    this.shuffle = options.shuffle ?? true;
    this.dropLast = options.dropLast ?? false;
    this.minLastBatch = options.minLastBatch ?? 1;
    this.indices = options.indices
      ? Int32Array.from(options.indices)
      : Int32Array.from({ length: dataset.count }, (_, i) => i);
    this.indices.forEach((index, i) => {
      if (!(index >= 0 && index < dataset.count)) {
        throw new Error(
          `EpochLoader: index ${index} at position ${i} is outside the ${dataset.count} images of ${dataset.source}`,
        );
      }
    });
    if (this.batchesPerEpoch === 0) {
      throw new Error(
        `EpochLoader: ${this.indices.length} images make no batch of ${batchSize}` +
          (this.dropLast ? " with dropLast" : ` of at least ${this.minLastBatch}`),
      );
    }
  }

  /** Number of images iterated per epoch. */
  get size(): number {
    return this.indices.length;
  }

  /** Number of batches per epoch. */
  get batchesPerEpoch(): number {
    return batchCount(this.indices.length, this.batchSize, this.dropLast, this.minLastBatch);
  }

  /** Data-set indices in the order of `epoch`. */
  order(epoch: number): Int32Array {
    if (!this.shuffle) return this.indices.slice();
    const permutation = new Rng(this.seed, `loader/epoch-${epoch}`).permutation(
      this.indices.length,
    );
    return Int32Array.from(permutation, (k) => this.indices[k]);
  }

  /** Data-set indices of every batch of `epoch`. */
  batchIndices(epoch: number): Int32Array[] {
    const order = this.order(epoch);
    return Array.from(
      { length: this.batchesPerEpoch },
      (_, step) => order.slice(step * this.batchSize, (step + 1) * this.batchSize),
    );
  }

  /** Gathers images and labels of `indices` into one NCHW batch (whole images: onto the canvas). */
  gather(
    indices: Int32Array,
  ): { images: Uint8Array; labels: Int32Array; sizes: Int32Array | null } {
    if (isFullImageSet(this.dataset)) return gatherCanvas(this.dataset, indices);
    const size = imageBytes(this.dataset);
    const images = new Uint8Array(indices.length * size);
    const labels = new Int32Array(indices.length);
    for (let i = 0; i < indices.length; i++) {
      const index = indices[i];
      images.set(this.dataset.images.subarray(index * size, (index + 1) * size), i * size);
      labels[i] = this.dataset.labels[index];
    }
    return { images, labels, sizes: null };
  }

  /**
   * Batches of `epoch` from `startStep` on (resume). The next batch is gathered in a macrotask
   * while the caller awaits its own work (e.g. an ONNX Runtime run) on the current one.
   */
  async *epoch(epoch: number, startStep = 0): AsyncGenerator<Batch> {
    const all = this.batchIndices(epoch);
    const make = (step: number) =>
      new Promise<Batch>((resolve, reject) =>
        setTimeout(() => {
          try {
            resolve({ epoch, step, indices: all[step], ...this.gather(all[step]) });
          } catch (error) {
            reject(error);
          }
        }, 0)
      );
    let next = startStep < all.length ? make(startStep) : undefined;
    for (let step = startStep; step < all.length; step++) {
      const batch = await next!;
      next = step + 1 < all.length ? make(step + 1) : undefined;
      yield batch;
    }
  }
}
