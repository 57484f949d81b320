import { assert, assertAllClose, assertEquals, assertThrowsMessage } from "./assert.ts";
import {
  augmentationGraph,
  Augmenter,
  CIFAR10_STATS,
  composeGeometry,
  ethRecipe,
  type JitterDraw,
  jitterStages,
  packBatch,
  plainRecipe,
  planRecipe,
  probeCropFlipRecipe,
  type Recipe,
  recipeFromConfig,
  reference,
  resizeCenterCropRecipe,
  sampleBatch,
  sampleView,
  sdclrImageNetRecipe,
  sdclrRecipe,
  type TransformDraw,
  type ViewDraws,
} from "../src/augment/mod.ts";
import { resolveAugmentation } from "../src/config/augmentation.ts";
import { Session } from "../src/runtime/session.ts";
import type { HostTensor } from "../src/runtime/host_tensor.ts";
import { Rng } from "../src/util/rng.ts";

const TOLERANCE = 1e-4;

function randomImages(rng: Rng, count: number, height: number, width: number): Uint8Array {
  const data = new Uint8Array(count * 3 * height * width);
  for (let i = 0; i < data.length; i++) data[i] = rng.int(256);
  return data;
}

/** Smooth images (a few gradients and blobs), closer to photos than noise. */
function smoothImages(rng: Rng, count: number, height: number, width: number): Uint8Array {
  const data = new Uint8Array(count * 3 * height * width);
  for (let n = 0; n < count; n++) {
    for (let c = 0; c < 3; c++) {
      const [a, b, phase] = [rng.uniformIn(-3, 3), rng.uniformIn(-3, 3), rng.uniformIn(0, 6)];
      for (let y = 0; y < height; y++) {
        for (let x = 0; x < width; x++) {
          const v = 0.5 + 0.5 * Math.sin((a * x) / width + (b * y) / height + phase);
          data[((n * 3 + c) * height + y) * width + x] = Math.round(255 * v);
        }
      }
    }
  }
  return data;
}

/** Runs the recipe's graph with the given draws[v][b]; returns views[v] as float32 arrays. */
async function runGraph(
  recipe: Recipe,
  height: number,
  width: number,
  images: Uint8Array,
  draws: ViewDraws[][],
  batchDim: number | string = "batch",
): Promise<HostTensor[]> {
  const plan = planRecipe(recipe, height, width);
  const views = draws.length;
  const batch = draws[0].length;
  const session = await Session.create(augmentationGraph(plan, { views, batch: batchDim }), {
    threads: 2,
  });
  const feeds: Record<string, HostTensor> = {
    images: { dtype: "uint8", shape: [batch, 3, height, width], data: images },
  };
  if (plan.columns > 0) feeds.params = packBatch(plan, draws);
  const out = await session.run(feeds);
  await session.release();
  return session.outputNames.map((name) => out[name]);
}

/** Graph vs float64 reference for every view and sample; returns the largest difference. */
async function compareWithReference(
  recipe: Recipe,
  height: number,
  width: number,
  images: Uint8Array,
  draws: ViewDraws[][],
): Promise<number> {
  const outputs = await runGraph(recipe, height, width, images, draws);
  const plan = planRecipe(recipe, height, width);
  const inSize = 3 * height * width;
  const outSize = 3 * plan.outputHeight * plan.outputWidth;
  let worst = 0;
  draws.forEach((viewDraws, v) => {
    assertEquals(
      outputs[v].shape,
      [viewDraws.length, 3, plan.outputHeight, plan.outputWidth],
      "output shape",
    );
    viewDraws.forEach((sample, b) => {
      const image = reference.toUnit(images.subarray(b * inSize, (b + 1) * inSize), height, width);
      const expected = reference.referenceView(recipe, image, sample);
      const actual = (outputs[v].data as Float32Array).subarray(b * outSize, (b + 1) * outSize);
      assertAllClose(actual, expected.data, 0, TOLERANCE, `${recipe.name} view ${v} sample ${b}`);
      for (let i = 0; i < outSize; i++) {
        worst = Math.max(worst, Math.abs(actual[i] - expected.data[i]));
      }
    });
  });
  return worst;
}

const jitterOnly = (hue = 0.1): Recipe => ({
  name: "jitter",
  transforms: [{
    kind: "color_jitter",
    brightness: 0.4,
    contrast: 0.4,
    saturation: 0.4,
    hue,
    p: 1,
  }],
});

