/**
 * Whole images of different sizes, for random crops taken as torchvision takes them from the
 * files: SDCLR's ImageNet pretraining and probe apply RandomResizedCrop to the whole decoded image,
 * not to a centre crop. Each image is kept with its longer side shrunk to at most `maxSide`
 * (Pillow's antialiased bilinear), so memory is bounded by 3·maxSide² bytes per image (about
 * 3·h·w). A batch is gathered into a canvas of the set's largest height × width, each image at
 * the top-left, with its size beside it: the augmentation graph reads only pixels inside each
 * image's crop window, so the padding never reaches a view.
 */

import type { ImageDataset } from "./dataset.ts";
import { readFileBytes } from "./files.ts";
import { decodeImage, type RgbImage } from "./image_decode.ts";
import type { ImageEntry } from "./image_folder.ts";
import { hwcToChw, resizeBilinear } from "./resize.ts";

/** Decoded whole images, each at its own size. */
export interface FullImageSet {
  kind: "full";
  /** pixels[i]: 3 × heights[i] × widths[i] bytes, CHW (RGB planes). */
  pixels: Uint8Array[];
  heights: Int32Array;
  widths: Int32Array;
  /** One class index per image, in [0, classes.length). */
  labels: Int32Array;
  count: number;
  /** Canvas of a batch: the largest image height and width. */
  height: number;
  width: number;
  /** The longer-side bound the images were shrunk to. */
  maxSide: number;
  classes: string[];
  /** Where it came from, for messages. */
  source: string;
}

/** The images a run reads: fixed-size (CIFAR, evaluation transforms) or whole images. */
export type ImageSource = ImageDataset | FullImageSet;

/** Whether a data set holds whole images of different sizes. */
export function isFullImageSet(set: ImageSource): set is FullImageSet {
  return (set as FullImageSet).kind === "full";
}

/** [width, height] of an image shrunk so its longer side is at most `maxSide` (aspect kept). */
export function boundedSize(width: number, height: number, maxSide: number): [number, number] {
  const longer = Math.max(width, height);
  if (longer <= maxSide) return [width, height];
  const scale = maxSide / longer;
  return [
    Math.max(1, Math.min(maxSide, Math.round(width * scale))),
    Math.max(1, Math.min(maxSide, Math.round(height * scale))),
  ];
}

/** One decoded image shrunk to the bound, as CHW bytes. */
export function boundedChw(image: RgbImage, maxSide: number): {
  data: Uint8Array;
  height: number;
  width: number;
} {
  const [w, h] = boundedSize(image.width, image.height, maxSide);
  const sized = w === image.width && h === image.height ? image : resizeBilinear(image, w, h);
  const data = new Uint8Array(3 * w * h);
  hwcToChw(sized, data);
  return { data, height: h, width: w };
}

/** Throws unless the arrays agree with count, the canvas holds every image and labels name classes. */
export function checkFullImages(set: FullImageSet): FullImageSet {
  const { count, source } = set;
  if (
    set.pixels.length !== count || set.heights.length !== count || set.widths.length !== count ||
    set.labels.length !== count
  ) {
    throw new Error(
      `${source}: ${set.pixels.length} images, ${set.heights.length} heights, ` +
        `${set.widths.length} widths and ${set.labels.length} labels for ${count} images`,
    );
  }
  for (let i = 0; i < count; i++) {
    const [h, w] = [set.heights[i], set.widths[i]];
    if (!(h >= 1 && w >= 1 && h <= set.height && w <= set.width)) {
      throw new Error(
        `${source}: image ${i} is ${w}×${h}, outside the ${set.width}×${set.height} canvas`,
      );
    }
    if (set.pixels[i].length !== 3 * h * w) {
      throw new Error(
        `${source}: image ${i} holds ${set.pixels[i].length} bytes, expected 3×${h}×${w}`,
      );
    }
    const label = set.labels[i];
    if (!(label >= 0 && label < set.classes.length)) {
      throw new Error(
        `${source}: label ${label} of image ${i} is outside [0, ${set.classes.length})`,
      );
    }
  }
  return set;
}

