/**
 * The augmentation as an ONNX graph: uint8 images [B, 3, H, W] and the packed
 * per-sample parameters [V, B, columns] (src/augment/params.ts) in, float32
 * views [B, 3, outH, outW] out, one per view. Everything runs batched with a
 * leading view axis, so V views cost one pass.
 *
 * - Geometry (crop, resize, flip) is one separable resampling: per sample and
 *   axis a weight matrix built in the graph from (origin, step, window), applied
 *   as MatMul along width, then height (PIL's order), clamping to [0, 1] after
 *   each pass as PIL's uint8 result is. The filter is PIL's bilinear or
 *   bicubic (a = −0.5), widened by the scale when shrinking (antialias), reading
 *   only pixels inside the crop, with weights renormalised per output pixel: the
 *   float form of PIL's `resize` that torchvision runs on the originals' PIL
 *   images, and of torchvision's tensor `resize(antialias=True)`.
 * - Colour jitter: brightness, contrast and saturation are blends
 *   clamp(f·x + (1 − f)·target); the host places them in three blend stages
 *   before and three after the single hue stage, in each sample's order.
 * - Hue: torchvision's `_rgb2hsv`, shift mod 1, and HSV → RGB.
 * - Gaussian blur: per-sample kernel from σ, separable, reflect padding.
 */
import { type Dim, Graph, ops, type Tensor } from "../onnx/mod.ts";
import {
  BICUBIC_A,
  blockOf,
  type ColumnBlock,
  type Interpolation,
  JITTER_STAGES,
  LUMA,
  type RecipePlan,
  STAGE_COLUMNS,
} from "./recipes.ts";

/** Options of {@link augmentationGraph}. */
export interface AugmentGraphOptions {
  /** Views per image (default 2). */
  views?: number;
  /** Batch dimension: a number or a symbol (default "batch"). */
  batch?: Dim;
  /** Output names (default view1, view2, ...). */
  outputNames?: string[];
}

/**
 * A standalone augmentation graph: inputs `images` (uint8 [batch, 3, H, W]) and, when the
 * recipe has random parameters, `params` (float32 [views, batch, plan.columns]); outputs one
 * float32 [batch, 3, outH, outW] tensor per view.
 */
export function augmentationGraph(plan: RecipePlan, options: AugmentGraphOptions = {}): Graph {
  const views = options.views ?? 2;
  const batch = options.batch ?? "batch";
  const names = options.outputNames ?? Array.from({ length: views }, (_, v) => `view${v + 1}`);
  if (names.length !== views) {
    throw new Error(`augmentationGraph: ${names.length} output names for ${views} views`);
  }
  const graph = new Graph(`augment_${plan.recipe.name}`);
  const images = graph.input("images", "uint8", [batch, 3, plan.inputHeight, plan.inputWidth]);
  const params = plan.columns > 0
    ? graph.input("params", "float32", [views, batch, plan.columns])
    : null;
  const out = buildAugmentation(plan, images, params);
  for (let v = 0; v < views; v++) {
    const index = out.shape[0] === 1 ? 0 : v;
    graph.output(ops.squeeze(ops.slice(out, [index], [index + 1], [0]), [0]), names[v]);
  }
  return graph;
}

/**
 * Adds the augmentation to the graph of `images` (uint8 [B, 3, H, W]) and returns the views,
 * float32 [V, B, 3, outH, outW] (V is 1 when the recipe draws nothing). `params` is
 * [V, B, plan.columns] float32, null only when plan.columns is 0.
 */
export function buildAugmentation(plan: RecipePlan, images: Tensor, params: Tensor | null): Tensor {
  const graph = images.graph;
  if (images.dtype !== "uint8" || images.rank !== 4 || images.shape[1] !== 3) {
    throw new Error(
      `augment graph: images must be uint8 [batch, 3, H, W], got ${images.dtype} ${images.shapeText}`,
    );
  }
  if (images.shape[2] !== plan.inputHeight || images.shape[3] !== plan.inputWidth) {
    throw new Error(
      `augment graph: images are ${images.shapeText}, recipe ${plan.recipe.name} was planned for ` +
        `${plan.inputHeight}x${plan.inputWidth}`,
    );
  }
  if (plan.columns > 0 && (!params || params.rank !== 3 || params.shape[2] !== plan.columns)) {
    throw new Error(
      `augment graph: params must be float32 [views, batch, ${plan.columns}], got ${
        params?.shapeText ?? "none"
      }`,
    );
  }
  return graph.scope("augment", () => {
    const pixels = ops.div(ops.cast(images, "float32"), 255);
    let x = ops.unsqueeze(pixels, [0]);
    const col = (block: ColumnBlock, k: number) => column(params!, block.offset + k);
    if (plan.hasGeometry) x = graph.scope("resample", () => resample(plan, x, params!));
    plan.recipe.transforms.forEach((spec, k) => {
      switch (spec.kind) {
        case "color_jitter": {
          const block = blockOf(plan, k);
          x = graph.scope("color_jitter", () => {
            let y = x;
            for (let s = 0; s < JITTER_STAGES; s++) {
              if (s === JITTER_STAGES / 2) {
                const shift = col(block, JITTER_STAGES * STAGE_COLUMNS);
                const on = col(block, JITTER_STAGES * STAGE_COLUMNS + 1);
                y = ops.where(ops.cast(on, "bool"), adjustHue(y, shift), y);
              }
              const base = s * STAGE_COLUMNS;
              y = blendStage(y, col(block, base), col(block, base + 1), col(block, base + 2));
            }
            return y;
          });
          break;
        }
        case "grayscale": {
          const on = col(blockOf(plan, k), 0);
          x = graph.scope("grayscale", () => ops.where(ops.cast(on, "bool"), luma(x), x));
          break;
        }
        case "gaussian_blur": {
          const block = blockOf(plan, k);
          x = graph.scope(
            "gaussian_blur",
            () => gaussianBlur(x, spec.kernelSize, col(block, 0), col(block, 1)),
          );
          break;
        }
        case "normalize":
          x = graph.scope("normalize", () => {
            const mean = graph.constant([...spec.mean], "float32", [1, 1, 3, 1, 1]);
            const std = graph.constant([...spec.std], "float32", [1, 1, 3, 1, 1]);
            return ops.div(ops.sub(x, mean), std);
          });
          break;
      }
    });
    return x;
  });
}