function jitterDraw(jitter: JitterDraw): TransformDraw {
  return { kind: "color_jitter", applied: true, jitter };
}

// Golden values made with torch 1.13 on float64: torch.nn.functional.interpolate(x, size=(3, 7),
// mode, align_corners=False, antialias=True), the op torchvision's resize runs, and equal to PIL's
// float resampling.
const RESIZE_INPUT = [
  0.3125,
  0.359375,
  0.40625,
  0.453125,
  0.5,
  0.421875,
  0.46875,
  0.515625,
  0.5625,
  0.609375,
  0.53125,
  0.578125,
  0.625,
  0.671875,
  0.328125,
  0.640625,
  0.6875,
  0.34375,
  0.390625,
  0.4375,
];
const RESIZE_BILINEAR = [
  0.3453125,
  0.372098214286,
  0.405580357143,
  0.4390625,
  0.472544642857,
  0.506026785714,
  0.5328125,
  0.4765625,
  0.503348214286,
  0.536830357143,
  0.5703125,
  0.603794642857,
  0.553571428571,
  0.46875,
  0.6078125,
  0.634598214286,
  0.589955357143,
  0.428125,
  0.461607142857,
  0.444866071429,
  0.4046875,
];
const RESIZE_BICUBIC = [
  0.330543158894,
  0.356386622305,
  0.393541598562,
  0.427023741419,
  0.458877096523,
  0.50750343091,
  0.547153057031,
  0.473831917476,
  0.498761223613,
  0.540157725267,
  0.584062948994,
  0.633183803848,
  0.562619711072,
  0.459302158311,
  0.617120676057,
  0.662515569832,
  0.608955424275,
  0.419515160183,
  0.453088515154,
  0.43778980489,
  0.390184482682,
];

Deno.test("reference resize equals torch's antialiased interpolate (4x5 -> 3x7)", () => {
  const plane = Float64Array.from(RESIZE_INPUT);
  const image = { data: Float64Array.from([...plane, ...plane, ...plane]), height: 4, width: 5 };
  for (
    const [mode, expected] of [["bilinear", RESIZE_BILINEAR], ["bicubic", RESIZE_BICUBIC]] as const
  ) {
    const out = reference.resize(image, 3, 7, mode);
    assertAllClose(out.data.subarray(0, 21), expected, 0, 1e-11, mode);
    assertAllClose(out.data.subarray(42, 63), expected, 0, 1e-11, `${mode} blue`);
  }
});

// Golden values from torchvision's adjust_hue code (_rgb2hsv, _hsv2rgb) run in torch 1.13 on
// float64, pixels: red, grey, r = g max, g max, b max, black, white, mixed.
const HUE_IMAGE = [
  1.0,
  0.5,
  0.8,
  0.1,
  0.25,
  0.0,
  1.0,
  0.6,
  0.0,
  0.5,
  0.8,
  0.9,
  0.5,
  0.0,
  1.0,
  0.2,
  0.0,
  0.5,
  0.2,
  0.4,
  0.75,
  0.0,
  1.0,
  0.9,
];
const HUE_GOLDEN: [number, number[]][] = [
  [0.1, [
    1,
    0.5,
    0.44,
    0.1,
    0.3,
    0,
    1,
    0.9,
    0.6,
    0.5,
    0.8,
    0.9,
    0.25,
    0,
    1,
    0.2,
    0,
    0.5,
    0.2,
    0.88,
    0.75,
    0,
    1,
    0.78,
  ]],
  [-0.1, [
    1,
    0.5,
    0.8,
    0.28,
    0.25,
    0,
    1,
    0.2,
    0,
    0.5,
    0.44,
    0.9,
    0.75,
    0,
    1,
    0.22,
    0.6,
    0.5,
    0.2,
    0.1,
    0.7,
    0,
    1,
    0.9,
  ]],
  [0.5, [
    0,
    0.5,
    0.2,
    0.9,
    0.75,
    0,
    1,
    0.5,
    1,
    0.5,
    0.2,
    0.1,
    0.5,
    0,
    1,
    0.9,
    1,
    0.5,
    0.8,
    0.6,
    0.25,
    0,
    1,
    0.2,
  ]],
  [-0.5, [
    0,
    0.5,
    0.2,
    0.9,
    0.75,
    0,
    1,
    0.5,
    1,
    0.5,
    0.2,
    0.1,
    0.5,
    0,
    1,
    0.9,
    1,
    0.5,
    0.8,
    0.6,
    0.25,
    0,
    1,
    0.2,
  ]],
  [0.37, [
    0,
    0.5,
    0.2,
    0.576,
    0.75,
    0,
    1,
    0.9,
    1,
    0.5,
    0.668,
    0.1,
    0.25,
    0,
    1,
    0.754,
    0.22,
    0.5,
    0.8,
    0.9,
    0.39,
    0,
    1,
    0.2,
  ]],
];

