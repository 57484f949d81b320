/** Linear probes: the fused-step classifier, the ETH protocol, the SDCLR probe and the evaluation driver. */
import {
  assert,
  assertAllClose,
  assertClose,
  assertEquals,
  assertThrowsMessage,
} from "./assert.ts";
import type { EvaluationConfig } from "../src/config/mod.ts";
import {
  classCounts,
  fullImageSet,
  type ImageDataset,
  loadCifar,
  subsetDataset,
} from "../src/data/mod.ts";
import {
  ClassifierPredictor,
  type ClassifierWeights,
  type Encoder,
  ethLinearEval,
  evaluateEncoder,
  extractFeatures,
  type FeatureGraphSpec,
  type FeatureSet,
  GraphEncoder,
  LinearClassifier,
  sdclrLinearProbe,
  type SdclrProbeOptions,
  topKAccuracy,
} from "../src/eval/mod.ts";
import { buildFeatureGraph } from "../src/methods/contrastive.ts";
import { initParams } from "../src/nn/mod.ts";
import type { HostTensor } from "../src/runtime/host_tensor.ts";
import { Rng } from "../src/util/rng.ts";

/** Mean-CE gradient and torch.optim.Adam (L2) in float64: the reference of one classifier step. */
function adamReferenceStep(
  w: Float64Array,
  b: Float64Array,
  state: { m: Float64Array; v: Float64Array; t: number },
  x: number[][],
  y: number[],
  lr: number,
  wd: number,
): void {
  const classes = b.length;
  const dim = x[0].length;
  const grad = new Float64Array(w.length + b.length);
  for (let i = 0; i < x.length; i++) {
    const logits = Array.from(
      { length: classes },
      (_, k) => b[k] + x[i].reduce((s, xj, j) => s + xj * w[k * dim + j], 0),
    );
    const top = Math.max(...logits);
    const exps = logits.map((l) => Math.exp(l - top));
    const total = exps.reduce((a, c) => a + c, 0);
    for (let k = 0; k < classes; k++) {
      const d = (exps[k] / total - (y[i] === k ? 1 : 0)) / x.length;
      for (let j = 0; j < dim; j++) grad[k * dim + j] += d * x[i][j];
      grad[w.length + k] += d;
    }
  }
  state.t++;
  const params = [...w, ...b];
  for (let p = 0; p < params.length; p++) {
    const g = grad[p] + wd * params[p];
    state.m[p] = 0.9 * state.m[p] + 0.1 * g;
    state.v[p] = 0.999 * state.v[p] + 0.001 * g * g;
    const denom = Math.sqrt(state.v[p]) / Math.sqrt(1 - 0.999 ** state.t) + 1e-8;
    params[p] -= (lr / (1 - 0.9 ** state.t)) * (state.m[p] / denom);
  }
  w.set(params.slice(0, w.length));
  b.set(params.slice(w.length));
}

Deno.test("classifier: fused Adam steps on a full and a partial batch match a float64 reference", async () => {
  const rng = new Rng(5, "classifier");
  const dim = 4;
  const classes = 3;
  const initial: ClassifierWeights = {
    dim,
    classes,
    weight: Float32Array.from({ length: classes * dim }, () => rng.normal() * 0.3),
    bias: Float32Array.from({ length: classes }, () => rng.normal() * 0.1),
  };
  const w = Float64Array.from(initial.weight);
  const b = Float64Array.from(initial.bias);
  const state = { m: new Float64Array(15), v: new Float64Array(15), t: 0 };
  const classifier = await LinearClassifier.create(initial, {
    kind: "adam",
    betas: [0.9, 0.999],
    eps: 1e-8,
    weightDecay: 0.05,
  });
  try {
    // A batch of 5, then the last partial batch of 2 through the same (symbolic-batch) graph.
    for (const size of [5, 2]) {
      const x = Array.from({ length: size }, () => Array.from({ length: dim }, () => rng.normal()));
      const y = Array.from({ length: size }, (_, i) => (i * 2) % classes);
      const loss = await classifier.step(Float32Array.from(x.flat()), y, 0.1);
      assert(loss > 0 && Number.isFinite(loss), `loss ${loss}`);
      adamReferenceStep(w, b, state, x, y, 0.1, 0.05);
    }
    assertEquals(classifier.updates, 2);
    const after = classifier.snapshot();
    assertAllClose(after.weight, w, 1e-4, 1e-6, "weight");
    assertAllClose(after.bias, b, 1e-4, 1e-6, "bias");
    // Predictions in chunks of 2 rows (views at an offset) equal the host argmax of the logits.
    const predictor = await ClassifierPredictor.create(dim, classes);
    const rows = Float32Array.from({ length: 7 * dim }, () => rng.normal());
    const predicted = await predictor.predict(rows, after, 2);
    await predictor.release();
    const expected = Array.from({ length: 7 }, (_, i) => {
      const logits = Array.from(
        { length: classes },
        (_, k) =>
          b[k] +
          Array.from({ length: dim }, (_, j) => rows[i * dim + j] * w[k * dim + j]).reduce(
            (s, v) => s + v,
            0,
          ),
      );
      return logits.indexOf(Math.max(...logits));
    });
    assertEquals(Array.from(predicted), expected);
    await assertThrowsMessage(
      () => classifier.step(new Float32Array(7), [0, 1], 0.1),
      "7 feature values for 2 labels of dim 4",
    );
  } finally {
    await classifier.release();
  }
});