/** Column k of params [V, B, P] as [V, B, 1, 1, 1] (per-sample scalar for image tensors). */
function column(params: Tensor, k: number): Tensor {
  return ops.unsqueeze(ops.slice(params, [k], [k + 1], [2]), [3, 4]);
}

/** Column k of params as [V, B, 1, 1] (per-sample scalar for weight matrices). */
function matrixColumn(params: Tensor, k: number): Tensor {
  return ops.unsqueeze(ops.slice(params, [k], [k + 1], [2]), [3]);
}

function filterWeights(d: Tensor, interpolation: Interpolation): Tensor {
  const ad = ops.abs(d);
  if (interpolation === "bilinear") return ops.relu(ops.sub(ops.scalarLike(ad, 1), ad));
  const a = BICUBIC_A;
  const ad2 = ops.mul(ad, ad);
  // |d| < 1: ((a + 2)|d| − (a + 3))|d|² + 1;  1 <= |d| < 2: (((|d| − 5)|d| + 8)|d| − 4)·a
  const near = ops.add(ops.mul(ops.sub(ops.mul(ad, a + 2), a + 3), ad2), 1);
  const far = ops.mul(ops.sub(ops.mul(ops.add(ops.mul(ops.sub(ad, 5), ad), 8), ad), 4), a);
  const zero = ops.scalarLike(ad, 0);
  return ops.where(ops.less(ad, 1), near, ops.where(ops.less(ad, 2), far, zero));
}

/**
 * Per-sample resampling weights of one axis from its (origin, step, low, high) columns:
 * [V, B, out, source], or [V, B, source, out] when `transposed`.
 */
function axisWeights(
  params: Tensor,
  offset: number,
  source: number,
  out: number,
  interpolation: Interpolation,
  transposed: boolean,
): Tensor {
  const graph = params.graph;
  const origin = matrixColumn(params, offset);
  const step = matrixColumn(params, offset + 1);
  const low = matrixColumn(params, offset + 2);
  const high = matrixColumn(params, offset + 3);
  const outShape = transposed ? [1, out] : [out, 1];
  const sourceShape = transposed ? [source, 1] : [1, source];
  const outCentres = graph.constant(
    Array.from({ length: out }, (_, o) => o + 0.5),
    "float32",
    outShape,
  );
  const sourceCentres = graph.constant(
    Array.from({ length: source }, (_, s) => s + 0.5),
    "float32",
    sourceShape,
  );
  const sourceIndex = graph.constant(
    Array.from({ length: source }, (_, s) => s),
    "float32",
    sourceShape,
  );
  const centre = ops.add(origin, ops.mul(outCentres, step));
  const filterScale = ops.max(ops.abs(step), 1);
  const d = ops.div(ops.sub(sourceCentres, centre), filterScale);
  const inside = ops.and(ops.greaterOrEqual(sourceIndex, low), ops.less(sourceIndex, high));
  const weights = ops.where(inside, filterWeights(d, interpolation), ops.scalarLike(d, 0));
  const total = ops.reduceSum(weights, [transposed ? 2 : 3]);
  const denominator = ops.where(ops.equal(total, 0), ops.scalarLike(total, 1), total);
  return ops.div(weights, denominator);
}

/** Crop/resize/flip of x [1, B, 3, H, W] into [V, B, 3, outH, outW]. */
function resample(plan: RecipePlan, x: Tensor, params: Tensor): Tensor {
  const { inputHeight: h, inputWidth: w, outputHeight: oh, outputWidth: ow, interpolation } = plan;
  const offset = blockOf(plan, -1).offset;
  const widthT = axisWeights(params, offset + 4, w, ow, interpolation, true);
  const rows = ops.reshape(x, [1, 0, 3 * h, w]);
  const horizontal = ops.clip(ops.matmul(rows, widthT, "resample_width"), 0, 1);
  const planes = ops.reshape(horizontal, [0, 0, 3, h, ow]);
  const heightW = ops.unsqueeze(axisWeights(params, offset, h, oh, interpolation, false), [2]);
  return ops.clip(ops.matmul(heightW, planes, "resample_height"), 0, 1);
}