Deno.test("reference hue equals torchvision's adjust_hue", () => {
  const image = { data: Float64Array.from(HUE_IMAGE), height: 2, width: 4 };
  for (const [shift, expected] of HUE_GOLDEN) {
    assertAllClose(reference.adjustHue(image, shift).data, expected, 0, 1e-12, `shift ${shift}`);
  }
});

Deno.test("reference blends, grayscale and blur give hand-computed values", () => {
  // One pixel per channel plane of a 1x2 image: r = (0.2, 0.6), g = (0.4, 0.4), b = (1, 0).
  const image = { data: Float64Array.from([0.2, 0.6, 0.4, 0.4, 1, 0]), height: 1, width: 2 };
  const luma = [0.299 * 0.2 + 0.587 * 0.4 + 0.114, 0.299 * 0.6 + 0.587 * 0.4];
  assertAllClose(reference.adjustBrightness(image, 1.5).data, [0.3, 0.9, 0.6, 0.6, 1, 0], 0, 1e-15);
  const mean = (luma[0] + luma[1]) / 2;
  const contrast = [0.2, 0.6, 0.4, 0.4, 1, 0].map((v) =>
    Math.min(Math.max(0.5 * v + 0.5 * mean, 0), 1)
  );
  assertAllClose(reference.adjustContrast(image, 0.5).data, contrast, 0, 1e-15);
  const saturation = [0, 1, 2].flatMap((c) =>
    [0, 1].map((i) => Math.min(Math.max(2 * image.data[c * 2 + i] - luma[i], 0), 1))
  );
  assertAllClose(reference.adjustSaturation(image, 2).data, saturation, 0, 1e-15);
  assertAllClose(reference.grayscale(image).data, [...luma, ...luma, ...luma], 0, 1e-15);
  // Blur of a 3x3 impulse with σ = 1 and reflect padding: 1-D kernel (e, 1, e)/(1 + 2e), e = exp(-½);
  // the corner sees the impulse through both reflected neighbours of each axis.
  const e = Math.exp(-0.5);
  const [side, centre] = [e / (1 + 2 * e), 1 / (1 + 2 * e)];
  const plane = [0, 0, 0, 0, 1, 0, 0, 0, 0];
  const impulse = { data: Float64Array.from([...plane, ...plane, ...plane]), height: 3, width: 3 };
  const corner = (2 * side) ** 2;
  const edge = 2 * side * centre;
  const expected = [corner, edge, corner, edge, centre ** 2, edge, corner, edge, corner];
  assertAllClose(reference.gaussianBlur(impulse, 3, 1).data.subarray(18, 27), expected, 0, 1e-15);
});

Deno.test("graph crop + resize + flip (bilinear and bicubic) match PIL's float resampling", async () => {
  const rng = new Rng(11);
  const [h, w] = [20, 24];
  for (const interpolation of ["bilinear", "bicubic"] as const) {
    const recipe: Recipe = {
      name: `crop_${interpolation}`,
      transforms: [
        {
          kind: "random_resized_crop",
          size: [16, 12],
          scale: [0.05, 1],
          ratio: [0.5, 2],
          interpolation,
          p: 1,
        },
        { kind: "horizontal_flip", p: 0.5 },
      ],
    };
    const plan = planRecipe(recipe, h, w);
    const batch = 10;
    const draws = [Array.from({ length: batch }, () => sampleView(plan, rng))];
    // Edge cases: the whole image, a single pixel in a corner (upscaled 16x12), a flipped strip.
    const box = (top: number, left: number, height: number, width: number) => ({
      top,
      left,
      height,
      width,
      fallback: false,
      attempts: 1,
      scale: 0,
      logRatio: 0,
    });
    draws[0][0] = [{ kind: "random_resized_crop", applied: true, box: box(0, 0, h, w) }, {
      kind: "horizontal_flip",
      applied: false,
    }];
    draws[0][1] = [{ kind: "random_resized_crop", applied: true, box: box(h - 1, w - 1, 1, 1) }, {
      kind: "horizontal_flip",
      applied: true,
    }];
    draws[0][2] = [{ kind: "random_resized_crop", applied: true, box: box(3, 0, 15, 2) }, {
      kind: "horizontal_flip",
      applied: true,
    }];
    const worst = await compareWithReference(recipe, h, w, smoothImages(rng, batch, h, w), draws);
    assert(worst < TOLERANCE, `${interpolation}: ${worst}`);
  }
});

