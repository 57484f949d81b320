/**
 * Augmentation recipes as data: an ordered list of transform specs with their
 * parameters (torchvision's names and semantics), plus the plan a recipe
 * implies for the graph (output size, parameter columns).
 *
 * The graph applies geometry first (crops, resize, flip fold into one
 * resampling), then colour ops and blur in list order, then normalization;
 * {@link planRecipe} rejects a recipe whose order it cannot apply exactly.
 */
import { type AugmentationConfig, recipeParams } from "../config/augmentation.ts";

/**
 * Luma weights of grayscale, contrast and saturation: ITU-R 601 as PIL's `convert("L")`, which
 * the originals ran (torchvision's tensor ops use 0.2989 for red).
 */
export const LUMA: readonly [number, number, number] = [0.299, 0.587, 0.114];
/** Keys' cubic coefficient of PIL's bicubic filter (and of torchvision's antialiased bicubic). */
export const BICUBIC_A = -0.5;

/** Resampling filter: PIL's (and torchvision's antialiased) bilinear or bicubic (Keys, a = −0.5). */
export type Interpolation = "bilinear" | "bicubic";

/** RandomResizedCrop(size, scale, ratio, interpolation), applied with probability p. */
export interface RandomResizedCropSpec {
  kind: "random_resized_crop";
  /** Output [height, width]. */
  size: [number, number];
  /** Range of the crop area as a fraction of the image area. */
  scale: [number, number];
  /** Range of the aspect ratio width/height (sampled log-uniformly). */
  ratio: [number, number];
  interpolation: Interpolation;
  /** With probability 1 − p the image passes unchanged (it must then already have `size`). */
  p: number;
}

/** RandomCrop(size, padding) with zero padding on all four sides (torchvision's default fill). */
export interface RandomCropSpec {
  kind: "random_crop";
  size: [number, number];
  padding: number;
}

/** Resize: a number scales the shorter side to it (torchvision `Resize(int)`), a pair is [height, width]. */
export interface ResizeSpec {
  kind: "resize";
  size: number | [number, number];
  interpolation: Interpolation;
}

/** CenterCrop(size); the crop must fit in the image. */
export interface CenterCropSpec {
  kind: "center_crop";
  size: [number, number];
}

/** RandomHorizontalFlip(p). */
export interface HorizontalFlipSpec {
  kind: "horizontal_flip";
  p: number;
}

/**
 * ColorJitter(brightness, contrast, saturation, hue) in a random order per
 * sample, the whole jitter applied with probability p. Factors are uniform in
 * [max(0, 1 − x), 1 + x], the hue shift in [−hue, hue]; 0 disables an op.
 */
export interface ColorJitterSpec {
  kind: "color_jitter";
  brightness: number;
  contrast: number;
  saturation: number;
  hue: number;
  p: number;
}

/** RandomGrayscale(p): luma (0.299, 0.587, 0.114) copied to the three channels. */
export interface GrayscaleSpec {
  kind: "grayscale";
  p: number;
}

/** GaussianBlur(kernelSize, sigma range) with reflect padding, applied with probability p. */
export interface GaussianBlurSpec {
  kind: "gaussian_blur";
  /** Odd kernel size (square kernel). */
  kernelSize: number;
  /** sigma is uniform in [sigma[0], sigma[1]]. */
  sigma: [number, number];
  p: number;
}

/** Normalize(mean, std) per channel; must be the last transform. */
export interface NormalizeSpec {
  kind: "normalize";
  mean: [number, number, number];
  std: [number, number, number];
}

/** One transform of a recipe. */
export type TransformSpec =
  | RandomResizedCropSpec
  | RandomCropSpec
  | ResizeSpec
  | CenterCropSpec
  | HorizontalFlipSpec
  | ColorJitterSpec
  | GrayscaleSpec
  | GaussianBlurSpec
  | NormalizeSpec;

/** Kind of a transform spec. */
export type TransformKind = TransformSpec["kind"];

/** A named list of transforms, applied in order to images scaled to [0, 1]. */
export interface Recipe {
  name: string;
  transforms: TransformSpec[];
}

