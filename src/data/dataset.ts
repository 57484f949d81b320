/** The in-memory form of every image data set: decoded uint8 pixels, CHW per image. */

/** Decoded images and labels. Image `i` is `images[i*3*H*W .. (i+1)*3*H*W)` in CHW order (RGB planes). */
export interface ImageDataset {
  /** count × 3 × height × width bytes, CHW per image. */
  images: Uint8Array;
  /** One class index per image, in [0, classes.length). */
  labels: Int32Array;
  count: number;
  height: number;
  width: number;
  /** Class names; label k is classes[k]. */
  classes: string[];
  /** Where it came from (files or folder), for messages. */
  source: string;
}

/** Bytes of one image of the data set (3 · height · width). */
export function imageBytes(dataset: Pick<ImageDataset, "height" | "width">): number {
  return 3 * dataset.height * dataset.width;
}

/** Throws unless the arrays agree with count/height/width and every label names a class. */
export function checkDataset(dataset: ImageDataset): ImageDataset {
  const { count, source } = dataset;
  const expected = count * imageBytes(dataset);
  if (dataset.images.length !== expected) {
    throw new Error(
      `${source}: images hold ${dataset.images.length} bytes, expected ${count}×3×${dataset.height}×${dataset.width} = ${expected}`,
    );
  }
  if (dataset.labels.length !== count) {
    throw new Error(`${source}: ${dataset.labels.length} labels for ${count} images`);
  }
  const classCount = dataset.classes.length;
  for (let i = 0; i < count; i++) {
    const label = dataset.labels[i];
    if (!(label >= 0 && label < classCount)) {
      throw new Error(`${source}: label ${label} of image ${i} is outside [0, ${classCount})`);
    }
  }
  return dataset;
}

/** Images per class: counts[k] = number of labels equal to k. */
export function classCounts(labels: ArrayLike<number>, classCount: number): number[] {
  const counts = new Array<number>(classCount).fill(0);
  for (let i = 0; i < labels.length; i++) counts[labels[i]]++;
  return counts;
}

/**
 * The images at `indices` (in that order) as a new data set, e.g. an SDCLR split of the training set.
 * `what` names the index source (a .npy file) in the error for an index out of range.
 */
export function subsetDataset(
  dataset: ImageDataset,
  indices: ArrayLike<number>,
  what = "index list",
): ImageDataset {
  const size = imageBytes(dataset);
  const images = new Uint8Array(indices.length * size);
  const labels = new Int32Array(indices.length);
  for (let i = 0; i < indices.length; i++) {
    const index = indices[i];
    if (!(Number.isInteger(index) && index >= 0 && index < dataset.count)) {
      throw new Error(
        `${what}: index ${index} at position ${i} is outside the ${dataset.count} images of ${dataset.source}`,
      );
    }
    images.set(dataset.images.subarray(index * size, (index + 1) * size), i * size);
    labels[i] = dataset.labels[index];
  }
  return {
    images,
    labels,
    count: indices.length,
    height: dataset.height,
    width: dataset.width,
    classes: dataset.classes,
    source: `${dataset.source} [${what}]`,
  };
}