Deno.test("graph random crop with zero padding, resize + centre crop (antialiased shrink)", async () => {
  const rng = new Rng(12);
  const probe = probeCropFlipRecipe(32, 4);
  const plan = planRecipe(probe, 32, 32);
  const draws = [Array.from({ length: 6 }, () => sampleView(plan, rng))];
  draws[0][0] = [{ kind: "random_crop", top: -4, left: 4 }, {
    kind: "horizontal_flip",
    applied: true,
  }];
  draws[0][1] = [{ kind: "random_crop", top: 4, left: -4 }, {
    kind: "horizontal_flip",
    applied: false,
  }];
  const images = randomImages(rng, 6, 32, 32);
  const worst = await compareWithReference(probe, 32, 32, images, draws);
  assert(worst < 1e-6, `probe crop: ${worst}`);
  // The padded rows are exactly zero.
  const [view] = await runGraph(probe, 32, 32, images, draws);
  const first = (view.data as Float32Array).subarray(0, 32 * 4);
  assert(first.every((v) => v === 0), "top padding rows are zero");

  const evalRecipe = resizeCenterCropRecipe(20, 15, CIFAR10_STATS);
  const evalPlan = planRecipe(evalRecipe, 37, 29);
  assertEquals([evalPlan.outputHeight, evalPlan.outputWidth], [15, 15]);
  const evalDraws = [Array.from({ length: 3 }, () => sampleView(evalPlan, rng))];
  const evalWorst = await compareWithReference(
    evalRecipe,
    37,
    29,
    smoothImages(rng, 3, 37, 29),
    evalDraws,
  );
  assert(evalWorst < TOLERANCE, `resize + centre crop: ${evalWorst}`);
});

Deno.test("graph colour ops one at a time match torchvision's tensor ops", async () => {
  const rng = new Rng(13);
  const images = randomImages(rng, 1, 8, 8);
  const gray = new Uint8Array(3 * 64).fill(128);
  const cases: JitterDraw[] = [
    { order: [0, 1, 2, 3], brightness: 1.4, contrast: null, saturation: null, hue: null },
    { order: [0, 1, 2, 3], brightness: 0.6, contrast: null, saturation: null, hue: null },
    { order: [3, 2, 1, 0], brightness: null, contrast: 1.4, saturation: null, hue: null },
    { order: [3, 2, 1, 0], brightness: null, contrast: 0.6, saturation: null, hue: null },
    { order: [1, 2, 0, 3], brightness: null, contrast: null, saturation: 1.4, hue: null },
    { order: [1, 2, 0, 3], brightness: null, contrast: null, saturation: 0, hue: null },
    { order: [1, 0, 3, 2], brightness: null, contrast: null, saturation: null, hue: 0.1 },
    { order: [1, 0, 3, 2], brightness: null, contrast: null, saturation: null, hue: -0.1 },
    { order: [1, 0, 3, 2], brightness: null, contrast: null, saturation: null, hue: 0.5 },
    { order: [1, 0, 3, 2], brightness: null, contrast: null, saturation: null, hue: -0.5 },
  ];
  const draws = [cases.map((jitter) => [jitterDraw(jitter)])];
  const batchImages = new Uint8Array(cases.length * 3 * 64);
  cases.forEach((_, b) => batchImages.set(b === 6 ? gray : images, b * 3 * 64));
  const worst = await compareWithReference(jitterOnly(0.5), 8, 8, batchImages, draws);
  assert(worst < TOLERANCE, `colour ops: ${worst}`);
});