/** CIFAR-10 channel mean and std (SPEC §A). */
export const CIFAR10_STATS = {
  mean: [0.4914, 0.4822, 0.4465] as [number, number, number],
  std: [0.2470, 0.2435, 0.2616] as [number, number, number],
};
/** CIFAR-100 channel mean and std (SPEC §A). */
export const CIFAR100_STATS = {
  mean: [0.5071, 0.4865, 0.4409] as [number, number, number],
  std: [0.2673, 0.2564, 0.2762] as [number, number, number],
};
/** ImageNet channel mean and std (SDCLR normalizes inside the model with these). */
export const IMAGENET_STATS = {
  mean: [0.485, 0.456, 0.406] as [number, number, number],
  std: [0.229, 0.224, 0.225] as [number, number, number],
};

/** Per-channel statistics for {@link NormalizeSpec}. */
export interface ChannelStats {
  mean: [number, number, number];
  std: [number, number, number];
}

const JITTER_04: Omit<ColorJitterSpec, "p"> = {
  kind: "color_jitter",
  brightness: 0.4,
  contrast: 0.4,
  saturation: 0.4,
  hue: 0.1,
};

/**
 * ETH (SPEC §A): RandomResizedCrop(size, scale 0.08–1, ratio 3/4–4/3), flip p .5,
 * ColorJitter(.4, .4, .4, .1) p .8, grayscale p .2, GaussianBlur(3, σ 0.1–2) p .5,
 * normalize with the data set's statistics. The parameters are the config recipe's
 * (`augmentation.recipe: eth`, src/config/augmentation.ts).
 */
export function ethRecipe(stats: ChannelStats = CIFAR10_STATS, size = 32): Recipe {
  return recipeFromConfig({ recipe: "eth", ...recipeParams("eth", size) }, stats);
}

/**
 * SDCLR on CIFAR (SPEC §B): RandomResizedCrop(size, scale 0.1–1, bicubic), flip,
 * ColorJitter(.4, .4, .4, .1) p .8, grayscale p .2. Ends at [0, 1]: the model normalizes.
 * The parameters are the config recipe's (`augmentation.recipe: sdclr`).
 */
export function sdclrRecipe(size = 32): Recipe {
  return recipeFromConfig({ recipe: "sdclr", ...recipeParams("sdclr", size) });
}

/**
 * SDCLR on ImageNet-100-LT: RandomResizedCrop(224, scale 0.08–1, bicubic), flip, jitter p .8,
 * grayscale p .2, blur σ 0.1–2 p .5. The original blurs with PIL's GaussianBlur(radius σ), an
 * extended-box approximation without a kernel size; ours is a true Gaussian of kernel 13
 * (±3σ at σ = 2) with reflect padding.
 */
export function sdclrImageNetRecipe(size = 224): Recipe {
  return {
    name: "sdclr_imagenet",
    transforms: [
      {
        kind: "random_resized_crop",
        size: [size, size],
        scale: [0.08, 1],
        ratio: [3 / 4, 4 / 3],
        interpolation: "bicubic",
        p: 1,
      },
      { kind: "horizontal_flip", p: 0.5 },
      { ...JITTER_04, p: 0.8 },
      { kind: "grayscale", p: 0.2 },
      { kind: "gaussian_blur", kernelSize: 13, sigma: [0.1, 2], p: 0.5 },
    ],
  };
}

/** Evaluation without augmentation: to [0, 1], then normalize when `stats` is given. */
export function plainRecipe(stats?: ChannelStats): Recipe {
  return {
    name: "plain",
    transforms: stats ? [{ kind: "normalize", mean: stats.mean, std: stats.std }] : [],
  };
}

/** SDCLR's linear-probe training transform: RandomCrop(size, padding 4) + flip, no normalization. */
export function probeCropFlipRecipe(size = 32, padding = 4, stats?: ChannelStats): Recipe {
  const transforms: TransformSpec[] = [
    { kind: "random_crop", size: [size, size], padding },
    { kind: "horizontal_flip", p: 0.5 },
  ];
  if (stats) transforms.push({ kind: "normalize", mean: stats.mean, std: stats.std });
  return { name: "probe_crop_flip", transforms };
}