/**
 * Classes whose means differ along their own axis, all sharing a large spread
 * (std 6) along a direction that is not orthogonal to the class differences:
 * a well-fitted logistic regression separates them, a heavily weight-decayed
 * one (≈ nearest class mean) cannot.
 */
function nuisanceBlobs(perClass: number, classes: number, dim: number, rng: Rng): FeatureSet {
  const count = perClass * classes;
  const features = new Float32Array(count * dim);
  const labels = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    const k = i % classes;
    labels[i] = k;
    const t = 6 * rng.normal();
    for (let j = 0; j < dim; j++) {
      features[i * dim + j] = (j === k ? 1 : 0) + t / Math.sqrt(dim) + 0.05 * rng.normal();
    }
  }
  return { features, labels, count, dim, classCount: classes };
}

Deno.test("eth protocol: the weight-decay search rejects a crippling decay and the retrained probe is accurate", async () => {
  const rng = new Rng(3, "blobs");
  const train = nuisanceBlobs(100, 3, 6, rng);
  const test = nuisanceBlobs(50, 3, 6, rng);
  const result = await ethLinearEval(train, test, {
    valFraction: 0.1,
    logMin: -6,
    logMax: 2,
    nSteps: 3,
    epochs: 30,
    batchSize: 32,
    lr: 1e-2,
    seed: 1,
  });
  assertEquals(result.search.map((r) => r.weightDecay.toExponential(0)), ["1e-6", "1e-2", "1e+2"]);
  assertEquals(result.counts, { train: 270, val: 30, test: 150 });
  const heavy = result.search[2];
  assert(heavy.valAccuracy < 0.8, `wd 100 should cripple the probe, got val ${heavy.valAccuracy}`);
  assert(result.search[0].valAccuracy > 0.95, `wd 1e-6: val ${result.search[0].valAccuracy}`);
  assert(result.weightDecay < 1, `chose wd ${result.weightDecay}`);
  assert(result.testAccuracy > 0.95, `test accuracy ${result.testAccuracy}`);
  assertEquals(result.perClassAccuracy.length, 3);
  assertClose(result.perClassAccuracy.reduce((a, c) => a + c, 0) / 3, result.testAccuracy, 1e-9);
  assertEquals(result.trainLossPerEpoch.length, 30);
  assert(result.trainLossPerEpoch[29] < result.trainLossPerEpoch[0], "training loss must fall");

  await assertThrowsMessage(
    () =>
      ethLinearEval(train, { ...test, dim: 5, features: new Float32Array(150 * 5) }, {
        valFraction: 0.1,
        logMin: -6,
        logMax: -1,
        nSteps: 1,
        epochs: 1,
        batchSize: 8,
        lr: 1e-3,
        seed: 0,
      }),
    "6-d",
    "5-d",
  );
});

/** A width-1/16 ResNet-18 (CIFAR stem, in-model ImageNet normalization, dual BN as SDCLR's) with seeded weights. */
async function tinyEncoder(): Promise<GraphEncoder> {
  const spec: FeatureGraphSpec = {
    encoder: {
      arch: "resnet18",
      stem: "cifar",
      width: 1 / 16,
      normalize: { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] },
    },
    method: { name: "sdclr" },
    imageSize: 32,
  };
  const { store } = buildFeatureGraph(spec);
  return await GraphEncoder.create(spec, initParams(store.entries(), new Rng(0, "init")));
}

const range = (start: number, count: number) =>
  Int32Array.from({ length: count }, (_, i) => start + i);