Deno.test("graph colour jitter applies the four ops in each sample's own order (all 24)", async () => {
  const rng = new Rng(14);
  const orders: number[][] = [];
  const permute = (prefix: number[], rest: number[]) => {
    if (rest.length === 0) orders.push(prefix);
    rest.forEach((op, i) => permute([...prefix, op], [...rest.slice(0, i), ...rest.slice(i + 1)]));
  };
  permute([], [0, 1, 2, 3]);
  assertEquals(orders.length, 24);
  const draws = [orders.map((order) => [jitterDraw({
    order,
    brightness: rng.uniformIn(0.6, 1.4),
    contrast: rng.uniformIn(0.6, 1.4),
    saturation: rng.uniformIn(0.6, 1.4),
    hue: rng.uniformIn(-0.1, 0.1),
  })])];
  const images = smoothImages(rng, 24, 10, 10);
  const worst = await compareWithReference(jitterOnly(), 10, 10, images, draws);
  assert(worst < TOLERANCE, `orders: ${worst}`);
  // The order matters: brightness then saturation differs from the reverse on the same sample.
  const swap = [[0, 2, 1, 3], [2, 0, 1, 3]].map((order) => [jitterDraw({
    order,
    brightness: 1.4,
    contrast: null,
    saturation: 0.2,
    hue: null,
  })]);
  const img = smoothImages(new Rng(1), 1, 10, 10);
  const [out] = await runGraph(jitterOnly(), 10, 10, new Uint8Array([...img, ...img]), [
    swap.map((d) => d),
  ]);
  const a = (out.data as Float32Array).subarray(0, 300);
  const b = (out.data as Float32Array).subarray(300, 600);
  assert(a.some((v, i) => Math.abs(v - b[i]) > 1e-3), "different orders give different images");
});

Deno.test("jitter stages place blends before and after the hue op", () => {
  const { stages, hue } = jitterStages({
    order: [2, 3, 0, 1],
    brightness: 1.2,
    contrast: 0.7,
    saturation: 0.9,
    hue: 0.05,
  });
  assertEquals(stages, [[0.9, 0, 1], [1, 0, 0], [1, 0, 0], [1.2, 0, 0], [0.7, 1, 0], [1, 0, 0]]);
  assertEquals(hue, 0.05);
  const noHue = jitterStages({
    order: [3, 1, 0, 2],
    brightness: 1.2,
    contrast: null,
    saturation: 0.9,
    hue: null,
  });
  assertEquals(noHue.stages, [[1.2, 0, 0], [0.9, 0, 1], [1, 0, 0], [1, 0, 0], [1, 0, 0], [
    1,
    0,
    0,
  ]]);
  assertEquals(noHue.hue, null);
});

Deno.test("geometry folds crop, resize and flip into per-axis maps", () => {
  const plan = planRecipe(ethRecipe(), 32, 32);
  const box = {
    top: 4,
    left: 6,
    height: 16,
    width: 8,
    fallback: false,
    attempts: 1,
    scale: 0,
    logRatio: 0,
  };
  const draws: ViewDraws = [
    { kind: "random_resized_crop", applied: true, box },
    { kind: "horizontal_flip", applied: true },
    { kind: "color_jitter", applied: false, jitter: null },
    { kind: "grayscale", applied: false },
    { kind: "gaussian_blur", applied: false, sigma: 0 },
    { kind: "normalize" },
  ];
  const { y, x } = composeGeometry(plan, draws);
  assertEquals(y, { origin: 4, step: 0.5, low: 4, high: 20 });
  // Flipped: output pixel o samples 14 − (o + ½)·0.25 in the source.
  assertEquals(x, { origin: 14, step: -0.25, low: 6, high: 14 });
});

Deno.test("graph grayscale, blur (kernels 3 and 5) and normalize match the reference", async () => {
  const rng = new Rng(15);
  for (const kernelSize of [3, 5]) {
    const recipe: Recipe = {
      name: `gray_blur_${kernelSize}`,
      transforms: [
        { kind: "grayscale", p: 0.5 },
        { kind: "gaussian_blur", kernelSize, sigma: [0.1, 2], p: 1 },
        { kind: "normalize", mean: CIFAR10_STATS.mean, std: CIFAR10_STATS.std },
      ],
    };
    const sigmas = [0.1, 0.5, 1, 2, 5];
    const draws = [sigmas.map((sigma, b): ViewDraws => [
      { kind: "grayscale", applied: b % 2 === 0 },
      { kind: "gaussian_blur", applied: b !== 2, sigma },
      { kind: "normalize" },
    ])];
    const worst = await compareWithReference(
      recipe,
      9,
      7,
      randomImages(rng, sigmas.length, 9, 7),
      draws,
    );
    assert(worst < TOLERANCE, `kernel ${kernelSize}: ${worst}`);
  }
});

