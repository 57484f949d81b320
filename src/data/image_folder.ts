/**
 * Image folders (`root/<class>/*.{jpg,jpeg,png}`, classes sorted like torchvision's ImageFolder)
 * and list files (`relative/path label` per line, as SDCLR's ImageNet lists), decoded into an
 * {@link ImageDataset} of one fixed size: optional torchvision `Resize(shorter side)` then
 * `CenterCrop`, as for evaluation.
 */

import { checkDataset, type ImageDataset } from "./dataset.ts";
import { exists, readFileBytes } from "./files.ts";
import { decodeImage } from "./image_decode.ts";
import { centerCrop, hwcToChw, resizeBilinear, resizeShorterSide } from "./resize.ts";

/** Geometry applied to every decoded image. */
export interface ImageTransformOptions {
  /** Resize so the shorter side is this many pixels (torchvision `Resize(int)`, bilinear). */
  resize?: number;
  /** Center crop to this size (square) or [width, height] (torchvision `CenterCrop`). */
  crop?: number | [number, number];
  /** Called after each decoded image. */
  onProgress?: (done: number, total: number) => void;
}

/** One image to decode: where it is, its label, and how to name it in errors. */
export interface ImageEntry {
  path: string;
  label: number;
  /** e.g. "list.txt:12" or the path itself. */
  where: string;
}

const IMAGE_EXTENSIONS = [".jpg", ".jpeg", ".png"];

function hasImageExtension(name: string): boolean {
  const lower = name.toLowerCase();
  return IMAGE_EXTENSIONS.some((ext) => lower.endsWith(ext));
}

/** Decodes `entries` into one data set; every image must come out at the same size. */
export async function decodeImageEntries(
  entries: ImageEntry[],
  classes: string[],
  options: ImageTransformOptions,
  source: string,
): Promise<ImageDataset> {
  if (!entries.length) throw new Error(`${source}: no images`);
  const cropSize = typeof options.crop === "number" ? [options.crop, options.crop] : options.crop;
  let width = cropSize?.[0] ?? 0;
  let height = cropSize?.[1] ?? 0;
  let images: Uint8Array | undefined;
  let firstWhere = "";
  const labels = new Int32Array(entries.length);
  for (let i = 0; i < entries.length; i++) {
    const entry = entries[i];
    const name = entry.where === entry.path ? entry.path : `${entry.where}: ${entry.path}`;
    let image = decodeImage(await readFileBytes(entry.path, `image (${entry.where})`), name);
    if (options.resize) {
      const [w, h] = resizeShorterSide(image.width, image.height, options.resize);
      image = resizeBilinear(image, w, h);
    }
    if (cropSize) {
      if (image.width < cropSize[0] || image.height < cropSize[1]) {
        throw new Error(
          `${name} is ${image.width}×${image.height} after resizing, smaller than the ${
            cropSize[0]
          }×${cropSize[1]} crop`,
        );
      }
      image = centerCrop(image, cropSize[0], cropSize[1]);
    }
    if (!images) {
      width = image.width;
      height = image.height;
      firstWhere = entry.path;
      images = new Uint8Array(entries.length * 3 * width * height);
    } else if (image.width !== width || image.height !== height) {
      throw new Error(
        `${name} is ${image.width}×${image.height}, but ${firstWhere} is ${width}×${height}; ` +
          `give resize/crop options to bring images to one size`,
      );
    }
    hwcToChw(image, images, i * 3 * width * height);
    labels[i] = entry.label;
    options.onProgress?.(i + 1, entries.length);
  }
  return checkDataset({
    images: images!,
    labels,
    count: entries.length,
    height,
    width,
    classes,
    source,
  });
}