/** ImageNet evaluation: Resize(shorter side `resize`, bilinear) then CenterCrop(`crop`). */
export function resizeCenterCropRecipe(resize = 256, crop = 224, stats?: ChannelStats): Recipe {
  const transforms: TransformSpec[] = [
    { kind: "resize", size: resize, interpolation: "bilinear" },
    { kind: "center_crop", size: [crop, crop] },
  ];
  if (stats) transforms.push({ kind: "normalize", mean: stats.mean, std: stats.std });
  return { name: "resize_center_crop", transforms };
}

/**
 * The recipe of a resolved config `augmentation` section (src/config/augmentation.ts), with a
 * final normalization when `stats` is given.
 */
export function recipeFromConfig(config: AugmentationConfig, stats?: ChannelStats): Recipe {
  const transforms: TransformSpec[] = [];
  if (config.crop) {
    const c = config.crop;
    transforms.push({
      kind: "random_resized_crop",
      size: [c.size[0], c.size[1]],
      scale: [c.scale[0], c.scale[1]],
      ratio: [c.ratio[0], c.ratio[1]],
      interpolation: c.interpolation,
      p: c.p,
    });
  }
  if (config.flip) transforms.push({ kind: "horizontal_flip", p: config.flip.p });
  if (config.color_jitter) transforms.push({ kind: "color_jitter", ...config.color_jitter });
  if (config.grayscale) transforms.push({ kind: "grayscale", p: config.grayscale.p });
  if (config.blur) {
    const b = config.blur;
    transforms.push({
      kind: "gaussian_blur",
      kernelSize: b.kernel_size,
      sigma: [b.sigma[0], b.sigma[1]],
      p: b.p,
    });
  }
  if (stats) transforms.push({ kind: "normalize", mean: stats.mean, std: stats.std });
  return { name: config.recipe, transforms };
}

/** Parameter columns of one transform in the packed per-sample parameter row. */
export interface ColumnBlock {
  /** Index of the transform in the recipe (−1 for the merged geometry block). */
  transform: number;
  offset: number;
  width: number;
}

/** Columns of the geometry block: per axis (y, then x) origin, step, window low, window high. */
export const GEOMETRY_COLUMNS = 8;
/** Blend stages of the colour jitter: three before the hue op, three after. */
export const JITTER_STAGES = 6;
/** Columns per blend stage: factor, contrast-target weight, saturation-target weight. */
export const STAGE_COLUMNS = 3;
/** Columns of a colour jitter: the stages, then hue shift and hue on/off. */
export const JITTER_COLUMNS = JITTER_STAGES * STAGE_COLUMNS + 2;

/** What a recipe implies for the graph and the parameter packing, for a given input size. */
export interface RecipePlan {
  recipe: Recipe;
  inputHeight: number;
  inputWidth: number;
  outputHeight: number;
  outputWidth: number;
  /** Index of the first transform that is not geometric (geometry = transforms before it). */
  geometryEnd: number;
  /** Whether any geometric transform is present (then a resampling runs). */
  hasGeometry: boolean;
  /** Filter of the resampling (of the recipe's resize, bilinear when none resizes). */
  interpolation: Interpolation;
  /** Column blocks: geometry first when present, then one per colour transform. */
  blocks: ColumnBlock[];
  /** Parameter columns per sample and view. */
  columns: number;
}

const GEOMETRIC = new Set<TransformKind>([
  "random_resized_crop",
  "random_crop",
  "resize",
  "center_crop",
  "horizontal_flip",
]);

/** Whether a transform kind acts on pixel positions (folded into the resampling). */
export function isGeometric(kind: TransformKind): boolean {
  return GEOMETRIC.has(kind);
}

/** Output size of torchvision `Resize(size)` for an image of [height, width]. */
export function resizedSize(
  size: number | [number, number],
  height: number,
  width: number,
): [number, number] {
  if (Array.isArray(size)) return [size[0], size[1]];
  const shortSide = Math.min(height, width);
  const longSide = Math.max(height, width);
  const newLong = Math.floor((size * longSide) / shortSide);
  return width <= height ? [newLong, size] : [size, newLong];
}

/**
 * Checks a recipe for images of [height, width] and returns its plan. Errors name the recipe,
 * the transform index and kind, the parameter and what was expected.
 */