async function miniSets(): Promise<{ train: ImageDataset; val: ImageDataset; test: ImageDataset }> {
  const all = await loadCifar({ dataset: "cifar10", split: "train", dir: "data/cifar10-mini" });
  const testAll = await loadCifar({ dataset: "cifar10", split: "test", dir: "data/cifar10-mini" });
  return {
    train: subsetDataset(all, range(0, 64), "train 0..63"),
    val: subsetDataset(all, range(64, 32), "val 64..95"),
    test: subsetDataset(testAll, range(0, 64), "test 0..63"),
  };
}

const probeOptions: SdclrProbeOptions = {
  lr: 30,
  momentum: 0.9,
  weightDecay: 0,
  batchSize: 24,
  gamma: 0.1,
  milestones: [10, 20],
  epochs: 2,
  initStd: 0.01,
  augment: true,
  seed: 10,
};

Deno.test("sdclr probe: a tiny frozen ResNet-18 on 64 bundled images gives val/test accuracies", async () => {
  const sets = await miniSets();
  const encoder = await tinyEncoder();
  try {
    const result = await sdclrLinearProbe(encoder, sets, probeOptions);
    assertEquals(result.protocol, "sdclr");
    assertEquals(result.epochs.map((e) => e.epoch), [1, 2]);
    assertEquals(result.counts, { train: 64, val: 32, test: 64 });
    assertEquals(result.selection, "best_val");
    for (const e of result.epochs) {
      assertEquals(e.lr, 30);
      assert(Number.isFinite(e.trainLoss) && e.trainLoss > 0, `loss ${e.trainLoss}`);
      assert(
        e.valAccuracy !== null && e.valAccuracy >= 0 && e.valAccuracy <= 1,
        `val ${e.valAccuracy}`,
      );
    }
    const bestVal = Math.max(...result.epochs.map((e) => e.valAccuracy!));
    assertEquals(result.valAccuracy, bestVal);
    assertEquals(result.epochs[result.bestEpoch - 1].valAccuracy, bestVal);
    assertEquals(result.epochs.findIndex((e) => e.valAccuracy === bestVal) + 1, result.bestEpoch);
    assert(result.testAccuracy >= 0 && result.testAccuracy <= 1, `test ${result.testAccuracy}`);
    // Accuracies are whole counts of the 64 test images.
    assertClose(result.testAccuracy * 64, Math.round(result.testAccuracy * 64), 0, 1e-9);
    assertEquals(result.perClassAccuracy.length, 10);

    // Same seed, same numbers.
    const again = await sdclrLinearProbe(encoder, sets, probeOptions);
    assertEquals(again.epochs.map((e) => e.trainLoss), result.epochs.map((e) => e.trainLoss));
    assertEquals(again.testAccuracy, result.testAccuracy);

    await assertThrowsMessage(
      () => sdclrLinearProbe(encoder, sets, { ...probeOptions, milestones: [20, 10] }),
      "evaluation.linear.milestones",
      "strictly increasing",
    );
  } finally {
    await encoder.release();
  }
});

/** A cheap host encoder: per-channel image means and a constant, D = 4. */
const channelMeans: Encoder = {
  features(images: HostTensor): Promise<Float32Array> {
    const [batch, , h, w] = images.shape;
    const out = new Float32Array(batch * 4);
    const data = images.data as Float32Array;
    for (let i = 0; i < batch; i++) {
      for (let c = 0; c < 3; c++) {
        let sum = 0;
        for (let p = 0; p < h * w; p++) sum += data[(i * 3 + c) * h * w + p];
        out[i * 4 + c] = sum / (h * w);
      }
      out[i * 4 + 3] = 1;
    }
    return Promise.resolve(out);
  },
};

Deno.test("sdclr probe: the step decay is fed at 1-based epochs 10 and 20 (MultiStepLR)", async () => {
  const sets = await miniSets();
  const train = subsetDataset(sets.train, range(0, 20), "train 0..19");
  const result = await sdclrLinearProbe(channelMeans, { train, val: null, test: sets.test }, {
    ...probeOptions,
    batchSize: 8,
    epochs: 21,
    lr: 0.5,
  });
  const lrOf = (epoch: number) => result.epochs[epoch - 1].lr;
  assertClose(lrOf(1), 0.5, 1e-12);
  assertClose(lrOf(9), 0.5, 1e-12);
  assertClose(lrOf(10), 0.05, 1e-12);
  assertClose(lrOf(19), 0.05, 1e-12);
  assertClose(lrOf(20), 0.005, 1e-12);
  assertClose(lrOf(21), 0.005, 1e-12);
  assertEquals(result.selection, "last");
  assertEquals(result.bestEpoch, 21);
  assertEquals(result.valAccuracy, null);
  assert(result.epochs.every((e) => e.valAccuracy === null));
});

