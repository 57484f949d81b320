/**
 * Supervised classifier training through the fused step: a small CNN with
 * cross-entropy, trained with SGD + momentum on CPU. This is quickstart v0 and
 * the engine the linear probe grows from.
 */
import type { ImageDataset } from "../data/dataset.ts";
import { Graph, ops, type Tensor } from "../onnx/mod.ts";
import { createOptimizer } from "../optim/mod.ts";
import type { HostTensor } from "../runtime/host_tensor.ts";
import { Session, type SessionOptions } from "../runtime/session.ts";
import { ProgressBar } from "../util/progress.ts";
import { Rng } from "../util/rng.ts";
import { buildFusedStep, type TrainableParam } from "./fused_step.ts";
import { StepRunner } from "./step_runner.ts";

/** CIFAR-10 channel means and standard deviations (SPEC §A). */
export const CIFAR10_MEAN = [0.4914, 0.4822, 0.4465];
/** See {@link CIFAR10_MEAN}. */
export const CIFAR10_STD = [0.2470, 0.2435, 0.2616];

/** Shape of the small CNN: channel widths of its conv stages. */
export interface SmallCnnSpec {
  channels: number[];
  classes: number;
  imageSize: number;
}

interface ParamInit {
  name: string;
  shape: number[];
  fanIn: number;
  kind: "conv" | "linear" | "bias";
}

/** Builds the small CNN (per stage: conv3x3+bias, ReLU, 2x2 max-pool; then a linear classifier). */
export function smallCnn(
  graph: Graph,
  x: Tensor,
  spec: SmallCnnSpec,
): { logits: Tensor; params: ParamInit[] } {
  const params: ParamInit[] = [];
  const param = (name: string, shape: number[], fanIn: number, kind: ParamInit["kind"]) => {
    params.push({ name, shape, fanIn, kind });
    return graph.input(name, "float32", shape);
  };
  let h = x;
  let cin = x.shape[1] as number;
  let size = spec.imageSize;
  spec.channels.forEach((cout, i) => {
    h = graph.scope(`stage${i}`, () => {
      const w = param(`stage${i}.conv.weight`, [cout, cin, 3, 3], cin * 9, "conv");
      const b = param(`stage${i}.conv.bias`, [cout], cin * 9, "bias");
      const y = ops.relu(ops.conv(h, w, b, { pads: [1, 1, 1, 1] }));
      return ops.maxPool(y, { kernel: [2, 2], strides: [2, 2] });
    });
    cin = cout;
    size /= 2;
  });
  const features = ops.flatten(h, 1);
  const fanIn = cin * size * size;
  const w = param("classifier.weight", [spec.classes, fanIn], fanIn, "linear");
  const b = param("classifier.bias", [spec.classes], fanIn, "bias");
  const logits = graph.scope("classifier", () => ops.gemm(features, w, b, { transB: true }));
  return { logits, params };
}

/** Mean cross-entropy of logits [B, K] against one-hot targets [B, K]. */
export function crossEntropy(logits: Tensor, oneHot: Tensor): Tensor {
  const logp = ops.logSoftmax(logits, 1);
  const perSample = ops.reduceSum(ops.mul(logp, oneHot), [1], false);
  return ops.neg(ops.reduceMean(perSample, [0], false));
}

function initParams(params: ParamInit[], rng: Rng): Map<string, HostTensor> {
  const values = new Map<string, HostTensor>();
  for (const p of params) {
    const count = p.shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(count);
    // Conv: Kaiming-normal (fan_in, ReLU gain); linear weights and biases: uniform ±1/√fan_in (torch's default).
    const std = Math.sqrt(2 / p.fanIn);
    const bound = 1 / Math.sqrt(p.fanIn);
    for (let i = 0; i < count; i++) {
      data[i] = p.kind === "conv" ? std * rng.normal() : rng.uniformIn(-bound, bound);
    }
    values.set(p.name, { dtype: "float32", shape: p.shape, data });
  }
  return values;
}

/** Converts images at `indices` to normalized float32 NCHW, with optional random crop (pad 4) and flip. */
export function imageBatch(
  data: ImageDataset,
  indices: ArrayLike<number>,
  augment: Rng | null,
  mean = CIFAR10_MEAN,
  std = CIFAR10_STD,
): HostTensor {
  const { height: H, width: W } = data;
  const plane = H * W;
  const out = new Float32Array(indices.length * 3 * plane);
  for (let b = 0; b < indices.length; b++) {
    const src = indices[b] * 3 * plane;
    const flip = augment ? augment.bernoulli(0.5) : false;
    const dy = augment ? augment.int(9) - 4 : 0;
    const dx = augment ? augment.int(9) - 4 : 0;
    for (let c = 0; c < 3; c++) {
      const base = b * 3 * plane + c * plane;
      for (let y = 0; y < H; y++) {
        const sy = y + dy;
        for (let x = 0; x < W; x++) {
          const sx0 = x + dx;
          const sx = flip ? W - 1 - sx0 : sx0;
          const inside = sy >= 0 && sy < H && sx0 >= 0 && sx0 < W;
          const v = inside ? data.images[src + c * plane + sy * W + sx] / 255 : 0;
          out[base + y * W + x] = inside ? (v - mean[c]) / std[c] : (0 - mean[c]) / std[c];
        }
      }
    }
  }
  return { dtype: "float32", shape: [indices.length, 3, H, W], data: out };
}

