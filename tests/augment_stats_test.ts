/**
 * Distribution checks of the host-side augmentation sampling against the
 * exact probabilities of torchvision's procedures (binomial bounds of 4σ;
 * fixed seeds, so each check is deterministic).
 */
import { assert, assertEquals } from "./assert.ts";
import {
  ethRecipe,
  type JitterDraw,
  planRecipe,
  probeCropFlipRecipe,
  type ResizedCropBox,
  roundHalfEven,
  sampleResizedCrop,
  sampleView,
  sdclrRecipe,
  type TransformDraw,
} from "../src/augment/mod.ts";
import { Rng } from "../src/util/rng.ts";

const N = 20_000;

/** |observed − n·p| ≤ 4·sqrt(n·p·(1 − p)) + slack. */
function assertBinomial(observed: number, n: number, p: number, what: string, slack = 0): void {
  const mean = n * p;
  const bound = 4 * Math.sqrt(n * p * (1 - p)) + slack;
  assert(
    Math.abs(observed - mean) <= bound,
    `${what}: ${observed} of ${n}, expected ${mean.toFixed(1)} ± ${bound.toFixed(1)}`,
  );
}

/** Whether torchvision's attempt (scale s, log-ratio lr) is accepted on an H×W image. */
function accepted(s: number, lr: number, height: number, width: number): boolean {
  const area = height * width * s;
  const w = roundHalfEven(Math.sqrt(area * Math.exp(lr)));
  const h = roundHalfEven(Math.sqrt(area / Math.exp(lr)));
  return 0 < w && w <= width && 0 < h && h <= height;
}

/**
 * Midpoint-rule integration over the (scale, log-ratio) rectangle: the acceptance probability and,
 * for bins of scale and of log-ratio, the probability of a bin given acceptance.
 */
function acceptanceTable(
  height: number,
  width: number,
  scale: [number, number],
  ratio: [number, number],
  bins: number,
  grid = 1500,
) {
  const [l0, l1] = [Math.log(ratio[0]), Math.log(ratio[1])];
  const scaleBins = new Array<number>(bins).fill(0);
  const ratioBins = new Array<number>(bins).fill(0);
  let inside = 0;
  for (let i = 0; i < grid; i++) {
    const s = scale[0] + ((i + 0.5) / grid) * (scale[1] - scale[0]);
    for (let j = 0; j < grid; j++) {
      const lr = l0 + ((j + 0.5) / grid) * (l1 - l0);
      if (!accepted(s, lr, height, width)) continue;
      inside++;
      scaleBins[Math.floor((i * bins) / grid)]++;
      ratioBins[Math.floor((j * bins) / grid)]++;
    }
  }
  return {
    pAccept: inside / (grid * grid),
    scaleBins: scaleBins.map((c) => c / inside),
    ratioBins: ratioBins.map((c) => c / inside),
  };
}

function binOf(value: number, range: [number, number], bins: number): number {
  return Math.min(bins - 1, Math.floor(((value - range[0]) / (range[1] - range[0])) * bins));
}

