/**
 * Host side of the augmentation: per-sample random parameters drawn from an
 * {@link Rng} the way torchvision draws them, and their packing into the
 * float32 parameter tensor [views, batch, columns] that the graph reads.
 */
import type { Rng } from "../util/rng.ts";
import type { HostTensor } from "../runtime/host_tensor.ts";
import {
  blockOf,
  type ColorJitterSpec,
  JITTER_STAGES,
  planRecipe,
  type Recipe,
  type RecipePlan,
  resizedSize,
  STAGE_COLUMNS,
} from "./recipes.ts";

/** Python's `round` (half to even), as torchvision's crop sampling uses it. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x - Math.trunc(x)) === 0.5 ? 2 * Math.round(x / 2) : r;
}

/** A crop box sampled by {@link sampleResizedCrop}, with diagnostics for tests. */
export interface ResizedCropBox {
  top: number;
  left: number;
  height: number;
  width: number;
  /** True when all 10 attempts failed and the central fallback crop was taken. */
  fallback: boolean;
  /** Attempts made (1–10; 10 also on fallback). */
  attempts: number;
  /** Area fraction drawn in the accepted attempt (NaN on fallback). */
  scale: number;
  /** log aspect ratio drawn in the accepted attempt (NaN on fallback). */
  logRatio: number;
}

/** torchvision `RandomResizedCrop.get_params` for an image of [height, width]. */
export function sampleResizedCrop(
  rng: Rng,
  height: number,
  width: number,
  scale: [number, number],
  ratio: [number, number],
): ResizedCropBox {
  const area = height * width;
  const logLow = Math.log(ratio[0]);
  const logHigh = Math.log(ratio[1]);
  for (let attempt = 1; attempt <= 10; attempt++) {
    const s = rng.uniformIn(scale[0], scale[1]);
    const logRatio = rng.uniformIn(logLow, logHigh);
    const targetArea = area * s;
    const aspect = Math.exp(logRatio);
    const w = roundHalfEven(Math.sqrt(targetArea * aspect));
    const h = roundHalfEven(Math.sqrt(targetArea / aspect));
    if (0 < w && w <= width && 0 < h && h <= height) {
      const top = rng.int(height - h + 1);
      const left = rng.int(width - w + 1);
      return {
        top,
        left,
        height: h,
        width: w,
        fallback: false,
        attempts: attempt,
        scale: s,
        logRatio,
      };
    }
  }
  const inRatio = width / height;
  let w = width;
  let h = height;
  if (inRatio < Math.min(...ratio)) {
    h = roundHalfEven(w / Math.min(...ratio));
  } else if (inRatio > Math.max(...ratio)) {
    w = roundHalfEven(h * Math.max(...ratio));
  }
  return {
    top: Math.floor((height - h) / 2),
    left: Math.floor((width - w) / 2),
    height: h,
    width: w,
    fallback: true,
    attempts: 10,
    scale: NaN,
    logRatio: NaN,
  };
}

/** Parameters drawn for one transform of one view of one sample. */
export type TransformDraw =
  | { kind: "random_resized_crop"; applied: boolean; box: ResizedCropBox | null }
  | { kind: "random_crop"; top: number; left: number }
  | { kind: "resize" }
  | { kind: "center_crop" }
  | { kind: "horizontal_flip"; applied: boolean }
  | { kind: "color_jitter"; applied: boolean; jitter: JitterDraw | null }
  | { kind: "grayscale"; applied: boolean }
  | { kind: "gaussian_blur"; applied: boolean; sigma: number }
  | { kind: "normalize" };

/** ColorJitter parameters: op order (0 brightness, 1 contrast, 2 saturation, 3 hue) and factors. */
export interface JitterDraw {
  /** torch.randperm(4): the ops in application order. */
  order: number[];
  /** null: the op is disabled (its parameter is 0) and skipped. */
  brightness: number | null;
  contrast: number | null;
  saturation: number | null;
  hue: number | null;
}

/** The draws of one view: one entry per transform of the recipe. */
export type ViewDraws = TransformDraw[];

/** Whether a RandomApply with probability p fires (no draw when p is 0 or 1). */
function fires(rng: Rng, p: number): boolean {
  if (p >= 1) return true;
  if (p <= 0) return false;
  return rng.uniform() < p;
}

