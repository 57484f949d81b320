/**
 * Decoded-data-set caches, so an image folder or list is decoded once: fixed-size sets (below)
 * and whole images of different sizes ({@link saveFullImageCache}). Fixed-size sets: one file
 * holding the uint8 tensors. Layout: 8-byte magic `CLDSET01`, uint32 LE header length, UTF-8 JSON header
 * ({count, height, width, classes, source, key}), zero padding to 8 bytes, int32 LE labels, then
 * count·3·H·W image bytes (CHW per image). Written atomically (temporary file + rename).
 */

import { checkDataset, imageBytes, type ImageDataset } from "./dataset.ts";
import { checkFullImages, type FullImageSet } from "./full_images.ts";
import { exists, readFileBytes } from "./files.ts";
import { writeFileAtomic } from "../util/atomic.ts";

const MAGIC = "CLDSET01";

interface CacheHeader {
  count: number;
  height: number;
  width: number;
  classes: string[];
  source: string;
  key: string;
}

/** Writes `dataset` to `path`; `key` identifies what it was decoded from (checked on load). */
export async function saveDatasetCache(
  path: string,
  dataset: ImageDataset,
  key = "",
): Promise<void> {
  const header: CacheHeader = {
    count: dataset.count,
    height: dataset.height,
    width: dataset.width,
    classes: dataset.classes,
    source: dataset.source,
    key,
  };
  const json = new TextEncoder().encode(JSON.stringify(header));
  const headerEnd = 12 + json.length;
  const padded = headerEnd + ((8 - (headerEnd % 8)) % 8);
  const head = new Uint8Array(padded + 4 * dataset.count);
  head.set(new TextEncoder().encode(MAGIC));
  const view = new DataView(head.buffer);
  view.setUint32(8, json.length, true);
  head.set(json, 12);
  for (let i = 0; i < dataset.count; i++) view.setInt32(padded + 4 * i, dataset.labels[i], true);
  await writeFileAtomic(path, [head, dataset.images]);
}

/** Reads a cache file written by {@link saveDatasetCache}; throws naming the file if it is damaged. */
export async function loadDatasetCache(
  path: string,
): Promise<{ dataset: ImageDataset; key: string }> {
  const bytes = await readFileBytes(path, "data set cache");
  const fail = (what: string): never => {
    throw new Error(`${path}: damaged data set cache (${what}); delete it to decode again`);
  };
  if (bytes.length < 12 || new TextDecoder().decode(bytes.subarray(0, 8)) !== MAGIC) {
    fail("bad magic");
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const jsonLength = view.getUint32(8, true);
  if (12 + jsonLength > bytes.length) fail("header runs past the end");
  let header: CacheHeader;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(12, 12 + jsonLength)));
  } catch {
    return fail("header is not JSON");
  }
  const { count, height, width, classes, source, key } = header!;
  if (
    ![count, height, width].every((n) => Number.isInteger(n) && n >= 0) || !Array.isArray(classes)
  ) {
    fail("header fields");
  }
  const headerEnd = 12 + jsonLength;
  const labelsAt = headerEnd + ((8 - (headerEnd % 8)) % 8);
  const imagesAt = labelsAt + 4 * count;
  const expected = imagesAt + count * imageBytes({ height, width });
  if (bytes.length !== expected) fail(`${bytes.length} bytes, expected ${expected}`);
  const labels = new Int32Array(count);
  for (let i = 0; i < count; i++) labels[i] = view.getInt32(labelsAt + 4 * i, true);
  const dataset = checkDataset({
    images: bytes.subarray(imagesAt),
    labels,
    count,
    height,
    width,
    classes,
    source: `${source} (cached in ${path})`,
  });
  return { dataset, key: key ?? "" };
}

/**
 * The data set cached at `path` if it was made with the same `key`; otherwise builds it (e.g. by
 * decoding an image list), saves it and returns it.
 */
export async function cachedDataset(
  path: string,
  key: string,
  build: () => Promise<ImageDataset>,
): Promise<ImageDataset> {
  if (await exists(path)) {
    const cached = await loadDatasetCache(path);
    if (cached.key === key) return cached.dataset;
  }
  const dataset = await build();
  await saveDatasetCache(path, dataset, key);
  return dataset;
}