/** Luma of [.., 3, h, w] as [.., 1, h, w]. */
function luma(x: Tensor): Tensor {
  const weights = x.graph.constant([...LUMA], "float32", [1, 1, 3, 1, 1]);
  return ops.reduceSum(ops.mul(x, weights), [2]);
}

/** clamp(f·x + (1 − f)·(wc·mean(luma) + ws·luma), 0, 1). */
function blendStage(
  x: Tensor,
  factor: Tensor,
  contrastWeight: Tensor,
  saturationWeight: Tensor,
): Tensor {
  const gray = luma(x);
  const mean = ops.reduceMean(gray, [2, 3, 4]);
  const target = ops.add(ops.mul(contrastWeight, mean), ops.mul(saturationWeight, gray));
  const blended = ops.add(
    ops.mul(factor, x),
    ops.mul(ops.sub(ops.scalarLike(factor, 1), factor), target),
  );
  return ops.clip(blended, 0, 1);
}

/** torchvision adjust_hue: RGB → HSV, h ← (h + shift) mod 1, HSV → RGB. */
function adjustHue(x: Tensor, shift: Tensor): Tensor {
  const graph = x.graph;
  const one = ops.scalarLike(x, 1);
  const channel = (c: number) => ops.slice(x, [c], [c + 1], [2]);
  const [r, g, b] = [channel(0), channel(1), channel(2)];
  const maxc = ops.reduceMax(x, [2]);
  const minc = ops.reduceMin(x, [2]);
  const equalExtremes = ops.equal(maxc, minc);
  const range = ops.sub(maxc, minc);
  const saturation = ops.div(range, ops.where(equalExtremes, one, maxc));
  const divisor = ops.where(equalExtremes, one, range);
  const rc = ops.div(ops.sub(maxc, r), divisor);
  const gc = ops.div(ops.sub(maxc, g), divisor);
  const bc = ops.div(ops.sub(maxc, b), divisor);
  const hueRaw = ops.where(
    ops.equal(maxc, r),
    ops.sub(bc, gc),
    ops.where(ops.equal(maxc, g), ops.sub(ops.add(rc, 2), bc), ops.sub(ops.add(gc, 4), rc)),
  );
  const fraction = (t: Tensor) => ops.sub(t, ops.floor(t));
  const hue = fraction(ops.add(ops.div(hueRaw, 6), 1));
  const shifted = fraction(ops.add(hue, shift));
  // HSV → RGB per channel n ∈ (5, 3, 1): v − v·s·clamp(min(k, 4 − k), 0, 1), k = (n + 6h) mod 6;
  // equal to torchvision's sector table.
  const sectors = graph.constant([5, 3, 1], "float32", [1, 1, 3, 1, 1]);
  const k6 = ops.add(ops.mul(shifted, 6), sectors);
  const k = ops.sub(k6, ops.mul(ops.floor(ops.div(k6, 6)), 6));
  const ramp = ops.clip(ops.min(k, ops.sub(ops.scalarLike(k, 4), k)), 0, 1);
  return ops.sub(maxc, ops.mul(ops.mul(maxc, saturation), ramp));
}

/** Separable Gaussian blur with per-sample σ, identity where `on` is 0; reflect padding. */
function gaussianBlur(x: Tensor, kernelSize: number, sigma: Tensor, on: Tensor): Tensor {
  const graph = x.graph;
  const radius = (kernelSize - 1) / 2;
  if (radius === 0) return x;
  const [h, w] = [x.shape[3] as number, x.shape[4] as number];
  const sigma2 = ops.mul(sigma, sigma);
  const tails: Tensor[] = [];
  for (let d = 1; d <= radius; d++) {
    tails.push(ops.mul(ops.exp(ops.div(ops.scalarLike(sigma2, -0.5 * d * d), sigma2)), on));
  }
  const total = ops.add(
    ops.mul(tails.length > 1 ? ops.sum(tails) : tails[0], 2),
    1,
  );
  const weights = [ops.reciprocal(total), ...tails.map((t) => ops.div(t, total))];
  const padded = graph.op(
    "Pad",
    [x, ops.ints(graph, [0, 0, 0, radius, radius, 0, 0, 0, radius, radius])],
    { mode: "reflect" },
  );
  const pass = (input: Tensor, axis: number, size: number) => {
    const terms: Tensor[] = [];
    for (let d = -radius; d <= radius; d++) {
      const shifted = ops.slice(input, [radius + d], [radius + d + size], [axis]);
      terms.push(ops.mul(shifted, weights[Math.abs(d)]));
    }
    return terms.length > 1 ? ops.sum(terms) : terms[0];
  };
  return pass(pass(padded, 4, w), 3, h);
}
