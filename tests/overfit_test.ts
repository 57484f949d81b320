/**
 * BN, gradients and updates working together: a tiny-width ResNet-18 (CIFAR
 * stem, width 1/16) with a linear classifier, trained by the fused step with
 * SGD (momentum 0.9) on 64 images of the bundled CIFAR-10 subset, drives the
 * cross-entropy below 0.05 (from about ln 10 ≈ 2.3).
 */
import { assert } from "./assert.ts";
import { loadCifar } from "../src/data/cifar.ts";
import { encoder, initParams, ParamStore, projectionHead } from "../src/nn/mod.ts";
import { Graph } from "../src/onnx/mod.ts";
import { createOptimizer } from "../src/optim/mod.ts";
import { Session } from "../src/runtime/session.ts";
import { buildFusedStep } from "../src/train/fused_step.ts";
import { StepRunner } from "../src/train/step_runner.ts";
import { crossEntropy, imageBatch } from "../src/train/supervised.ts";
import { Rng } from "../src/util/rng.ts";

const IMAGES = 64;
const CLASSES = 10;
const TARGET = 0.05;
const MAX_STEPS = 300;

Deno.test("tiny ResNet-18 + linear head overfits 64 CIFAR images with SGD (loss < 0.05)", async () => {
  const data = await loadCifar({ dataset: "cifar10", split: "train", dir: "data/cifar10-mini" });
  const indices = Int32Array.from({ length: IMAGES }, (_, i) => i);
  const images = imageBatch(data, indices, null);
  const oneHot = new Float32Array(IMAGES * CLASSES);
  indices.forEach((i, b) => oneHot[b * CLASSES + data.labels[i]] = 1);

  const graph = new Graph("overfit_step");
  const store = new ParamStore(graph);
  const x = graph.input("images", "float32", [IMAGES, 3, 32, 32]);
  const targets = graph.input("targets", "float32", [IMAGES, CLASSES]);
  const features = encoder(store, x, { arch: "resnet18", stem: "cifar", width: 1 / 16 }, {
    train: true,
  });
  const logits = projectionHead(store, features.output, { kind: "linear", classes: CLASSES }, {
    train: true,
  }, "fc");
  const loss = crossEntropy(logits.output, targets);
  const layout = buildFusedStep({
    graph,
    loss,
    params: store.params().map((p) => ({
      tensor: p.tensor,
      meta: { name: p.name, isBnOrBias: p.noLarsAdapt },
    })),
    buffers: [...features.updates, ...logits.updates],
    optimizer: createOptimizer({ kind: "sgd", momentum: 0.9, weightDecay: 0 }),
  });
  const session = await Session.create(graph, { threads: 2 });
  const runner = new StepRunner(session, layout, initParams(store.entries(), new Rng(7, "init")));

  const batch = {
    images,
    targets: { dtype: "float32" as const, shape: [IMAGES, CLASSES], data: oneHot },
  };
  const losses: number[] = [];
  while (losses.length < MAX_STEPS && !(losses.at(-1)! < TARGET)) {
    losses.push((await runner.step(batch, { lr: 0.05 })).loss);
  }
  await session.release();
  const first = losses[0];
  const last = losses.at(-1)!;
  console.log(`overfit: loss ${first.toFixed(3)} → ${last.toFixed(4)} in ${losses.length} steps`);
  assert(first > 1.5, `initial loss ${first} should be near ln 10 ≈ 2.3`);
  assert(last < TARGET, `loss after ${losses.length} steps is ${last}, expected < ${TARGET}`);
  // Running statistics moved away from their initial values (0 mean, 1 variance).
  const mean = runner.values.get("encoder.bn1.running_mean")!.data as Float32Array;
  assert(mean.some((v) => Math.abs(v) > 1e-3), "BN running mean was never updated");
});
