/**
 * Epoch iteration over a data set: one seeded permutation per epoch, derived from (seed, epoch)
 * only, so a run resumed at (epoch, step) sees exactly the batches it would have seen.
 */

import { Rng } from "../util/rng.ts";
import { imageBytes, type ImageDataset } from "./dataset.ts";

/** Options of {@link EpochLoader}. */
export interface EpochLoaderOptions {
  dataset: ImageDataset;
  batchSize: number;
  seed: number;
  /** The images to iterate (e.g. a split's indices); default: all. */
  indices?: ArrayLike<number>;
  /** Default true; false keeps `indices` order every epoch. */
  shuffle?: boolean;
  /** Drop the last incomplete batch (default false). */
  dropLast?: boolean;
}

/** One batch: images gathered into N×3×H×W uint8 (NCHW) with their labels and data-set indices. */
export interface Batch {
  epoch: number;
  /** Batch number within the epoch. */
  step: number;
  indices: Int32Array;
  images: Uint8Array;
  labels: Int32Array;
}

/** Batches of a data set, reshuffled every epoch from (seed, epoch). */
export class EpochLoader {
  readonly dataset: ImageDataset;
  readonly batchSize: number;
  readonly seed: number;
  readonly shuffle: boolean;
  readonly dropLast: boolean;
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
        `EpochLoader: ${this.indices.length} images make no batch of ${batchSize} with dropLast`,
      );
    }
  }

  /** Number of images iterated per epoch. */
  get size(): number {
    return this.indices.length;
  }

  /** Number of batches per epoch. */
  get batchesPerEpoch(): number {
    const n = this.indices.length;
    return this.dropLast ? Math.floor(n / this.batchSize) : Math.ceil(n / this.batchSize);
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

  /** Gathers images and labels of `indices` into one NCHW batch. */
  gather(indices: Int32Array): { images: Uint8Array; labels: Int32Array } {
    const size = imageBytes(this.dataset);
    const images = new Uint8Array(indices.length * size);
    const labels = new Int32Array(indices.length);
    for (let i = 0; i < indices.length; i++) {
      const index = indices[i];
      images.set(this.dataset.images.subarray(index * size, (index + 1) * size), i * size);
      labels[i] = this.dataset.labels[index];
    }
    return { images, labels };
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
