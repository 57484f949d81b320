/**
 * Evaluation-time geometry as torchvision does it on PIL images: `Resize` (Pillow's bilinear
 * resampling, antialiased when shrinking, 8-bit fixed point, horizontal pass first) and
 * `CenterCrop`. Written after Pillow's Resample.c so results match Pillow byte for byte.
 */

import type { RgbImage } from "./image_decode.ts";

const PRECISION_BITS = 32 - 8 - 2;
const ONE = 1 << PRECISION_BITS;

/** Pillow's precompute_coeffs for the bilinear (triangle) filter, in 8-bit fixed point. */
function coefficients(inSize: number, outSize: number) {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = filterScale; // bilinear support is 1
  const kernelSize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const weights = new Int32Array(outSize * kernelSize);
  const row = new Float64Array(kernelSize);
  const inverseScale = 1 / filterScale;
  for (let out = 0; out < outSize; out++) {
    const center = (out + 0.5) * scale;
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const xmax = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    let total = 0;
    for (let x = 0; x < xmax; x++) {
      const t = Math.abs((x + xmin - center + 0.5) * inverseScale);
      row[x] = t < 1 ? 1 - t : 0;
      total += row[x];
    }
    for (let x = 0; x < xmax; x++) {
      const w = total !== 0 ? row[x] / total : row[x];
      weights[out * kernelSize + x] = Math.trunc(w < 0 ? -0.5 + w * ONE : 0.5 + w * ONE);
    }
    bounds[2 * out] = xmin;
    bounds[2 * out + 1] = xmax;
  }
  return { bounds, weights, kernelSize };
}

function clip8(value: number): number {
  if (value >= ONE * 256) return 255;
  if (value <= 0) return 0;
  return Math.floor(value / ONE);
}

/** Resizes an RGB (HWC) image to width × height with Pillow's BILINEAR filter. */
export function resizeBilinear(image: RgbImage, width: number, height: number): RgbImage {
  if (!(width >= 1 && height >= 1)) throw new Error(`resize: bad target size ${width}×${height}`);
  let current = image;
  if (width !== image.width) {
    const { bounds, weights, kernelSize } = coefficients(image.width, width);
    const data = new Uint8Array(image.height * width * 3);
    const src = image.data;
    for (let y = 0; y < image.height; y++) {
      const rowIn = y * image.width * 3;
      for (let x = 0; x < width; x++) {
        const xmin = bounds[2 * x];
        const count = bounds[2 * x + 1];
        const k = x * kernelSize;
        let r = ONE / 2, g = ONE / 2, b = ONE / 2;
        for (let i = 0; i < count; i++) {
          const at = rowIn + (xmin + i) * 3;
          const w = weights[k + i];
          r += src[at] * w;
          g += src[at + 1] * w;
          b += src[at + 2] * w;
        }
        const out = (y * width + x) * 3;
        data[out] = clip8(r);
        data[out + 1] = clip8(g);
        data[out + 2] = clip8(b);
      }
    }
    current = { width, height: image.height, data };
  }
  if (height !== current.height) {
    const { bounds, weights, kernelSize } = coefficients(current.height, height);
    const data = new Uint8Array(height * width * 3);
    const src = current.data;
    const stride = width * 3;
    for (let y = 0; y < height; y++) {
      const ymin = bounds[2 * y];
      const count = bounds[2 * y + 1];
      const k = y * kernelSize;
      for (let x = 0; x < stride; x++) {
        let sum = ONE / 2;
        for (let i = 0; i < count; i++) sum += src[(ymin + i) * stride + x] * weights[k + i];
        data[y * stride + x] = clip8(sum);
      }
    }
    current = { width, height, data };
  }
  return current === image ? { width, height, data: image.data.slice() } : current;
}

/** torchvision `Resize(size)` output size: the shorter side becomes `size`, the other int(size·long/short). */
export function resizeShorterSide(width: number, height: number, size: number): [number, number] {
  if (width <= height) return [size, Math.trunc((size * height) / width)];
  return [Math.trunc((size * width) / height), size];
}

/** Python's round(): halves go to the even neighbour (torchvision's center_crop uses it). */
function roundHalfEven(value: number): number {
  const floor = Math.floor(value);
  const diff = value - floor;
  if (diff > 0.5) return floor + 1;
  if (diff < 0.5) return floor;
  return floor % 2 === 0 ? floor : floor + 1;
}

/** torchvision `CenterCrop` to width × height (the image must be at least that large). */
export function centerCrop(image: RgbImage, width: number, height: number): RgbImage {
  if (width > image.width || height > image.height) {
    throw new Error(
      `center crop: ${width}×${height} is larger than the ${image.width}×${image.height} image`,
    );
  }
  const top = roundHalfEven((image.height - height) / 2);
  const left = roundHalfEven((image.width - width) / 2);
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    const from = ((top + y) * image.width + left) * 3;
    data.set(image.data.subarray(from, from + width * 3), y * width * 3);
  }
  return { width, height, data };
}

/** HWC RGB → CHW planes, written into `out` at `offset`. */
export function hwcToChw(image: RgbImage, out: Uint8Array, offset = 0): void {
  const plane = image.width * image.height;
  const src = image.data;
  for (let i = 0; i < plane; i++) {
    out[offset + i] = src[3 * i];
    out[offset + plane + i] = src[3 * i + 1];
    out[offset + 2 * plane + i] = src[3 * i + 2];
  }
}