function jitterRange(x: number): [number, number] | null {
  const low = Math.max(0, 1 - x);
  const high = 1 + x;
  return low === 1 && high === 1 ? null : [low, high];
}

/** torchvision `ColorJitter.get_params`: the permutation first, then each enabled factor. */
export function sampleJitter(rng: Rng, spec: ColorJitterSpec): JitterDraw {
  const order = Array.from(rng.permutation(4));
  const draw = (
    range: [number, number] | null,
  ) => (range ? rng.uniformIn(range[0], range[1]) : null);
  const brightness = draw(jitterRange(spec.brightness));
  const contrast = draw(jitterRange(spec.contrast));
  const saturation = draw(jitterRange(spec.saturation));
  const hue = spec.hue > 0 ? rng.uniformIn(-spec.hue, spec.hue) : null;
  return { order, brightness, contrast, saturation, hue };
}

/**
 * Draws the parameters of one view, transform by transform, in torchvision's order of draws.
 * `size` is the sample's [height, width] when it is smaller than the plan's input (a whole image
 * at the top-left of a canvas, src/data/full_images.ts); default the plan's input size.
 */
export function sampleView(
  plan: RecipePlan,
  rng: Rng,
  size?: readonly [number, number],
): ViewDraws {
  let [h, w] = sampleSize(plan, size);
  return plan.recipe.transforms.map((spec): TransformDraw => {
    switch (spec.kind) {
      case "random_resized_crop": {
        const applied = fires(rng, spec.p);
        const box = applied ? sampleResizedCrop(rng, h, w, spec.scale, spec.ratio) : null;
        [h, w] = spec.size;
        return { kind: spec.kind, applied, box };
      }
      case "random_crop": {
        const paddedH = h + 2 * spec.padding;
        const paddedW = w + 2 * spec.padding;
        const [th, tw] = spec.size;
        let i = 0;
        let j = 0;
        if (!(paddedH === th && paddedW === tw)) {
          i = rng.int(paddedH - th + 1);
          j = rng.int(paddedW - tw + 1);
        }
        [h, w] = spec.size;
        return { kind: spec.kind, top: i - spec.padding, left: j - spec.padding };
      }
      case "resize":
        [h, w] = resizedSize(spec.size, h, w);
        return { kind: spec.kind };
      case "center_crop":
        [h, w] = spec.size;
        return { kind: spec.kind };
      case "horizontal_flip":
        return { kind: spec.kind, applied: fires(rng, spec.p) };
      case "color_jitter": {
        const applied = fires(rng, spec.p);
        return { kind: spec.kind, applied, jitter: applied ? sampleJitter(rng, spec) : null };
      }
      case "grayscale":
        return { kind: spec.kind, applied: fires(rng, spec.p) };
      case "gaussian_blur": {
        const applied = fires(rng, spec.p);
        return {
          kind: spec.kind,
          applied,
          sigma: applied ? rng.uniformIn(spec.sigma[0], spec.sigma[1]) : 0,
        };
      }
      case "normalize":
        return { kind: spec.kind };
    }
  });
}

/** torchvision CenterCrop's offset: int(round((size − crop) / 2)). */
export function centerCropOffset(size: number, crop: number): number {
  return roundHalfEven((size - crop) / 2);
}

/**
 * Where output pixel o of one axis samples the source: centre c(o) = origin + (o + ½)·step in
 * source pixel units (pixel s covers [s, s+1)); the filter reads only source pixels in
 * [low, high) and is widened by max(|step|, 1) (antialiasing when shrinking).
 */
export interface AxisMap {
  origin: number;
  step: number;
  low: number;
  high: number;
}

/**
 * Folds the geometric transforms of one view (crops, resize, flip) into one map per axis.
 * A crop moves the origin; the resize sets the filter window to the source extent it reads
 * and scales the step; a flip mirrors the axis.
 */