export function planRecipe(recipe: Recipe, height: number, width: number): RecipePlan {
  const where = (k: number, key?: string) =>
    `recipe ${recipe.name}: transform ${k} (${recipe.transforms[k].kind})${key ? `, ${key}` : ""}`;
  if (!(Number.isInteger(height) && height > 0 && Number.isInteger(width) && width > 0)) {
    throw new Error(
      `recipe ${recipe.name}: image size ${height}x${width} must be positive integers`,
    );
  }
  let h = height;
  let w = width;
  let resized = false;
  let padded = false;
  let interpolation: Interpolation = "bilinear";
  let geometryEnd = 0;
  let seenColour = false;
  const blocks: ColumnBlock[] = [];
  let columns = 0;
  recipe.transforms.forEach((spec, k) => {
    if (spec.kind === "normalize" && k !== recipe.transforms.length - 1) {
      throw new Error(`${where(k)}: normalize must be the last transform`);
    }
    if (isGeometric(spec.kind)) {
      if (seenColour) {
        throw new Error(
          `${
            where(k)
          }: geometric transforms must come before colour transforms (the graph resamples once, first)`,
        );
      }
      geometryEnd = k + 1;
    } else if (spec.kind !== "normalize") {
      seenColour = true;
    }
    switch (spec.kind) {
      case "random_resized_crop": {
        checkSize(spec.size, where(k, "size"));
        checkRange(spec.scale, 0, 1, where(k, "scale"), true);
        checkRange(spec.ratio, 0, Infinity, where(k, "ratio"), true);
        checkProbability(spec.p, where(k, "p"));
        checkInterpolation(spec.interpolation, where(k, "interpolation"));
        if (spec.p < 1 && (spec.size[0] !== h || spec.size[1] !== w)) {
          throw new Error(
            `${where(k, "p")}: p ${spec.p} < 1 needs the image to have the crop size ${
              spec.size.join("x")
            } ` +
              `already (it is ${h}x${w} here)`,
          );
        }
        noSecondResampling(resized, padded, where(k));
        resized = true;
        interpolation = spec.interpolation;
        [h, w] = spec.size;
        break;
      }
      case "random_crop": {
        checkSize(spec.size, where(k, "size"));
        if (!(Number.isInteger(spec.padding) && spec.padding >= 0)) {
          throw new Error(`${where(k, "padding")}: expected an integer >= 0, got ${spec.padding}`);
        }
        if (spec.size[0] > h + 2 * spec.padding || spec.size[1] > w + 2 * spec.padding) {
          throw new Error(
            `${where(k, "size")}: crop ${spec.size.join("x")} is larger than the padded image ` +
              `${h + 2 * spec.padding}x${w + 2 * spec.padding}`,
          );
        }
        if (spec.padding > 0) padded = true;
        [h, w] = spec.size;
        break;
      }
      case "resize": {
        const size = Array.isArray(spec.size) ? spec.size : [spec.size, spec.size];
        checkSize(size as [number, number], where(k, "size"));
        checkInterpolation(spec.interpolation, where(k, "interpolation"));
        noSecondResampling(resized, padded, where(k));
        resized = true;
        interpolation = spec.interpolation;
        [h, w] = resizedSize(spec.size, h, w);
        break;
      }
      case "center_crop":
        checkSize(spec.size, where(k, "size"));
        if (spec.size[0] > h || spec.size[1] > w) {
          throw new Error(
            `${where(k, "size")}: crop ${spec.size.join("x")} does not fit the ${h}x${w} image`,
          );
        }
        [h, w] = spec.size;
        break;
      case "horizontal_flip":
        checkProbability(spec.p, where(k, "p"));
        break;
      case "color_jitter":
        for (const key of ["brightness", "contrast", "saturation"] as const) {
          if (!(spec[key] >= 0 && Number.isFinite(spec[key]))) {
            throw new Error(`${where(k, key)}: expected a number >= 0, got ${spec[key]}`);
          }
        }
        if (!(spec.hue >= 0 && spec.hue <= 0.5)) {
          throw new Error(`${where(k, "hue")}: expected a number in [0, 0.5], got ${spec.hue}`);
        }
        checkProbability(spec.p, where(k, "p"));
        blocks.push({ transform: k, offset: 0, width: JITTER_COLUMNS });
        break;
      case "grayscale":
        checkProbability(spec.p, where(k, "p"));
        blocks.push({ transform: k, offset: 0, width: 1 });
        break;
      case "gaussian_blur": {
        const r = (spec.kernelSize - 1) / 2;
        if (
          !(Number.isInteger(spec.kernelSize) && spec.kernelSize > 0 && spec.kernelSize % 2 === 1)
        ) {
          throw new Error(
            `${where(k, "kernelSize")}: expected an odd positive integer, got ${spec.kernelSize}`,
          );
        }
        if (r >= h || r >= w) {
          throw new Error(
            `${
              where(k, "kernelSize")
            }: kernel ${spec.kernelSize} needs reflect padding ${r} < image size ${h}x${w}`,
          );
        }
        checkRange(spec.sigma, 0, Infinity, where(k, "sigma"), true);
        checkProbability(spec.p, where(k, "p"));
        blocks.push({ transform: k, offset: 0, width: 2 });
        break;
      }
      case "normalize":
        for (let c = 0; c < 3; c++) {
          if (!Number.isFinite(spec.mean[c])) {
            throw new Error(`${where(k, "mean")}: expected 3 finite numbers, got ${spec.mean}`);
          }
          if (!(spec.std[c] > 0)) {
            throw new Error(`${where(k, "std")}: expected 3 numbers > 0, got ${spec.std}`);
          }
        }
        break;
      default:
        throw new Error(
          `recipe ${recipe.name}: transform ${k} has unknown kind ${
            (spec as { kind: string }).kind
          }`,
        );
    }
  });
  const hasGeometry = geometryEnd > 0;
  if (hasGeometry) {
    blocks.unshift({ transform: -1, offset: 0, width: GEOMETRY_COLUMNS });
  }
  for (const block of blocks) {
    block.offset = columns;
    columns += block.width;
  }
  return {
    recipe,
    inputHeight: height,
    inputWidth: width,
    outputHeight: h,
    outputWidth: w,
    geometryEnd,
    hasGeometry,
    interpolation,
    blocks,
    columns,
  };
}