const FULL_MAGIC = "CLFULL01";

interface FullCacheHeader {
  count: number;
  height: number;
  width: number;
  maxSide: number;
  classes: string[];
  source: string;
  key: string;
}

/**
 * Writes whole images to `path`: 8-byte magic `CLFULL01`, uint32 LE header length, JSON header
 * ({count, height, width, maxSide, classes, source, key}), zero padding to 8 bytes, int32 LE
 * labels, heights and widths, then each image's CHW bytes in order. Written atomically.
 */
export async function saveFullImageCache(
  path: string,
  set: FullImageSet,
  key = "",
): Promise<void> {
  const header: FullCacheHeader = {
    count: set.count,
    height: set.height,
    width: set.width,
    maxSide: set.maxSide,
    classes: set.classes,
    source: set.source,
    key,
  };
  const json = new TextEncoder().encode(JSON.stringify(header));
  const headerEnd = 12 + json.length;
  const padded = headerEnd + ((8 - (headerEnd % 8)) % 8);
  const head = new Uint8Array(padded + 12 * set.count);
  head.set(new TextEncoder().encode(FULL_MAGIC));
  const view = new DataView(head.buffer);
  view.setUint32(8, json.length, true);
  head.set(json, 12);
  for (const [k, column] of [set.labels, set.heights, set.widths].entries()) {
    const at = padded + 4 * k * set.count;
    for (let i = 0; i < set.count; i++) view.setInt32(at + 4 * i, column[i], true);
  }
  await writeFileAtomic(path, [head, ...set.pixels]);
}

/** Reads a cache written by {@link saveFullImageCache}; throws naming the file if it is damaged. */
export async function loadFullImageCache(
  path: string,
): Promise<{ set: FullImageSet; key: string }> {
  const bytes = await readFileBytes(path, "whole-image cache");
  const fail = (what: string): never => {
    throw new Error(`${path}: damaged whole-image cache (${what}); delete it to decode again`);
  };
  if (bytes.length < 12 || new TextDecoder().decode(bytes.subarray(0, 8)) !== FULL_MAGIC) {
    fail("bad magic");
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const jsonLength = view.getUint32(8, true);
  if (12 + jsonLength > bytes.length) fail("header runs past the end");
  let header: FullCacheHeader;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(12, 12 + jsonLength)));
  } catch {
    return fail("header is not JSON");
  }
  const { count, height, width, maxSide, classes, source, key } = header!;
  if (
    ![count, height, width, maxSide].every((n) => Number.isInteger(n) && n >= 0) ||
    !Array.isArray(classes)
  ) {
    fail("header fields");
  }
  const headerEnd = 12 + jsonLength;
  const columnsAt = headerEnd + ((8 - (headerEnd % 8)) % 8);
  if (columnsAt + 12 * count > bytes.length) fail("columns run past the end");
  const column = (k: number) =>
    Int32Array.from(
      { length: count },
      (_, i) => view.getInt32(columnsAt + 4 * (k * count + i), true),
    );
  const [labels, heights, widths] = [column(0), column(1), column(2)];
  let at = columnsAt + 12 * count;
  const pixels: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    const size = 3 * heights[i] * widths[i];
    if (!(size > 0) || at + size > bytes.length) fail(`image ${i} runs past the end`);
    pixels.push(bytes.subarray(at, at + size));
    at += size;
  }
  if (at !== bytes.length) fail(`${bytes.length - at} bytes after the last image`);
  const set = checkFullImages({
    kind: "full",
    pixels,
    heights,
    widths,
    labels,
    count,
    height,
    width,
    maxSide,
    classes,
    source: `${source} (cached in ${path})`,
  });
  return { set, key: key ?? "" };
}

/** The whole images cached at `path` if made with the same `key`; otherwise builds and saves them. */
export async function cachedFullImages(
  path: string,
  key: string,
  build: () => Promise<FullImageSet>,
): Promise<FullImageSet> {
  if (await exists(path)) {
    const cached = await loadFullImageCache(path);
    if (cached.key === key) return cached.set;
  }
  const set = await build();
  await saveFullImageCache(path, set, key);
  return set;
}