function oneHot(data: ImageDataset, indices: ArrayLike<number>, classes: number): HostTensor {
  const out = new Float32Array(indices.length * classes);
  for (let b = 0; b < indices.length; b++) out[b * classes + data.labels[indices[b]]] = 1;
  return { dtype: "float32", shape: [indices.length, classes], data: out };
}

/** Options of {@link trainSupervised}. */
export interface SupervisedOptions {
  model: SmallCnnSpec;
  epochs: number;
  batchSize: number;
  lr: number;
  momentum: number;
  weightDecay: number;
  seed: number;
  session?: SessionOptions;
  /** Called after each epoch with its mean loss and the test accuracy. */
  onEpoch?: (epoch: number, loss: number) => void;
}

/** Outcome of {@link trainSupervised}. */
export interface SupervisedResult {
  lossPerEpoch: number[];
  testAccuracy: number;
  seconds: number;
}

/** Trains the small CNN on `train` and reports accuracy on `test`. */
export async function trainSupervised(
  train: ImageDataset,
  test: ImageDataset,
  options: SupervisedOptions,
): Promise<SupervisedResult> {
  const start = performance.now();
  const { batchSize, model } = options;
  const rng = new Rng(options.seed);
  const size = train.height;

  const graph = new Graph("supervised_train_step");
  const x = graph.input("images", "float32", [batchSize, 3, size, size]);
  const targets = graph.input("targets", "float32", [batchSize, model.classes]);
  const { logits, params } = smallCnn(graph, x, model);
  const loss = graph.scope("loss", () => crossEntropy(logits, targets));
  const optimizer = createOptimizer({
    kind: "sgd",
    momentum: options.momentum,
    weightDecay: options.weightDecay,
    nesterov: false,
  });
  const trainable: TrainableParam[] = params.map((p) => ({
    tensor: graph.findInput(p.name)!,
    meta: { name: p.name, isBnOrBias: p.kind === "bias" },
  }));
  const layout = buildFusedStep({ graph, loss, params: trainable, buffers: [], optimizer });
  const session = await Session.create(graph, options.session);
  const runner = new StepRunner(session, layout, initParams(params, rng.fork("init")));

  const stepsPerEpoch = Math.floor(train.count / batchSize);
  const lossPerEpoch: number[] = [];
  for (let epoch = 0; epoch < options.epochs; epoch++) {
    const order = new Rng(options.seed, `shuffle/${epoch}`).permutation(train.count);
    const augment = new Rng(options.seed, `augment/${epoch}`);
    const bar = new ProgressBar(`epoch ${epoch + 1}/${options.epochs}`, stepsPerEpoch);
    let total = 0;
    for (let s = 0; s < stepsPerEpoch; s++) {
      const idx = order.subarray(s * batchSize, (s + 1) * batchSize);
      const result = await runner.step(
        { images: imageBatch(train, idx, augment), targets: oneHot(train, idx, model.classes) },
        { lr: options.lr },
      );
      total += result.loss;
      bar.tick(1, { loss: total / (s + 1) });
    }
    lossPerEpoch.push(total / stepsPerEpoch);
    bar.finish({ loss: total / stepsPerEpoch });
    options.onEpoch?.(epoch, total / stepsPerEpoch);
  }
  await session.release();

  const testAccuracy = await evaluateSmallCnn(test, model, runner.values, options.session);
  return { lossPerEpoch, testAccuracy, seconds: (performance.now() - start) / 1000 };
}

/** Accuracy of the small CNN with the given parameters on a data set. */
export async function evaluateSmallCnn(
  data: ImageDataset,
  model: SmallCnnSpec,
  values: Map<string, HostTensor>,
  sessionOptions?: SessionOptions,
): Promise<number> {
  const graph = new Graph("supervised_eval");
  const x = graph.input("images", "float32", ["batch", 3, data.height, data.width]);
  const { logits, params } = smallCnn(graph, x, model);
  graph.output(ops.argMax(logits, 1, false), "prediction");
  const session = await Session.create(graph, sessionOptions);
  let correct = 0;
  const chunk = 250;
  for (let start = 0; start < data.count; start += chunk) {
    const idx = Int32Array.from(
      { length: Math.min(chunk, data.count - start) },
      (_, i) => start + i,
    );
    const feeds: Record<string, HostTensor> = { images: imageBatch(data, idx, null) };
    for (const p of params) feeds[p.name] = values.get(p.name)!;
    const out = await session.run(feeds);
    const pred = out.prediction.data as BigInt64Array;
    idx.forEach((i, b) => {
      if (Number(pred[b]) === data.labels[i]) correct++;
    });
  }
  await session.release();
  return correct / data.count;
}