/** Builds a set from decoded images; the canvas is their largest height and width. */
export function fullImageSet(
  images: { data: Uint8Array; height: number; width: number }[],
  labels: Int32Array,
  classes: string[],
  maxSide: number,
  source: string,
): FullImageSet {
  if (images.length === 0) throw new Error(`${source}: no images`);
  const heights = Int32Array.from(images, (image) => image.height);
  const widths = Int32Array.from(images, (image) => image.width);
  return checkFullImages({
    kind: "full",
    pixels: images.map((image) => image.data),
    heights,
    widths,
    labels,
    count: images.length,
    height: heights.reduce((a, b) => Math.max(a, b), 0),
    width: widths.reduce((a, b) => Math.max(a, b), 0),
    maxSide,
    classes,
    source,
  });
}

/** Decodes `entries` whole, each shrunk to the `maxSide` bound. */
export async function decodeFullImages(
  entries: ImageEntry[],
  classes: string[],
  options: { maxSide: number; onProgress?: (done: number, total: number) => void },
  source: string,
): Promise<FullImageSet> {
  if (!(Number.isInteger(options.maxSide) && options.maxSide >= 1)) {
    throw new Error(`${source}: maxSide must be a positive integer, got ${options.maxSide}`);
  }
  const images = [];
  for (const [i, entry] of entries.entries()) {
    const name = entry.where === entry.path ? entry.path : `${entry.where}: ${entry.path}`;
    const image = decodeImage(await readFileBytes(entry.path, `image (${entry.where})`), name);
    images.push(boundedChw(image, options.maxSide));
    options.onProgress?.(i + 1, entries.length);
  }
  return fullImageSet(
    images,
    Int32Array.from(entries, (entry) => entry.label),
    classes,
    options.maxSide,
    source,
  );
}

/** The images at `indices` (in that order), sharing their pixels; `what` names the index source. */
export function subsetFullImages(
  set: FullImageSet,
  indices: ArrayLike<number>,
  what = "index list",
): FullImageSet {
  const picked = Array.from({ length: indices.length }, (_, i) => {
    const index = indices[i];
    if (!(Number.isInteger(index) && index >= 0 && index < set.count)) {
      throw new Error(
        `${what}: index ${index} at position ${i} is outside the ${set.count} images of ${set.source}`,
      );
    }
    return index;
  });
  return {
    ...set,
    pixels: picked.map((i) => set.pixels[i]),
    heights: Int32Array.from(picked, (i) => set.heights[i]),
    widths: Int32Array.from(picked, (i) => set.widths[i]),
    labels: Int32Array.from(picked, (i) => set.labels[i]),
    count: picked.length,
    source: `${set.source} [${what}]`,
  };
}

/**
 * Images at `indices` on one zero canvas [n, 3, set.height, set.width] (each at the top-left)
 * and their sizes: sizes[2k] = height, sizes[2k + 1] = width of image k.
 */
export function gatherCanvas(
  set: FullImageSet,
  indices: ArrayLike<number>,
): { images: Uint8Array; sizes: Int32Array; labels: Int32Array } {
  const { height: H, width: W } = set;
  const images = new Uint8Array(indices.length * 3 * H * W);
  const sizes = new Int32Array(2 * indices.length);
  const labels = new Int32Array(indices.length);
  for (let k = 0; k < indices.length; k++) {
    const i = indices[k];
    const [h, w] = [set.heights[i], set.widths[i]];
    const src = set.pixels[i];
    for (let c = 0; c < 3; c++) {
      for (let y = 0; y < h; y++) {
        const from = (c * h + y) * w;
        images.set(src.subarray(from, from + w), ((k * 3 + c) * H + y) * W);
      }
    }
    sizes[2 * k] = h;
    sizes[2 * k + 1] = w;
    labels[k] = set.labels[i];
  }
  return { images, sizes, labels };
}
