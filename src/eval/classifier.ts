/**
 * The linear classifier of the probes, trained through the fused step: one
 * graph (symbolic batch, so the last partial batch runs through the same
 * session) computes Linear(D, K), the mean cross-entropy against one-hot
 * targets, its gradients and the optimizer update; a second graph predicts.
 */
import { Graph, ops } from "../onnx/mod.ts";
import { createOptimizer, type OptimizerConfig } from "../optim/mod.ts";
import type { HostTensor } from "../runtime/host_tensor.ts";
import { Session, type SessionOptions } from "../runtime/session.ts";
import { buildFusedStep } from "../train/fused_step.ts";
import { StepRunner } from "../train/step_runner.ts";
import { crossEntropy } from "../train/supervised.ts";
import type { Rng } from "../util/rng.ts";

/** Graph input names of the classifier's weight [K, D] and bias [K] (torch's `fc`). */
export const FC_WEIGHT = "fc.weight";
/** See {@link FC_WEIGHT}. */
export const FC_BIAS = "fc.bias";

/** Weights of a linear classifier: weight [classes, dim] row-major, bias [classes]. */
export interface ClassifierWeights {
  dim: number;
  classes: number;
  weight: Float32Array;
  bias: Float32Array;
}

/** torch's nn.Linear initialisation: weight and bias uniform in ±1/√dim (the ETH classifier). */
export function torchLinearInit(dim: number, classes: number, rng: Rng): ClassifierWeights {
  const bound = 1 / Math.sqrt(dim);
  const weight = new Float32Array(classes * dim);
  const bias = new Float32Array(classes);
  rng.fork("weight").fillUniform(weight, -bound, bound);
  rng.fork("bias").fillUniform(bias, -bound, bound);
  return { dim, classes, weight, bias };
}

/** weight ~ N(0, std), bias 0 (SDCLR's probe: std 0.01). */
export function normalLinearInit(
  dim: number,
  classes: number,
  std: number,
  rng: Rng,
): ClassifierWeights {
  const weight = new Float32Array(classes * dim);
  rng.fork("weight").fillNormal(weight, 0, std);
  return { dim, classes, weight, bias: new Float32Array(classes) };
}

function asTensors(w: ClassifierWeights): Map<string, HostTensor> {
  return new Map<string, HostTensor>([
    [FC_WEIGHT, { dtype: "float32", shape: [w.classes, w.dim], data: w.weight.slice() }],
    [FC_BIAS, { dtype: "float32", shape: [w.classes], data: w.bias.slice() }],
  ]);
}

/** One-hot rows [labels.length, classes]. */
export function oneHot(labels: ArrayLike<number>, classes: number): HostTensor {
  const data = new Float32Array(labels.length * classes);
  for (let i = 0; i < labels.length; i++) {
    const label = labels[i];
    if (!(Number.isInteger(label) && label >= 0 && label < classes)) {
      throw new Error(`oneHot: label ${label} at ${i} is outside [0, ${classes})`);
    }
    data[i * classes + label] = 1;
  }
  return { dtype: "float32", shape: [labels.length, classes], data };
}

/** A linear classifier being trained: a fused-step session and its carried state. */
export class LinearClassifier {
  #updates = 0;

  private constructor(
    readonly dim: number,
    readonly classes: number,
    readonly session: Session,
    readonly runner: StepRunner,
  ) {}

  /**
   * Builds the step graph for `optimizer` (its per-step inputs are `lr` and,
   * for Adam, the 1-based `step`) and starts from `initial`.
   */
  static async create(
    initial: ClassifierWeights,
    optimizer: OptimizerConfig,
    session: SessionOptions = {},
  ): Promise<LinearClassifier> {
    const { dim, classes } = initial;
    const graph = new Graph("linear_probe_step");
    const features = graph.input("features", "float32", ["batch", dim]);
    const targets = graph.input("targets", "float32", ["batch", classes]);
    const weight = graph.input(FC_WEIGHT, "float32", [classes, dim]);
    const bias = graph.input(FC_BIAS, "float32", [classes]);
    const logits = graph.scope("fc", () => ops.gemm(features, weight, bias, { transB: true }));
    const loss = graph.scope("loss", () => crossEntropy(logits, targets));
    const layout = buildFusedStep({
      graph,
      loss,
      params: [
        { tensor: weight, meta: { name: FC_WEIGHT, isBnOrBias: false } },
        { tensor: bias, meta: { name: FC_BIAS, isBnOrBias: true } },
      ],
      buffers: [],
      optimizer: createOptimizer(optimizer, "evaluation.optimizer"),
    });
    const opened = await Session.create(graph, session);
    return new LinearClassifier(
      dim,
      classes,
      opened,
      new StepRunner(opened, layout, asTensors(initial)),
    );
  }

