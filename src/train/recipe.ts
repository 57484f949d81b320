/** The augmentation recipe of a config, as the augmentation graph's transform list. */
import type { ExperimentConfig } from "../config/mod.ts";
import type { Recipe, TransformSpec } from "../augment/mod.ts";

/**
 * Maps the resolved `augmentation` section to a recipe (transforms in the
 * config's fixed order: crop, flip, colour jitter, grayscale, blur). Inputs
 * stay in [0, 1]: normalization is the model's `input_norm`.
 */
export function recipeFromConfig(config: ExperimentConfig): Recipe {
  const a = config.augmentation;
  const transforms: TransformSpec[] = [];
  if (a.crop) {
    transforms.push({
      kind: "random_resized_crop",
      size: a.crop.size,
      scale: a.crop.scale,
      ratio: a.crop.ratio,
      interpolation: a.crop.interpolation,
      p: a.crop.p,
    });
  }
  if (a.flip) transforms.push({ kind: "horizontal_flip", p: a.flip.p });
  if (a.color_jitter) transforms.push({ kind: "color_jitter", ...a.color_jitter });
  if (a.grayscale) transforms.push({ kind: "grayscale", p: a.grayscale.p });
  if (a.blur) transforms.push({ kind: "gaussian_blur", kernelSize: a.blur.kernel_size, sigma: a.blur.sigma, p: a.blur.p });
  return { name: a.recipe, transforms };
}