export function composeGeometry(
  plan: RecipePlan,
  draws: ViewDraws,
  size?: readonly [number, number],
): { y: AxisMap; x: AxisMap } {
  const [height, width] = sampleSize(plan, size);
  const y = { size: height, origin: 0, step: 1, low: 0, high: height };
  const x = { size: width, origin: 0, step: 1, low: 0, high: width };
  const crop = (axis: typeof y, start: number, size: number) => {
    axis.origin += start * axis.step;
    axis.size = size;
  };
  const resize = (axis: typeof y, size: number) => {
    const a = axis.origin;
    const b = axis.origin + axis.size * axis.step;
    axis.low = Math.min(a, b);
    axis.high = Math.max(a, b);
    axis.step *= axis.size / size;
    axis.size = size;
  };
  for (let k = 0; k < plan.geometryEnd; k++) {
    const spec = plan.recipe.transforms[k];
    const draw = draws[k];
    if (draw.kind !== spec.kind) {
      throw new Error(`augment: draw ${k} is ${draw.kind}, recipe has ${spec.kind}`);
    }
    switch (spec.kind) {
      case "random_resized_crop": {
        const box = (draw as { box: ResizedCropBox | null }).box;
        if (box) {
          crop(y, box.top, box.height);
          crop(x, box.left, box.width);
          resize(y, spec.size[0]);
          resize(x, spec.size[1]);
        }
        break;
      }
      case "random_crop": {
        const d = draw as { top: number; left: number };
        crop(y, d.top, spec.size[0]);
        crop(x, d.left, spec.size[1]);
        break;
      }
      case "resize": {
        const [rh, rw] = resizedSize(spec.size, y.size, x.size);
        resize(y, rh);
        resize(x, rw);
        break;
      }
      case "center_crop":
        crop(y, centerCropOffset(y.size, spec.size[0]), spec.size[0]);
        crop(x, centerCropOffset(x.size, spec.size[1]), spec.size[1]);
        break;
      case "horizontal_flip":
        if ((draw as { applied: boolean }).applied) {
          x.origin += x.size * x.step;
          x.step = -x.step;
        }
        break;
      default:
        throw new Error(`augment: ${spec.kind} is not geometric`);
    }
  }
  const map = (a: typeof y): AxisMap => ({
    origin: a.origin,
    step: a.step,
    low: a.low,
    high: a.high,
  });
  return { y: map(y), x: map(x) };
}

/**
 * Blend stages of a jitter draw: brightness, contrast and saturation are each a blend
 * f·x + (1 − f)·target (target 0, the grey mean, the grey image); the ops before the hue
 * fill stages 0–2, those after it stages 3–5; unused stages have f = 1 (an exact identity).
 */
export function jitterStages(
  jitter: JitterDraw | null,
): { stages: number[][]; hue: number | null } {
  const stages = Array.from({ length: JITTER_STAGES }, () => [1, 0, 0]);
  if (!jitter) return { stages, hue: null };
  let slot = 0;
  for (const op of jitter.order) {
    if (op === 3) {
      if (jitter.hue !== null) slot = JITTER_STAGES / 2;
      continue;
    }
    const factor = [jitter.brightness, jitter.contrast, jitter.saturation][op];
    if (factor === null) continue;
    stages[slot++] = [factor, op === 1 ? 1 : 0, op === 2 ? 1 : 0];
  }
  return { stages, hue: jitter.hue };
}

/** Writes the parameter row of one view into `row` (length plan.columns); `size` as for {@link sampleView}. */
export function packView(
  plan: RecipePlan,
  draws: ViewDraws,
  row: Float32Array,
  size?: readonly [number, number],
): void {
  if (draws.length !== plan.recipe.transforms.length) {
    throw new Error(
      `augment: ${draws.length} draws for the ${plan.recipe.transforms.length} transforms of recipe ${plan.recipe.name}`,
    );
  }
  if (plan.hasGeometry) {
    const { y, x } = composeGeometry(plan, draws, size);
    row.set(
      [y.origin, y.step, y.low, y.high, x.origin, x.step, x.low, x.high],
      blockOf(plan, -1).offset,
    );
  }
  plan.recipe.transforms.forEach((spec, k) => {
    const draw = draws[k];
    if (draw.kind !== spec.kind) {
      throw new Error(`augment: draw ${k} is ${draw.kind}, recipe has ${spec.kind}`);
    }
    switch (draw.kind) {
      case "color_jitter": {
        const offset = blockOf(plan, k).offset;
        const { stages, hue } = jitterStages(draw.applied ? draw.jitter : null);
        stages.forEach((stage, s) => row.set(stage, offset + s * STAGE_COLUMNS));
        row[offset + JITTER_STAGES * STAGE_COLUMNS] = hue ?? 0;
        row[offset + JITTER_STAGES * STAGE_COLUMNS + 1] = hue === null ? 0 : 1;
        break;
      }
      case "grayscale":
        row[blockOf(plan, k).offset] = draw.applied ? 1 : 0;
        break;
      case "gaussian_blur": {
        const offset = blockOf(plan, k).offset;
        row[offset] = draw.applied ? draw.sigma : 1;
        row[offset + 1] = draw.applied ? 1 : 0;
        break;
      }
    }
  });
}