const sdclrSection = {
  lr: 30,
  momentum: 0.9,
  weight_decay: 0,
  batch_size: 16,
  gamma: 0.1,
  init_std: 0.01,
  augment: true,
  test_freq: 1,
  select_on: "top1" as const,
};

Deno.test("graph encoder: eval-mode BN makes features independent of the batch they come in", async () => {
  const sets = await miniSets();
  const encoder = await tinyEncoder();
  try {
    const whole = await extractFeatures(encoder, sets.test, { batchSize: 64 });
    const pieces = await extractFeatures(encoder, sets.test, { batchSize: 7 });
    assertEquals(whole.dim, 32);
    assertEquals(whole.count, 64);
    assertAllClose(pieces.features, whole.features, 1e-4, 1e-6);
    assertEquals(Array.from(whole.labels), Array.from(sets.test.labels));
  } finally {
    await encoder.release();
  }
});

Deno.test("evaluateEncoder: ETH linear, kNN and groups from one evaluation config", async () => {
  const sets = await miniSets();
  const encoder = await tinyEncoder();
  const config: EvaluationConfig = {
    testing_every_n_epochs: null,
    evaluate_at_end: true,
    random_init_baseline: false,
    linear: {
      protocol: "eth",
      val_fraction: 0.1,
      log_min: -6,
      log_max: -2,
      n_steps: 2,
      epochs: 2,
      batch_size: 16,
      lr: 1e-3,
    },
    few_shot: null,
    knn: { k: 20, temperature: 0.1 },
    groups: { by: "rank", reference_split: "split1_D_i.npy", sizes: [4, 3, 3] },
  };
  try {
    const counts = classCounts(sets.train.labels, 10);
    const report = await evaluateEncoder(
      encoder,
      { train: sets.train, val: null, fewShot: null, test: sets.test, classes: 10 },
      config,
      { seed: 42, groupCounts: counts },
    );
    assert(report.linear?.protocol === "eth");
    assertEquals(report.modelScore, report.linear.testAccuracy);
    assert(report.modelScore! >= 0 && report.modelScore! <= 1);
    assertEquals(report.linear.search.length, 2);
    assertEquals(report.knn!.k, 20);
    assert(report.knn!.accuracy >= 0 && report.knn!.accuracy <= 1);
    assertEquals(report.groups!.classes.map((g) => g.classes.length), [4, 3, 3]);
    const many = report.groups!.classes[0].classes.map((k) => counts[k]);
    const few = report.groups!.classes[2].classes.map((k) => counts[k]);
    assert(Math.min(...many) >= Math.max(...few), `many ${many} vs few ${few}`);
    assert(report.groups!.linear!.balancedness! >= 0);
    assertEquals(report.fewShot, null);

    // SDCLR linear + few-shot probes from the same config shape, groups on both.
    const sdclr = await evaluateEncoder(
      encoder,
      {
        train: sets.train,
        val: sets.val,
        fewShot: subsetDataset(sets.train, range(0, 30), "S_b"),
        test: sets.test,
        classes: 10,
      },
      {
        ...config,
        linear: { protocol: "sdclr", ...sdclrSection, epochs: 1, milestones: [10, 20] },
        few_shot: { ...sdclrSection, epochs: 2, milestones: [40, 60] },
        knn: null,
      },
      { seed: 42, groupCounts: counts },
    );
    assert(sdclr.linear?.protocol === "sdclr");
    assertEquals(sdclr.linear.epochs.length, 1);
    assertEquals(sdclr.fewShot!.epochs.length, 2);
    assertEquals(sdclr.fewShot!.counts, { train: 30, val: 32, test: 64 });
    assertEquals(sdclr.modelScore, sdclr.linear.testAccuracy);
    assert(sdclr.groups!.fewShot!.balancedness! >= 0);
    assertEquals(sdclr.knn, null);

    await assertThrowsMessage(
      () =>
        evaluateEncoder(
          encoder,
          { train: sets.train, val: null, fewShot: null, test: sets.test, classes: 10 },
          { ...config, linear: null, knn: null },
          { seed: 42 },
        ),
      "evaluation.groups",
      "split1_D_i.npy",
    );
  } finally {
    await encoder.release();
  }
});