Deno.test("RandomResizedCrop: accepted scales and log-ratios follow the conditioned uniform law", () => {
  const rng = new Rng(101);
  const scale: [number, number] = [0.08, 1];
  const ratio: [number, number] = [3 / 4, 4 / 3];
  const logRange: [number, number] = [Math.log(ratio[0]), Math.log(ratio[1])];
  const bins = 10;
  const table = acceptanceTable(32, 32, scale, ratio, bins);
  const boxes: ResizedCropBox[] = [];
  for (let n = 0; n < N; n++) boxes.push(sampleResizedCrop(rng, 32, 32, scale, ratio));
  const ok = boxes.filter((b) => !b.fallback);
  // On 32x32 the acceptance probability is high: a fallback needs 10 rejections in a row.
  assert(table.pAccept > 0.85 && table.pAccept < 0.92, `acceptance ${table.pAccept}`);
  assertBinomial(N - ok.length, N, (1 - table.pAccept) ** 10, "fallbacks", 1);
  const scaleCounts = new Array<number>(bins).fill(0);
  const ratioCounts = new Array<number>(bins).fill(0);
  let firstAttempt = 0;
  let topDeviation = 0;
  let topVariance = 0;
  for (const box of ok) {
    scaleCounts[binOf(box.scale, scale, bins)]++;
    ratioCounts[binOf(box.logRatio, logRange, bins)]++;
    if (box.attempts === 1) firstAttempt++;
    // The box is the one torchvision derives from the accepted draw.
    const area = 1024 * box.scale;
    assertEquals(
      [box.width, box.height],
      [
        roundHalfEven(Math.sqrt(area * Math.exp(box.logRatio))),
        roundHalfEven(Math.sqrt(area / Math.exp(box.logRatio))),
      ],
    );
    assert(
      box.top >= 0 && box.top <= 32 - box.height && box.left >= 0 && box.left <= 32 - box.width,
      "inside",
    );
    const m = 32 - box.height;
    topDeviation += box.top - m / 2;
    topVariance += ((m + 1) ** 2 - 1) / 12;
  }
  for (let k = 0; k < bins; k++) {
    assertBinomial(scaleCounts[k], ok.length, table.scaleBins[k], `scale bin ${k}`, 3);
    assertBinomial(ratioCounts[k], ok.length, table.ratioBins[k], `log-ratio bin ${k}`, 3);
  }
  // The scale law is not uniform on 32x32: large crops with extreme ratios do not fit.
  assert(table.scaleBins[9] < table.scaleBins[0] - 0.01, `top scale bin ${table.scaleBins[9]}`);
  assertBinomial(firstAttempt, ok.length, table.pAccept, "accepted at the first attempt", 3);
  assert(
    Math.abs(topDeviation) <= 4 * Math.sqrt(topVariance),
    `top offsets are uniform: ${topDeviation}`,
  );
});

Deno.test("RandomResizedCrop: fallback frequency on a tiny image and the central fallback box", () => {
  const rng = new Rng(102);
  const scale: [number, number] = [0.02, 0.08];
  const ratio: [number, number] = [3 / 4, 4 / 3];
  const { pAccept } = acceptanceTable(2, 2, scale, ratio, 1, 3000);
  const pFallback = (1 - pAccept) ** 10;
  assert(pFallback > 0.1 && pFallback < 0.4, `fallback probability ${pFallback}`);
  let fallbacks = 0;
  for (let n = 0; n < N; n++) {
    const box = sampleResizedCrop(rng, 2, 2, scale, ratio);
    if (box.fallback) {
      fallbacks++;
      assertEquals([box.top, box.left, box.height, box.width], [0, 0, 2, 2]);
    } else {
      assertEquals([box.height, box.width], [1, 1]);
    }
  }
  assertBinomial(fallbacks, N, pFallback, "fallbacks on 2x2", 2);
  // Wide and tall images fall back to a centred crop with the ratio clamped to the range.
  const wide = sampleResizedCrop(rng, 10, 40, [0.9, 1], ratio);
  assertEquals([wide.fallback, wide.top, wide.left, wide.height, wide.width], [
    true,
    0,
    13,
    10,
    13,
  ]);
  const tall = sampleResizedCrop(rng, 40, 10, [0.9, 1], ratio);
  assertEquals([tall.fallback, tall.top, tall.left, tall.height, tall.width], [
    true,
    13,
    0,
    13,
    10,
  ]);
});