/** The column block of transform `k` of a plan (−1: geometry). */
export function blockOf(plan: RecipePlan, k: number): ColumnBlock {
  const block = plan.blocks.find((b) => b.transform === k);
  if (!block) {
    throw new Error(`recipe ${plan.recipe.name}: transform ${k} has no parameter columns`);
  }
  return block;
}

function noSecondResampling(resized: boolean, padded: boolean, where: string): void {
  if (resized) {
    throw new Error(
      `${where}: only one resampling (random_resized_crop or resize) per recipe is supported`,
    );
  }
  if (padded) {
    throw new Error(`${where}: resampling after a padded random_crop is not supported`);
  }
}

function checkSize(size: [number, number], where: string): void {
  if (
    !(Array.isArray(size) && size.length === 2 && size.every((d) => Number.isInteger(d) && d > 0))
  ) {
    throw new Error(
      `${where}: expected [height, width] of positive integers, got ${JSON.stringify(size)}`,
    );
  }
}

function checkRange(
  range: [number, number],
  low: number,
  high: number,
  where: string,
  openLow: boolean,
): void {
  const ok = Array.isArray(range) && range.length === 2 && range[0] <= range[1] &&
    (openLow ? range[0] > low : range[0] >= low) && range[1] <= high;
  if (!ok) {
    throw new Error(
      `${where}: expected [min, max] with ${low} ${
        openLow ? "<" : "<="
      } min <= max <= ${high}, got ${JSON.stringify(range)}`,
    );
  }
}

function checkProbability(p: number, where: string): void {
  if (!(p >= 0 && p <= 1)) throw new Error(`${where}: expected a probability in [0, 1], got ${p}`);
}

function checkInterpolation(mode: string, where: string): void {
  if (mode !== "bilinear" && mode !== "bicubic") {
    throw new Error(`${where}: expected "bilinear" or "bicubic", got ${JSON.stringify(mode)}`);
  }
}