Deno.test("graph full ETH, SDCLR and evaluation recipes match the reference (two views)", async () => {
  const rng = new Rng(16);
  const recipes = [ethRecipe(), sdclrRecipe(), plainRecipe(CIFAR10_STATS), probeCropFlipRecipe()];
  for (const recipe of recipes) {
    const plan = planRecipe(recipe, 32, 32);
    const { draws } = sampleBatch(plan, rng, 6, 2);
    const worst = await compareWithReference(recipe, 32, 32, smoothImages(rng, 6, 32, 32), draws);
    assert(worst < TOLERANCE, `${recipe.name}: ${worst}`);
  }
  // The ImageNet recipe (kernel-13 blur) at a small size, on non-square images.
  const imagenet = sdclrImageNetRecipe(24);
  const { draws } = sampleBatch(planRecipe(imagenet, 40, 30), rng, 3, 2);
  const worst = await compareWithReference(imagenet, 40, 30, smoothImages(rng, 3, 40, 30), draws);
  assert(worst < TOLERANCE, `${imagenet.name}: ${worst}`);
});

Deno.test("transforms that do not fire are exact identities in the graph", async () => {
  const rng = new Rng(17);
  const recipe = sdclrRecipe();
  const plan = planRecipe(recipe, 32, 32);
  const full = {
    top: 0,
    left: 0,
    height: 32,
    width: 32,
    fallback: false,
    attempts: 1,
    scale: 1,
    logRatio: 0,
  };
  const draws: ViewDraws[][] = [[[
    { kind: "random_resized_crop", applied: true, box: full },
    { kind: "horizontal_flip", applied: false },
    { kind: "color_jitter", applied: false, jitter: null },
    { kind: "grayscale", applied: false },
  ]]];
  assertEquals(plan.columns, 8 + 20 + 1);
  const images = randomImages(rng, 1, 32, 32);
  const [out] = await runGraph(recipe, 32, 32, images, draws);
  const expected = Float32Array.from(images, (v) => v / 255);
  assertAllClose(out.data as Float32Array, expected, 0, 0, "bit-exact");
});

Deno.test("one graph serves any batch size (symbolic batch) and repeats draws from a seed", async () => {
  const recipe = ethRecipe();
  const plan = planRecipe(recipe, 32, 32);
  const session = await Session.create(augmentationGraph(plan), { threads: 2 });
  for (const batch of [3, 5]) {
    const rng = new Rng(18);
    const images = randomImages(rng, batch, 32, 32);
    const { params } = sampleBatch(plan, rng, batch);
    const out = await session.run({
      images: { dtype: "uint8", shape: [batch, 3, 32, 32], data: images },
      params,
    });
    assertEquals(out.view1.shape, [batch, 3, 32, 32]);
    assertEquals(out.view2.shape, [batch, 3, 32, 32]);
  }
  await session.release();
  const a = sampleBatch(plan, new Rng(5), 4).params.data;
  const b = sampleBatch(plan, new Rng(5), 4).params.data;
  const c = sampleBatch(plan, new Rng(6), 4).params.data;
  assertAllClose(a as Float32Array, b as Float32Array, 0, 0, "same seed");
  assert((a as Float32Array).some((v, i) => v !== (c as Float32Array)[i]), "another seed differs");
});

Deno.test("Augmenter draws, runs and normalizes two views", async () => {
  const augmenter = await Augmenter.create(ethRecipe(), { height: 32, width: 32, threads: 2 });
  const rng = new Rng(19);
  const images = smoothImages(rng, 16, 32, 32);
  const { views, params } = await augmenter.augment(images, 16, rng);
  assertEquals(views.length, 2);
  assertEquals(params.params.shape, [2, 16, augmenter.plan.columns]);
  // Normalized values lie in [(0 − mean)/std, (1 − mean)/std] per channel.
  for (const view of views) {
    const data = view.data as Float32Array;
    for (let i = 0; i < data.length; i++) {
      const c = Math.floor(i / 1024) % 3;
      const low = -CIFAR10_STATS.mean[c] / CIFAR10_STATS.std[c];
      const high = (1 - CIFAR10_STATS.mean[c]) / CIFAR10_STATS.std[c];
      assert(data[i] >= low - 1e-5 && data[i] <= high + 1e-5, `value ${data[i]} of channel ${c}`);
    }
  }
  await assertThrowsMessage(() => augmenter.run(images, 15, params.params), "bytes for 15 images");
  await augmenter.release();
});