Deno.test("ETH view draws: application rates, factor ranges, uniform jitter orders", () => {
  const rng = new Rng(103);
  const plan = planRecipe(ethRecipe(), 32, 32);
  const counts = { flip: 0, jitter: 0, gray: 0, blur: 0 };
  const orders = new Map<string, number>();
  const factors = {
    brightness: [] as number[],
    contrast: [] as number[],
    saturation: [] as number[],
    hue: [] as number[],
  };
  const sigmas: number[] = [];
  for (let n = 0; n < N; n++) {
    const draws = sampleView(plan, rng);
    const find = <K extends TransformDraw["kind"]>(kind: K) =>
      draws.find((d) => d.kind === kind) as Extract<TransformDraw, { kind: K }>;
    if (find("horizontal_flip").applied) counts.flip++;
    if (find("grayscale").applied) counts.gray++;
    const blur = find("gaussian_blur");
    if (blur.applied) {
      counts.blur++;
      sigmas.push(blur.sigma);
    }
    const jitter = find("color_jitter");
    if (jitter.applied) {
      counts.jitter++;
      const j = jitter.jitter as JitterDraw;
      const key = j.order.join("");
      orders.set(key, (orders.get(key) ?? 0) + 1);
      factors.brightness.push(j.brightness!);
      factors.contrast.push(j.contrast!);
      factors.saturation.push(j.saturation!);
      factors.hue.push(j.hue!);
    }
  }
  assertBinomial(counts.flip, N, 0.5, "flip rate");
  assertBinomial(counts.jitter, N, 0.8, "jitter rate");
  assertBinomial(counts.gray, N, 0.2, "grayscale rate");
  assertBinomial(counts.blur, N, 0.5, "blur rate");

  const checkUniform = (values: number[], low: number, high: number, what: string) => {
    const min = Math.min(...values);
    const max = Math.max(...values);
    assert(
      min >= low && max <= high,
      `${what} in [${min}, ${max}], expected within [${low}, ${high}]`,
    );
    assert(
      min < low + 0.01 * (high - low) && max > high - 0.01 * (high - low),
      `${what} covers its range`,
    );
    const mean = values.reduce((s, v) => s + v, 0) / values.length;
    const sd = (high - low) / Math.sqrt(12 * values.length);
    assert(Math.abs(mean - (low + high) / 2) <= 4 * sd, `${what} mean ${mean}`);
    const belowQuarter = values.filter((v) => v < low + (high - low) / 4).length;
    assertBinomial(belowQuarter, values.length, 0.25, `${what} lower quarter`);
  };
  checkUniform(factors.brightness, 0.6, 1.4, "brightness");
  checkUniform(factors.contrast, 0.6, 1.4, "contrast");
  checkUniform(factors.saturation, 0.6, 1.4, "saturation");
  checkUniform(factors.hue, -0.1, 0.1, "hue");
  checkUniform(sigmas, 0.1, 2, "blur sigma");

  assertEquals(orders.size, 24);
  let chiSquare = 0;
  for (const count of orders.values()) {
    assertBinomial(count, counts.jitter, 1 / 24, "one of the 24 orders");
    const expected = counts.jitter / 24;
    chiSquare += (count - expected) ** 2 / expected;
  }
  // 23 degrees of freedom: P(χ² > 60) ≈ 3e-5.
  assert(chiSquare < 60, `orders χ² ${chiSquare}`);
});

Deno.test("SDCLR crop scale bound and probe RandomCrop offsets", () => {
  const rng = new Rng(104);
  const sdclr = planRecipe(sdclrRecipe(), 32, 32);
  let minScale = 1;
  for (let n = 0; n < 5000; n++) {
    const box = (sampleView(sdclr, rng)[0] as { box: ResizedCropBox }).box;
    if (!box.fallback) minScale = Math.min(minScale, box.scale);
  }
  assert(minScale >= 0.1 && minScale < 0.101, `smallest SDCLR scale ${minScale}`);

  const probe = planRecipe(probeCropFlipRecipe(32, 4), 32, 32);
  const tops = new Array<number>(9).fill(0);
  const lefts = new Array<number>(9).fill(0);
  const trials = 9000;
  for (let n = 0; n < trials; n++) {
    const crop = sampleView(probe, rng)[0] as { top: number; left: number };
    tops[crop.top + 4]++;
    lefts[crop.left + 4]++;
  }
  for (let k = 0; k < 9; k++) {
    assertBinomial(tops[k], trials, 1 / 9, `top offset ${k - 4}`);
    assertBinomial(lefts[k], trials, 1 / 9, `left offset ${k - 4}`);
  }
});
