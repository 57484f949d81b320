/**
 * A tiny stand-in for ImageNet-100 in the SDCLR layout: JPEGs under `train/<wnid>/` and
 * `val/<wnid>/` of different sizes and aspect ratios, and the six list files of
 * `splits/imagenet-100/` (`relative/path label` per line, the names SDCLR uses), so that the
 * ImageNet-100 configs of config/sdclr/ run end to end with `--data-dir <dir>`.
 *
 * Each class is a pattern (stripes of one orientation and colour) with per-image phase, scale and
 * noise: contrastive pretraining can learn it, a random encoder separates it less well.
 *
 * Run: deno run -A tools/make_imagenet_standin.ts <dir> [--classes 4]
 */
import jpeg from "jpeg-js";
import { Rng } from "../src/util/rng.ts";

/** Real ImageNet class ids, used as the stand-in's folder names. */
const WNIDS = ["n01440764", "n01443537", "n01484850", "n01491361", "n01494475", "n01496331"];

/** Options of {@link makeImageNetStandin}. */
export interface StandinOptions {
  /** Number of classes (2–6; default 4). */
  classes?: number;
  /** Seed of the images and lists (default 0). */
  seed?: number;
}

/** What {@link makeImageNetStandin} wrote: images per list file. */
export interface StandinLists {
  /** Long-tailed pretraining list (imageNet_100_LT_train.txt): images per class. */
  longTail: number[];
  /** Balanced pretraining list (imageNet_100_BL_train.txt). */
  balanced: number[];
  /** Probe training list (ImageNet_100_train.txt). */
  train: number[];
  val: number[];
  test: number[];
  /** Few-shot list (imageNet_100_sub_balance_train_0.01.txt). */
  fewShot: number[];
}

const COLOURS: [number, number, number][] = [
  [220, 60, 40],
  [40, 180, 70],
  [50, 80, 220],
  [220, 200, 40],
  [160, 60, 200],
  [40, 200, 210],
];

/** One image of class `label`: oriented stripes in the class colour over noise, RGBA for jpeg-js. */
function patternImage(
  label: number,
  rng: Rng,
): { width: number; height: number; data: Uint8Array } {
  const width = 40 + rng.int(41);
  const height = 40 + rng.int(41);
  const angle = (label * Math.PI) / 6 + (rng.uniform() - 0.5) * 0.3;
  const period = 6 + rng.uniform() * 4;
  const phase = rng.uniform() * period;
  const [r, g, b] = COLOURS[label % COLOURS.length];
  const data = new Uint8Array(width * height * 4);
  const [cx, cy] = [Math.cos(angle), Math.sin(angle)];
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const t = (x * cx + y * cy + phase) / period;
      const on = t - Math.floor(t) < 0.5 ? 1 : 0.25;
      const noise = (rng.uniform() - 0.5) * 50;
      const at = 4 * (y * width + x);
      data[at] = Math.max(0, Math.min(255, on * r + noise));
      data[at + 1] = Math.max(0, Math.min(255, on * g + noise));
      data[at + 2] = Math.max(0, Math.min(255, on * b + noise));
      data[at + 3] = 255;
    }
  }
  return { width, height, data };
}

/**
 * Writes the stand-in into `dir` and returns the images per class of each list. Train images are
 * shared by the lists as in SDCLR's (the long-tail, balanced, few-shot and validation lists pick
 * from `train/`, the test list is `val/`).
 */
export async function makeImageNetStandin(
  dir: string,
  options: StandinOptions = {},
): Promise<StandinLists> {
  const classes = options.classes ?? 4;
  if (!(Number.isInteger(classes) && classes >= 2 && classes <= WNIDS.length)) {
    throw new Error(`stand-in: classes must be 2..${WNIDS.length}, got ${classes}`);
  }
  const rng = new Rng(options.seed ?? 0, "imagenet-standin");
  // Per class: 12 train images, 3 test images; lists take slices of them.
  const trainPerClass = 12;
  const testPerClass = 3;
  const lists: Record<keyof StandinLists, string[]> = {
    longTail: [],
    balanced: [],
    train: [],
    val: [],
    test: [],
    fewShot: [],
  };
  const counts: StandinLists = {
    longTail: [],
    balanced: [],
    train: [],
    val: [],
    test: [],
    fewShot: [],
  };
  const add = (list: keyof StandinLists, paths: string[], label: number) => {
    for (const path of paths) lists[list].push(`${path} ${label}`);
    counts[list][label] = paths.length;
  };
  for (let label = 0; label < classes; label++) {
    const wnid = WNIDS[label];
    const train: string[] = [];
    const test: string[] = [];
    for (
      const [part, n, names] of [["train", trainPerClass, train], [
        "val",
        testPerClass,
        test,
      ]] as const
    ) {
      await Deno.mkdir(`${dir}/${part}/${wnid}`, { recursive: true });
      for (let k = 0; k < n; k++) {
        const name = part === "train"
          ? `${wnid}_${k + 1}.JPEG`
          : `ILSVRC2012_val_${wnid.slice(1)}${k}.JPEG`;
        const image = patternImage(label, rng);
        await Deno.writeFile(`${dir}/${part}/${wnid}/${name}`, jpeg.encode(image, 85).data);
        names.push(`${part}/${wnid}/${name}`);
      }
    }
    // Long tail: 10, 10·ρ, ... down to 2 images; balanced: 5 each.
    const longTail = Math.max(2, Math.round(10 * Math.pow(0.2, label / (classes - 1))));
    add("longTail", train.slice(0, longTail), label);
    add("balanced", train.slice(0, 5), label);
    add("train", train.slice(0, 9), label);
    add("val", train.slice(9, 12), label);
    add("test", test, label);
    add("fewShot", train.slice(0, 2), label);
  }
  const files: Record<keyof StandinLists, string> = {
    longTail: "imageNet_100_LT_train.txt",
    balanced: "imageNet_100_BL_train.txt",
    train: "ImageNet_100_train.txt",
    val: "ImageNet_100_val.txt",
    test: "ImageNet_100_test.txt",
    fewShot: "imageNet_100_sub_balance_train_0.01.txt",
  };
  await Deno.mkdir(`${dir}/splits/imagenet-100`, { recursive: true });
  for (const [key, file] of Object.entries(files) as [keyof StandinLists, string][]) {
    await Deno.writeTextFile(`${dir}/splits/imagenet-100/${file}`, lists[key].join("\n") + "\n");
  }
  return counts;
}

if (import.meta.main) {
  const dir = Deno.args[0];
  if (!dir) {
    console.error("usage: deno run -A tools/make_imagenet_standin.ts <dir> [--classes N]");
    Deno.exit(2);
  }
  const at = Deno.args.indexOf("--classes");
  const classes = at >= 0 ? Number(Deno.args[at + 1]) : undefined;
  const counts = await makeImageNetStandin(dir, { classes });
  console.log(
    `wrote an ImageNet-100 stand-in to ${dir}/: images per class ${JSON.stringify(counts)}`,
  );
}
