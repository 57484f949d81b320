/**
 * Augmentation section: per-view transforms applied in the fixed order
 * crop, flip, color jitter, grayscale, blur (the order of both originals),
 * each with its own probability `p`, then the image goes to [0, 1].
 * A recipe fills every transform; the config may change single parameters
 * or switch a transform off with `null`.
 */
import { z } from "zod";

const probability = z.number().min(0).max(1);
const positive = z.number().positive();

/** `[min, max]` with min ≤ max. */
function range(element: z.ZodNumber) {
  return z.tuple([element, element]).refine(([low, high]) => low <= high, {
    message: "expected [min, max] with min <= max",
  });
}

/**
 * RandomResizedCrop: area fraction from `scale`, aspect ratio from `ratio`
 * (log-uniform), resized to `size` = [height, width]. With probability
 * 1 − p the image passes unchanged (it must then already be `size`).
 */
export const CropSchema = z.strictObject({
  size: z.tuple([z.int().positive(), z.int().positive()]),
  scale: range(z.number().gt(0).max(1)),
  ratio: range(positive),
  interpolation: z.enum(["bilinear", "bicubic"]),
  p: probability,
});

/** Horizontal flip with probability p. */
export const FlipSchema = z.strictObject({ p: probability });

/**
 * ColorJitter (torchvision): brightness/contrast/saturation factors uniform in
 * [max(0, 1 − x), 1 + x], hue shift uniform in [−hue, hue], in random order;
 * the whole jitter is applied with probability p.
 */
export const ColorJitterSchema = z.strictObject({
  brightness: z.number().min(0),
  contrast: z.number().min(0),
  saturation: z.number().min(0),
  hue: z.number().min(0).max(0.5),
  p: probability,
});

/** Conversion to grayscale (kept as 3 channels) with probability p. */
export const GrayscaleSchema = z.strictObject({ p: probability });

/** Gaussian blur: odd square kernel, sigma uniform in [sigma[0], sigma[1]], probability p. */
export const BlurSchema = z.strictObject({
  kernel_size: z.int().positive().refine((k) => k % 2 === 1, {
    message: "expected an odd kernel size",
  }),
  sigma: range(positive),
  p: probability,
});

/** Recipe names: `eth` (SPEC §A), `sdclr` (SPEC §B, CIFAR), `none` (no augmentation). */
export const AUGMENTATION_RECIPES = ["eth", "sdclr", "none"] as const;
/** A recipe name. */
export type AugmentationRecipe = (typeof AUGMENTATION_RECIPES)[number];

/** The resolved augmentation: every transform spelled out, `null` = not applied. */
export interface AugmentationConfig {
  /** The recipe the parameters started from (informational once resolved). */
  recipe: AugmentationRecipe;
  /** RandomResizedCrop, see {@link CropSchema}. */
  crop: CropParams | null;
  /** Horizontal flip. */
  flip: FlipParams | null;
  /** Color jitter, see {@link ColorJitterSchema}. */
  color_jitter: ColorJitterParams | null;
  /** Grayscale. */
  grayscale: GrayscaleParams | null;
  /** Gaussian blur. */
  blur: BlurParams | null;
}

/** Crop parameters. */
export type CropParams = z.output<typeof CropSchema>;
/** Flip parameters. */
export type FlipParams = z.output<typeof FlipSchema>;
/** Color jitter parameters. */
export type ColorJitterParams = z.output<typeof ColorJitterSchema>;
/** Grayscale parameters. */
export type GrayscaleParams = z.output<typeof GrayscaleSchema>;
/** Blur parameters. */
export type BlurParams = z.output<typeof BlurSchema>;

/** Transform keys in application order. */
export const TRANSFORM_ORDER = ["crop", "flip", "color_jitter", "grayscale", "blur"] as const;
/** Every transform of an augmentation (`null` = off). */
export type AugmentationTransforms = Omit<AugmentationConfig, "recipe">;

/** The augmentation section as written: a recipe plus partial transform parameters. */
export const AugmentationInputSchema = z.strictObject({
  recipe: z.enum(AUGMENTATION_RECIPES).default("sdclr"),
  crop: CropSchema.partial().nullable().optional(),
  flip: FlipSchema.partial().nullable().optional(),
  color_jitter: ColorJitterSchema.partial().nullable().optional(),
  grayscale: GrayscaleSchema.partial().nullable().optional(),
  blur: BlurSchema.partial().nullable().optional(),
});
/** The augmentation section as parsed, before the recipe is applied. */
export type AugmentationInput = z.output<typeof AugmentationInputSchema>;

/**
 * Parameters used for a transform that the recipe lacks but the config names
 * (torchvision's defaults; crop size = the data's image size).
 */
function baseParams(imageSize: number): AugmentationTransforms {
  return {
    crop: {
      size: [imageSize, imageSize],
      scale: [0.08, 1],
      ratio: [3 / 4, 4 / 3],
      interpolation: "bilinear",
      p: 1,
    },
    flip: { p: 0.5 },
    color_jitter: { brightness: 0, contrast: 0, saturation: 0, hue: 0, p: 1 },
    grayscale: { p: 0.1 },
    blur: { kernel_size: 3, sigma: [0.1, 2], p: 1 },
  };
}

/** The transforms of a recipe for square images of side `imageSize`. */
export function recipeParams(
  recipe: AugmentationRecipe,
  imageSize: number,
): AugmentationTransforms {
  const size: [number, number] = [imageSize, imageSize];
  switch (recipe) {
    case "eth":
      // ETH: torchvision RandomResizedCrop(32, (0.08, 1), (0.75, 1.3333333333)) ... GaussianBlur(3) p .5
      return {
        crop: {
          size,
          scale: [0.08, 1],
          ratio: [0.75, 1.3333333333],
          interpolation: "bilinear",
          p: 1,
        },
        flip: { p: 0.5 },
        color_jitter: { brightness: 0.4, contrast: 0.4, saturation: 0.4, hue: 0.1, p: 0.8 },
        grayscale: { p: 0.2 },
        blur: { kernel_size: 3, sigma: [0.1, 2], p: 0.5 },
      };
    case "sdclr":
      // SDCLR CIFAR: RandomResizedCrop(32, scale (0.1, 1), interpolation=3 (bicubic)), no blur.
      return {
        crop: { size, scale: [0.1, 1], ratio: [3 / 4, 4 / 3], interpolation: "bicubic", p: 1 },
        flip: { p: 0.5 },
        color_jitter: { brightness: 0.4, contrast: 0.4, saturation: 0.4, hue: 0.1, p: 0.8 },
        grayscale: { p: 0.2 },
        blur: null,
      };
    case "none":
      return { crop: null, flip: null, color_jitter: null, grayscale: null, blur: null };
  }
}

/**
 * Applies the recipe: a transform the config leaves out comes from the recipe,
 * `null` switches it off, and given parameters replace the recipe's (or
 * torchvision's defaults where the recipe has no such transform).
 */
export function resolveAugmentation(
  input: AugmentationInput,
  imageSize: number,
): AugmentationConfig {
  const fromRecipe = recipeParams(input.recipe, imageSize);
  const base = baseParams(imageSize);
  const resolved: Record<string, unknown> = { recipe: input.recipe };
  for (const key of TRANSFORM_ORDER) {
    const given = input[key];
    if (given === null) resolved[key] = null;
    else if (given === undefined) resolved[key] = fromRecipe[key];
    else resolved[key] = { ...(fromRecipe[key] ?? base[key]), ...dropUndefined(given) };
  }
  return resolved as unknown as AugmentationConfig;
}

function dropUndefined(params: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(params).filter(([, v]) => v !== undefined));
}
