/**
 * Plain-TypeScript float64 reference of every augmentation op, written the
 * way the originals compute them (one image at a time, each transform applied
 * literally in recipe order), for testing the graph:
 * crop with zero fill (torchvision `crop`/`pad`), PIL's resampling loop
 * (`precompute_coeffs`: crop, horizontal pass, vertical pass), torchvision's
 * tensor colour ops (`_blend`, `_rgb2hsv`, `_hsv2rgb` with its sector table)
 * and `gaussian_blur` (2-D kernel, reflect padding).
 */
import { BICUBIC_A, type Interpolation, LUMA, type Recipe, resizedSize } from "./recipes.ts";
import { centerCropOffset, type JitterDraw, type ViewDraws } from "./params.ts";

/** A float image: 3 planes (CHW) of height × width. */
export interface RefImage {
  data: Float64Array;
  height: number;
  width: number;
}

/** uint8 CHW pixels to [0, 1] (torchvision `ToTensor`). */
export function toUnit(pixels: Uint8Array, height: number, width: number): RefImage {
  if (pixels.length !== 3 * height * width) {
    throw new Error(`reference: ${pixels.length} bytes for a 3x${height}x${width} image`);
  }
  return { data: Float64Array.from(pixels, (v) => v / 255), height, width };
}

function blank(height: number, width: number): RefImage {
  return { data: new Float64Array(3 * height * width), height, width };
}

/** Crop [top, top+height) × [left, left+width); pixels outside the image are 0. */
export function crop(
  img: RefImage,
  top: number,
  left: number,
  height: number,
  width: number,
): RefImage {
  const out = blank(height, width);
  for (let c = 0; c < 3; c++) {
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const sy = top + y;
        const sx = left + x;
        if (sy < 0 || sy >= img.height || sx < 0 || sx >= img.width) continue;
        out.data[(c * height + y) * width + x] = img.data[(c * img.height + sy) * img.width + sx];
      }
    }
  }
  return out;
}

/** PIL's filters (libImaging/Resample.c). */
function filter(x: number, interpolation: Interpolation): number {
  const ax = Math.abs(x);
  if (interpolation === "bilinear") return ax < 1 ? 1 - ax : 0;
  const a = BICUBIC_A;
  if (ax < 1) return ((a + 2) * ax - (a + 3)) * ax * ax + 1;
  if (ax < 2) return (((ax - 5) * ax + 8) * ax - 4) * a;
  return 0;
}

/** PIL `precompute_coeffs`: for each output pixel, its first source pixel and weights. */
function coefficients(inSize: number, outSize: number, interpolation: Interpolation) {
  const support = interpolation === "bilinear" ? 1 : 2;
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const reach = support * filterScale;
  const result: { start: number; weights: number[] }[] = [];
  for (let xx = 0; xx < outSize; xx++) {
    const centre = (xx + 0.5) * scale;
    const xmin = Math.max(Math.trunc(centre - reach + 0.5), 0);
    const xmax = Math.min(Math.trunc(centre + reach + 0.5), inSize) - xmin;
    const weights: number[] = [];
    let total = 0;
    for (let x = 0; x < xmax; x++) {
      const wgt = filter((x + xmin - centre + 0.5) / filterScale, interpolation);
      weights.push(wgt);
      total += wgt;
    }
    if (total !== 0) { for (let x = 0; x < weights.length; x++) weights[x] /= total; }
    result.push({ start: xmin, weights });
  }
  return result;
}

/** PIL `Image.resize` in float: horizontal pass, clamp, vertical pass, clamp. */
export function resize(
  img: RefImage,
  height: number,
  width: number,
  interpolation: Interpolation,
): RefImage {
  const mid = blank(img.height, width);
  const horizontal = coefficients(img.width, width, interpolation);
  for (let c = 0; c < 3; c++) {
    for (let y = 0; y < img.height; y++) {
      const row = (c * img.height + y) * img.width;
      for (let x = 0; x < width; x++) {
        const { start, weights } = horizontal[x];
        let acc = 0;
        for (let t = 0; t < weights.length; t++) acc += weights[t] * img.data[row + start + t];
        mid.data[(c * img.height + y) * width + x] = clamp01(acc);
      }
    }
  }
  const out = blank(height, width);
  const vertical = coefficients(img.height, height, interpolation);
  for (let c = 0; c < 3; c++) {
    for (let y = 0; y < height; y++) {
      const { start, weights } = vertical[y];
      for (let x = 0; x < width; x++) {
        let acc = 0;
        for (let t = 0; t < weights.length; t++) {
          acc += weights[t] * mid.data[(c * img.height + start + t) * width + x];
        }
        out.data[(c * height + y) * width + x] = clamp01(acc);
      }
    }
  }
  return out;
}