Deno.test("the built-in ETH and SDCLR recipes hold SPEC's parameters", () => {
  const jitter = {
    kind: "color_jitter" as const,
    brightness: 0.4,
    contrast: 0.4,
    saturation: 0.4,
    hue: 0.1,
  };
  assertEquals(ethRecipe().transforms, [
    {
      kind: "random_resized_crop",
      size: [32, 32],
      scale: [0.08, 1],
      ratio: [0.75, 1.3333333333],
      interpolation: "bilinear",
      p: 1,
    },
    { kind: "horizontal_flip", p: 0.5 },
    { ...jitter, p: 0.8 },
    { kind: "grayscale", p: 0.2 },
    { kind: "gaussian_blur", kernelSize: 3, sigma: [0.1, 2], p: 0.5 },
    { kind: "normalize", ...CIFAR10_STATS },
  ]);
  const sdclr = sdclrRecipe().transforms;
  assertEquals(sdclr.map((t) => t.kind), [
    "random_resized_crop",
    "horizontal_flip",
    "color_jitter",
    "grayscale",
  ]);
  assertEquals(sdclr[0], {
    kind: "random_resized_crop",
    size: [32, 32],
    scale: [0.1, 1],
    ratio: [3 / 4, 4 / 3],
    interpolation: "bicubic",
    p: 1,
  });
  assertEquals(sdclr[2], { ...jitter, p: 0.8 });
  // A config's recipe with one parameter changed differs from the built-in in that one place.
  const config = resolveAugmentation({ recipe: "eth", grayscale: { p: 0.1 } }, 32);
  const changed = recipeFromConfig(config, CIFAR10_STATS).transforms;
  assertEquals(changed[3], { kind: "grayscale", p: 0.1 });
  assertEquals([...changed.slice(0, 3), ...changed.slice(4)], [
    ...ethRecipe().transforms.slice(0, 3),
    ...ethRecipe().transforms.slice(4),
  ]);
});

Deno.test("bad recipes fail with the transform and the expectation named", async () => {
  const eth = ethRecipe().transforms;
  const bad = (transforms: Recipe["transforms"]) => () =>
    planRecipe({ name: "bad", transforms }, 32, 32);
  await assertThrowsMessage(bad([eth[5], eth[0]]), "transform 0 (normalize)", "must be the last");
  await assertThrowsMessage(
    bad([eth[2], eth[0]]),
    "transform 1 (random_resized_crop)",
    "before colour",
  );
  await assertThrowsMessage(
    bad([eth[0], { kind: "resize", size: 40, interpolation: "bilinear" }]),
    "transform 1 (resize)",
    "only one resampling",
  );
  await assertThrowsMessage(
    bad([
      { ...eth[0], kind: "random_resized_crop", size: [24, 24], p: 0.5 } as Recipe["transforms"][0],
    ]),
    "transform 0 (random_resized_crop), p",
    "24x24",
  );
  await assertThrowsMessage(
    bad([{
      kind: "color_jitter",
      brightness: 0.4,
      contrast: 0.4,
      saturation: 0.4,
      hue: 0.6,
      p: 1,
    }]),
    "hue",
    "[0, 0.5], got 0.6",
  );
  await assertThrowsMessage(
    bad([{ kind: "gaussian_blur", kernelSize: 4, sigma: [0.1, 2], p: 1 }]),
    "kernelSize",
    "odd positive integer, got 4",
  );
  await assertThrowsMessage(
    bad([{ kind: "horizontal_flip", p: 1.5 }]),
    "p: expected a probability",
    "1.5",
  );
  await assertThrowsMessage(
    bad([{ kind: "center_crop", size: [40, 40] }]),
    "does not fit the 32x32 image",
  );
  const plan = planRecipe(ethRecipe(), 32, 32);
  await assertThrowsMessage(
    () => packBatch(plan, [[[{ kind: "normalize" }]]]),
    "1 draws for the 6 transforms",
  );
});