/** Draws and packed parameters of a batch. */
export interface BatchParams {
  /** draws[v][b]: view v of sample b. */
  draws: ViewDraws[][];
  /** float32 [views, batch, plan.columns], the graph input `params`. */
  params: HostTensor;
}

/**
 * Draws `views` views for each of `batch` samples (sample by sample, views in turn, as a
 * data loader calling the transform twice per image does) and packs them. `sizes` gives each
 * sample's [height, width] (at 2b, 2b + 1) when the images are whole images on a canvas.
 */
export function sampleBatch(
  plan: RecipePlan,
  rng: Rng,
  batch: number,
  views = 2,
  sizes: Int32Array | null = null,
): BatchParams {
  if (!(Number.isInteger(batch) && batch > 0)) {
    throw new Error(`augment: batch must be a positive integer, got ${batch}`);
  }
  if (!(Number.isInteger(views) && views > 0)) {
    throw new Error(`augment: views must be a positive integer, got ${views}`);
  }
  if (sizes !== null && sizes.length !== 2 * batch) {
    throw new Error(`augment: ${sizes.length / 2} image sizes for a batch of ${batch}`);
  }
  const draws: ViewDraws[][] = Array.from({ length: views }, () => new Array<ViewDraws>(batch));
  for (let b = 0; b < batch; b++) {
    const size = sampleSizeAt(sizes, b);
    for (let v = 0; v < views; v++) draws[v][b] = sampleView(plan, rng, size);
  }
  return { draws, params: packBatch(plan, draws, sizes) };
}

function sampleSizeAt(sizes: Int32Array | null, b: number): [number, number] | undefined {
  return sizes === null ? undefined : [sizes[2 * b], sizes[2 * b + 1]];
}

/** A sample's [height, width]: `size` (checked to fit the plan's input) or the plan's input size. */
function sampleSize(plan: RecipePlan, size?: readonly [number, number]): [number, number] {
  if (size === undefined) return [plan.inputHeight, plan.inputWidth];
  const [h, w] = size;
  if (
    !(Number.isInteger(h) && Number.isInteger(w) && h >= 1 && w >= 1 && h <= plan.inputHeight &&
      w <= plan.inputWidth)
  ) {
    throw new Error(
      `augment: image size ${h}x${w} does not fit the ${plan.inputHeight}x${plan.inputWidth} input ` +
        `of recipe ${plan.recipe.name}`,
    );
  }
  return [h, w];
}

/** Packs draws[v][b] into the float32 parameter tensor [views, batch, columns]; `sizes` as in {@link sampleBatch}. */
export function packBatch(
  plan: RecipePlan,
  draws: ViewDraws[][],
  sizes: Int32Array | null = null,
): HostTensor {
  const views = draws.length;
  const batch = draws[0]?.length ?? 0;
  const data = new Float32Array(views * batch * plan.columns);
  for (let v = 0; v < views; v++) {
    if (draws[v].length !== batch) {
      throw new Error(`augment: view ${v} has ${draws[v].length} samples, view 0 ${batch}`);
    }
    for (let b = 0; b < batch; b++) {
      const start = (v * batch + b) * plan.columns;
      packView(
        plan,
        draws[v][b],
        data.subarray(start, start + plan.columns),
        sampleSizeAt(sizes, b),
      );
    }
  }
  return { dtype: "float32", shape: [views, batch, plan.columns], data };
}

/** Convenience: {@link planRecipe} then {@link sampleBatch}. */
export function sampleRecipeBatch(
  recipe: Recipe,
  height: number,
  width: number,
  rng: Rng,
  batch: number,
  views = 2,
): BatchParams {
  return sampleBatch(planRecipe(recipe, height, width), rng, batch, views);
}