/** Mirror left–right. */
export function hflip(img: RefImage): RefImage {
  const out = blank(img.height, img.width);
  const { height, width } = img;
  for (let c = 0; c < 3; c++) {
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        out.data[(c * height + y) * width + x] =
          img.data[(c * height + y) * width + (width - 1 - x)];
      }
    }
  }
  return out;
}

function clamp01(v: number): number {
  return Math.min(Math.max(v, 0), 1);
}

/** Luma plane (height × width). */
export function lumaPlane(img: RefImage): Float64Array {
  const n = img.height * img.width;
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    out[i] = LUMA[0] * img.data[i] + LUMA[1] * img.data[n + i] + LUMA[2] * img.data[2 * n + i];
  }
  return out;
}

/** torchvision `_blend`: clamp(ratio·img + (1 − ratio)·other(c, i), 0, 1). */
function blend(img: RefImage, ratio: number, other: (c: number, i: number) => number): RefImage {
  const out = blank(img.height, img.width);
  const n = img.height * img.width;
  for (let c = 0; c < 3; c++) {
    for (let i = 0; i < n; i++) {
      out.data[c * n + i] = clamp01(ratio * img.data[c * n + i] + (1 - ratio) * other(c, i));
    }
  }
  return out;
}

/** torchvision `adjust_brightness`: blend with black. */
export function adjustBrightness(img: RefImage, factor: number): RefImage {
  return blend(img, factor, () => 0);
}

/** torchvision `adjust_contrast`: blend with the mean luma of the image. */
export function adjustContrast(img: RefImage, factor: number): RefImage {
  const gray = lumaPlane(img);
  const mean = gray.reduce((s, v) => s + v, 0) / gray.length;
  return blend(img, factor, () => mean);
}

/** torchvision `adjust_saturation`: blend with the luma image. */
export function adjustSaturation(img: RefImage, factor: number): RefImage {
  const gray = lumaPlane(img);
  return blend(img, factor, (_, i) => gray[i]);
}

/** torchvision `adjust_hue` (via `_rgb2hsv` and `_hsv2rgb`). */
export function adjustHue(img: RefImage, shift: number): RefImage {
  if (!(shift >= -0.5 && shift <= 0.5)) {
    throw new Error(`reference: hue shift ${shift} is not in [-0.5, 0.5]`);
  }
  const out = blank(img.height, img.width);
  const n = img.height * img.width;
  for (let i = 0; i < n; i++) {
    const r = img.data[i];
    const g = img.data[n + i];
    const b = img.data[2 * n + i];
    const maxc = Math.max(r, g, b);
    const minc = Math.min(r, g, b);
    const eqc = maxc === minc;
    const cr = maxc - minc;
    const s = cr / (eqc ? 1 : maxc);
    const divisor = eqc ? 1 : cr;
    const rc = (maxc - r) / divisor;
    const gc = (maxc - g) / divisor;
    const bc = (maxc - b) / divisor;
    const hr = maxc === r ? bc - gc : 0;
    const hg = maxc === g && maxc !== r ? 2 + rc - bc : 0;
    const hb = maxc !== g && maxc !== r ? 4 + gc - rc : 0;
    const h0 = (hr + hg + hb) / 6 + 1;
    const h = h0 - Math.trunc(h0); // torch.fmod(h / 6 + 1, 1)
    const hh = floorMod(h + shift, 1); // Python's % 1.0
    const sector = Math.floor(hh * 6);
    const f = hh * 6 - sector;
    const v = maxc;
    const p = clamp01(v * (1 - s));
    const q = clamp01(v * (1 - s * f));
    const t = clamp01(v * (1 - s * (1 - f)));
    const table = [
      [v, t, p],
      [q, v, p],
      [p, v, t],
      [p, q, v],
      [t, p, v],
      [v, p, q],
    ][floorMod(sector, 6)];
    out.data[i] = table[0];
    out.data[n + i] = table[1];
    out.data[2 * n + i] = table[2];
  }
  return out;
}

function floorMod(a: number, m: number): number {
  return a - Math.floor(a / m) * m;
}

/** Luma copied to the three channels (torchvision `rgb_to_grayscale(img, 3)`). */
export function grayscale(img: RefImage): RefImage {
  const gray = lumaPlane(img);
  const out = blank(img.height, img.width);
  for (let c = 0; c < 3; c++) out.data.set(gray, c * gray.length);
  return out;
}