Deno.test("top-k accuracy counts classes scoring strictly above the label", () => {
  // Rows: label 2 ranks 3rd; label 0 ranks 1st; label 1 ties with two others at the top.
  const logits = Float32Array.of(
    0.9,
    0.8,
    0.7,
    0.1,
    0.5,
    0.4,
    0.3,
    0.2,
    0.6,
    0.6,
    0.6,
    0.0,
  );
  const labels = Int32Array.of(2, 0, 1);
  assertClose(topKAccuracy(logits, labels, 4, 1), 2 / 3, 1e-12);
  assertClose(topKAccuracy(logits, labels, 4, 2), 2 / 3, 1e-12);
  assertClose(topKAccuracy(logits, labels, 4, 3), 1, 1e-12);
  assertClose(topKAccuracy(logits, labels, 4, 5), 1, 1e-12);
});

Deno.test("sdclr probe: validated every test_freq epochs, the best kept on top-1 or top-5 (strictly better)", async () => {
  const sets = await miniSets();
  const train = subsetDataset(sets.train, range(0, 40), "train 0..39");
  for (const selectOn of ["top1", "top5"] as const) {
    const result = await sdclrLinearProbe(channelMeans, { train, val: sets.val, test: sets.test }, {
      ...probeOptions,
      batchSize: 8,
      epochs: 7,
      lr: 0.5,
      milestones: [5],
      testFreq: 3,
      selectOn,
    });
    assertEquals([result.testFreq, result.selectOn, result.selection], [3, selectOn, "best_val"]);
    // As train_imagenet.py / train_cifar.py: epochs 3 and 6 are validated, 7 is not.
    assertEquals(result.epochs.filter((e) => e.valAccuracy !== null).map((e) => e.epoch), [3, 6]);
    assert(result.epochs.every((e) => (e.valAccuracy === null) === (e.valTop5Accuracy === null)));
    const score = (e: (typeof result.epochs)[number]) =>
      selectOn === "top5" ? e.valTop5Accuracy! : e.valAccuracy!;
    const [third, sixth] = [result.epochs[2], result.epochs[5]];
    assertEquals(result.bestEpoch, score(sixth) > score(third) ? 6 : 3);
    assertEquals(result.valAccuracy, result.epochs[result.bestEpoch - 1].valAccuracy);
    assert(result.testTop5Accuracy >= result.testAccuracy, "top-5 is at least top-1");
  }
  await assertThrowsMessage(
    () =>
      sdclrLinearProbe(channelMeans, { train, val: sets.val, test: sets.test }, {
        ...probeOptions,
        epochs: 2,
        testFreq: 3,
        tag: "few_shot",
      }),
    "evaluation.few_shot.test_freq",
    "no epoch would be validated",
  );
});

Deno.test("sdclr probe on whole images: RandomResizedCrop + flip from each image, reproducible", async () => {
  const sets = await miniSets();
  // The first 40 training images cut to different sizes, as whole images of a list.
  const plane = 32 * 32;
  const images = Array.from({ length: 40 }, (_, i) => {
    const [height, width] = [32 - (i % 5), 32 - (i % 3)];
    const data = new Uint8Array(3 * height * width);
    for (let c = 0; c < 3; c++) {
      for (let y = 0; y < height; y++) {
        for (let x = 0; x < width; x++) {
          data[(c * height + y) * width + x] = sets.train.images[(i * 3 + c) * plane + y * 32 + x];
        }
      }
    }
    return { data, height, width };
  });
  const whole = fullImageSet(
    images,
    sets.train.labels.slice(0, 40),
    sets.train.classes,
    32,
    "whole 0..39",
  );
  const options = { ...probeOptions, batchSize: 16, epochs: 2, lr: 0.5 };
  const result = await sdclrLinearProbe(channelMeans, {
    train: whole,
    val: sets.val,
    test: sets.test,
  }, options);
  assertEquals(result.augmentation, "random_resized_crop_flip");
  assertEquals(result.counts.train, 40);
  assert(result.epochs.every((e) => Number.isFinite(e.trainLoss) && e.trainLoss > 0));
  const again = await sdclrLinearProbe(channelMeans, {
    train: whole,
    val: sets.val,
    test: sets.test,
  }, options);
  assertEquals(again.epochs.map((e) => e.trainLoss), result.epochs.map((e) => e.trainLoss));
  // Fixed-size training images keep SDCLR's CIFAR transform.
  const cifar = await sdclrLinearProbe(channelMeans, sets, options);
  assertEquals(cifar.augmentation, "random_crop_flip");
  await assertThrowsMessage(
    () =>
      sdclrLinearProbe(channelMeans, { train: whole, val: null, test: sets.test }, {
        ...options,
        augment: false,
      }),
    "evaluation.linear.augment",
    "whole images",
  );
});