/** Lists `root/<class>/<image>` files: classes sorted, files sorted within a class. */
export async function listImageFolder(
  root: string,
): Promise<{ classes: string[]; entries: ImageEntry[] }> {
  if (!(await exists(root))) throw new Error(`image folder not found: ${root}`);
  const classes: string[] = [];
  for await (const item of Deno.readDir(root)) if (item.isDirectory) classes.push(item.name);
  // torchvision sorts with Python's default string order (code points), as does this comparison.
  classes.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  if (!classes.length) {
    throw new Error(`${root}: no class folders (expected ${root}/<class>/<image>.jpg)`);
  }
  const entries: ImageEntry[] = [];
  for (const [label, name] of classes.entries()) {
    const files: string[] = [];
    for await (const item of Deno.readDir(`${root}/${name}`)) {
      if (item.isFile && hasImageExtension(item.name)) files.push(item.name);
    }
    files.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    for (const file of files) {
      const path = `${root}/${name}/${file}`;
      entries.push({ path, label, where: path });
    }
  }
  if (!entries.length) throw new Error(`${root}: no .jpg/.jpeg/.png images in its class folders`);
  return { classes, entries };
}

/** Decodes an image folder (`root/<class>/*.{jpg,jpeg,png}`). */
export async function loadImageFolder(
  root: string,
  options: ImageTransformOptions = {},
): Promise<ImageDataset> {
  const { classes, entries } = await listImageFolder(root);
  return await decodeImageEntries(entries, classes, options, root);
}

/**
 * Reads a list file: one `relative/path label` per line (blank lines skipped), paths relative to
 * `root`. Every named image must exist: the Error names the list file and line otherwise.
 */
export async function readImageList(list: string, root: string): Promise<ImageEntry[]> {
  const text = new TextDecoder().decode(await readFileBytes(list, "image list"));
  const entries: ImageEntry[] = [];
  const lines = text.split("\n");
  for (let n = 0; n < lines.length; n++) {
    const line = lines[n].trim();
    if (!line) continue;
    const match = /^(.+?)\s+(\d+)$/.exec(line);
    if (!match) throw new Error(`${list}:${n + 1}: expected 'relative/path label', got '${line}'`);
    entries.push({
      path: `${root}/${match[1]}`,
      label: Number(match[2]),
      where: `${list}:${n + 1}`,
    });
  }
  if (!entries.length) throw new Error(`${list}: no entries`);
  for (const entry of entries) {
    if (!(await exists(entry.path))) {
      throw new Error(`${entry.where}: image ${entry.path} not found`);
    }
  }
  return entries;
}

/**
 * Class names of list entries: class k is named after the folder of its images when they agree
 * (ImageNet wnids), else `class_k`. Throws, naming the line, for a label not below `classCount`.
 */
export function listClassNames(entries: readonly ImageEntry[], classCount: number): string[] {
  const folders = new Array<string | null | undefined>(classCount);
  for (const entry of entries) {
    if (entry.label >= classCount) {
      throw new Error(
        `${entry.where}: label ${entry.label} is not below the class count ${classCount}`,
      );
    }
    const folder = entry.path.split("/").at(-2) ?? null;
    const known = folders[entry.label];
    folders[entry.label] = known === undefined || known === folder ? folder : null;
  }
  return Array.from(folders, (folder, k) => folder ?? `class_${k}`);
}

/**
 * Decodes the images of a list file ({@link listClassNames} names the classes); `classCount`
 * fixes the number of classes (default: the largest label + 1).
 */
export async function loadImageList(
  list: string,
  root: string,
  options: ImageTransformOptions & { classCount?: number } = {},
): Promise<ImageDataset> {
  const entries = await readImageList(list, root);
  const classCount = options.classCount ?? largestLabel(entries) + 1;
  return await decodeImageEntries(entries, listClassNames(entries, classCount), options, list);
}

/** The largest label of `entries` (-1 for none); no spread, so long lists are fine. */
export function largestLabel(entries: readonly ImageEntry[]): number {
  return entries.reduce((max, entry) => Math.max(max, entry.label), -1);
}