/** torchvision `gaussian_blur`: 2-D kernel outer(k1d, k1d), reflect padding, per channel. */
export function gaussianBlur(img: RefImage, kernelSize: number, sigma: number): RefImage {
  const half = (kernelSize - 1) / 2;
  const pdf = Array.from(
    { length: kernelSize },
    (_, t) => Math.exp(-0.5 * ((t - half) / sigma) ** 2),
  );
  const sum = pdf.reduce((s, v) => s + v, 0);
  const k1 = pdf.map((v) => v / sum);
  const { height, width } = img;
  const reflect = (i: number, n: number) => (i < 0 ? -i : i >= n ? 2 * (n - 1) - i : i);
  const out = blank(height, width);
  for (let c = 0; c < 3; c++) {
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        let acc = 0;
        for (let dy = -half; dy <= half; dy++) {
          for (let dx = -half; dx <= half; dx++) {
            const sy = reflect(y + dy, height);
            const sx = reflect(x + dx, width);
            acc += k1[dy + half] * k1[dx + half] * img.data[(c * height + sy) * width + sx];
          }
        }
        out.data[(c * height + y) * width + x] = acc;
      }
    }
  }
  return out;
}

/** (x − mean[c]) / std[c]. */
export function normalize(
  img: RefImage,
  mean: readonly number[],
  std: readonly number[],
): RefImage {
  const out = blank(img.height, img.width);
  const n = img.height * img.width;
  for (let c = 0; c < 3; c++) {
    for (let i = 0; i < n; i++) out.data[c * n + i] = (img.data[c * n + i] - mean[c]) / std[c];
  }
  return out;
}

/** torchvision `ColorJitter.forward`: the enabled ops in the drawn order. */
export function colorJitter(img: RefImage, jitter: JitterDraw): RefImage {
  let out = img;
  for (const op of jitter.order) {
    if (op === 0 && jitter.brightness !== null) out = adjustBrightness(out, jitter.brightness);
    if (op === 1 && jitter.contrast !== null) out = adjustContrast(out, jitter.contrast);
    if (op === 2 && jitter.saturation !== null) out = adjustSaturation(out, jitter.saturation);
    if (op === 3 && jitter.hue !== null) out = adjustHue(out, jitter.hue);
  }
  return out;
}

/** One view of one image: every transform of the recipe applied literally with its draws. */
export function referenceView(recipe: Recipe, image: RefImage, draws: ViewDraws): RefImage {
  if (draws.length !== recipe.transforms.length) {
    throw new Error(`reference: ${draws.length} draws for ${recipe.transforms.length} transforms`);
  }
  let img = image;
  recipe.transforms.forEach((spec, k) => {
    const draw = draws[k];
    if (draw.kind !== spec.kind) {
      throw new Error(`reference: draw ${k} is ${draw.kind}, recipe has ${spec.kind}`);
    }
    switch (spec.kind) {
      case "random_resized_crop": {
        const box =
          (draw as { box: { top: number; left: number; height: number; width: number } | null })
            .box;
        if (box) {
          img = crop(img, box.top, box.left, box.height, box.width);
          img = resize(img, spec.size[0], spec.size[1], spec.interpolation);
        }
        break;
      }
      case "random_crop": {
        const d = draw as { top: number; left: number };
        img = crop(img, d.top, d.left, spec.size[0], spec.size[1]);
        break;
      }
      case "resize": {
        const [h, w] = resizedSize(spec.size, img.height, img.width);
        img = resize(img, h, w, spec.interpolation);
        break;
      }
      case "center_crop":
        img = crop(
          img,
          centerCropOffset(img.height, spec.size[0]),
          centerCropOffset(img.width, spec.size[1]),
          spec.size[0],
          spec.size[1],
        );
        break;
      case "horizontal_flip":
        if ((draw as { applied: boolean }).applied) img = hflip(img);
        break;
      case "color_jitter": {
        const d = draw as { applied: boolean; jitter: JitterDraw | null };
        if (d.applied && d.jitter) img = colorJitter(img, d.jitter);
        break;
      }
      case "grayscale":
        if ((draw as { applied: boolean }).applied) img = grayscale(img);
        break;
      case "gaussian_blur": {
        const d = draw as { applied: boolean; sigma: number };
        if (d.applied) img = gaussianBlur(img, spec.kernelSize, d.sigma);
        break;
      }
      case "normalize":
        img = normalize(img, spec.mean, spec.std);
        break;
    }
  });
  return img;
}