  /** Optimizer updates done so far. */
  get updates(): number {
    return this.#updates;
  }

  /** One update on a batch: `features` [B·dim] row-major with their labels; returns the batch's mean loss. */
  async step(features: Float32Array, labels: ArrayLike<number>, lr: number): Promise<number> {
    const count = labels.length;
    if (count === 0 || features.length !== count * this.dim) {
      throw new Error(
        `LinearClassifier.step: ${features.length} feature values for ${count} labels of dim ${this.dim}`,
      );
    }
    const result = await this.runner.step(
      {
        features: { dtype: "float32", shape: [count, this.dim], data: features },
        targets: oneHot(labels, this.classes),
      },
      { lr, step: this.#updates + 1 },
    );
    this.#updates++;
    return result.loss;
  }

  /** A copy of the current weights. */
  snapshot(): ClassifierWeights {
    const weight = this.runner.values.get(FC_WEIGHT)!.data as Float32Array;
    const bias = this.runner.values.get(FC_BIAS)!.data as Float32Array;
    return { dim: this.dim, classes: this.classes, weight: weight.slice(), bias: bias.slice() };
  }

  /** Frees the session. */
  async release(): Promise<void> {
    await this.session.release();
  }
}

/** Predicts classes (and returns logits) of feature rows with given classifier weights (Gemm + ArgMax graph). */
export class ClassifierPredictor {
  private constructor(readonly dim: number, readonly classes: number, readonly session: Session) {}

  /** Opens the prediction session for [batch, dim] features and `classes` classes. */
  static async create(
    dim: number,
    classes: number,
    session: SessionOptions = {},
  ): Promise<ClassifierPredictor> {
    const graph = new Graph("linear_probe_predict");
    const features = graph.input("features", "float32", ["batch", dim]);
    const weight = graph.input(FC_WEIGHT, "float32", [classes, dim]);
    const bias = graph.input(FC_BIAS, "float32", [classes]);
    const logits = ops.gemm(features, weight, bias, { transB: true });
    graph.output(ops.argMax(logits, 1, false), "prediction");
    graph.output(logits, "logits");
    return new ClassifierPredictor(dim, classes, await Session.create(graph, session));
  }

  /** Predicted class of each of the `features.length / dim` rows, in chunks of `chunk` rows. */
  async predict(
    features: Float32Array,
    weights: ClassifierWeights,
    chunk = 4096,
  ): Promise<Int32Array> {
    return (await this.classify(features, weights, chunk, false)).predicted;
  }

  /** Predicted classes and the logits ([rows, classes], row-major) of the rows. */
  async scores(
    features: Float32Array,
    weights: ClassifierWeights,
    chunk = 4096,
  ): Promise<{ predicted: Int32Array; logits: Float32Array }> {
    const { predicted, logits } = await this.classify(features, weights, chunk, true);
    return { predicted, logits: logits! };
  }

  private async classify(
    features: Float32Array,
    weights: ClassifierWeights,
    chunk: number,
    withLogits: boolean,
  ): Promise<{ predicted: Int32Array; logits: Float32Array | null }> {
    if (weights.dim !== this.dim || weights.classes !== this.classes) {
      throw new Error(
        `ClassifierPredictor: weights are [${weights.classes}, ${weights.dim}], the graph expects ` +
          `[${this.classes}, ${this.dim}]`,
      );
    }
    const rows = features.length / this.dim;
    if (!Number.isInteger(rows)) {
      throw new Error(
        `ClassifierPredictor: ${features.length} values are not rows of dim ${this.dim}`,
      );
    }
    const params = asTensors(weights);
    const out = new Int32Array(rows);
    const logits = withLogits ? new Float32Array(rows * this.classes) : null;
    for (let start = 0; start < rows; start += chunk) {
      const n = Math.min(chunk, rows - start);
      const result = await this.session.run({
        features: {
          dtype: "float32",
          shape: [n, this.dim],
          data: features.subarray(start * this.dim, (start + n) * this.dim),
        },
        [FC_WEIGHT]: params.get(FC_WEIGHT)!,
        [FC_BIAS]: params.get(FC_BIAS)!,
      }, withLogits ? ["prediction", "logits"] : ["prediction"]);
      const predicted = result.prediction.data as BigInt64Array;
      for (let i = 0; i < n; i++) out[start + i] = Number(predicted[i]);
      logits?.set(result.logits.data as Float32Array, start * this.classes);
    }
    return { predicted: out, logits };
  }

  /** Frees the session. */
  async release(): Promise<void> {
    await this.session.release();
  }
}
