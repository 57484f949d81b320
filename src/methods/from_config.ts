/**
 * From an experiment config (our schema; ETH configs are mapped into it by
 * the config layer) to what the graph builders take: the contrastive spec
 * (encoder, head, loss, method, batch, image size) and the graph optimizer's
 * config with its base learning rate (a per-step input, not part of the graph).
 *
 * Configs parsed by `loadConfig` are already valid; the checks here catch
 * configs built in code and values the graphs cannot express, each with an
 * Error naming the config key and the allowed values.
 */
import type {
  ExperimentConfig,
  HeadConfig as ConfigHead,
  LossConfig,
  MethodConfig,
  ModelConfig,
  OptimizerConfig as ConfigOptimizer,
} from "../config/mod.ts";
import {
  type HeadConfig,
  RESNET_ARCHS,
  RESNET_STEMS,
  type ResNetArch,
  type ResNetConfig,
  resnetFeatureDim,
  type ResNetStem,
} from "../nn/mod.ts";
import { OPTIMIZER_KINDS, type OptimizerConfig } from "../optim/mod.ts";
import type { ContrastiveLossSpec, ContrastiveSpec, MethodSpec } from "./contrastive.ts";

function oneOf<T extends string>(
  key: string,
  what: string,
  value: unknown,
  allowed: readonly T[],
): T {
  if (typeof value === "string" && (allowed as readonly string[]).includes(value)) {
    return value as T;
  }
  throw new Error(
    `${key}: unknown ${what} ${JSON.stringify(value)}; expected one of ${allowed.join(", ")}`,
  );
}

/** The encoder of `model` (architecture, stem, width multiplier, in-model input normalization). */
export function encoderFromConfig(model: ModelConfig): ResNetConfig {
  const arch = oneOf<ResNetArch>(
    "model.architecture",
    "architecture",
    model.architecture,
    RESNET_ARCHS,
  );
  const stem = oneOf<ResNetStem>("model.stem", "stem", model.stem, RESNET_STEMS);
  const width = model.width_multiplier;
  const base = 64 * width;
  if (!(typeof width === "number" && base >= 1 && Number.isInteger(base))) {
    throw new Error(
      `model.width_multiplier: ${
        JSON.stringify(width)
      } must make 64·width a positive integer (e.g. 1, 0.5, 0.0625)`,
    );
  }
  const encoder: ResNetConfig = { arch, stem, width };
  if (model.input_norm) {
    encoder.normalize = { mean: [...model.input_norm.mean], std: [...model.input_norm.std] };
  }
  return encoder;
}

const HEAD_TYPES = ["none", "linear", "mlp", "simclr", "sdclr"] as const;

/** The projection head of `head` (`none` → identity, `linear`/`mlp` → the ETH projection). */
export function headFromConfig(head: ConfigHead): HeadConfig {
  const type = oneOf("head.type", "head type", (head as { type: unknown }).type, HEAD_TYPES);
  switch (type) {
    case "none":
      return { kind: "identity" };
    case "linear": {
      const h = head as Extract<ConfigHead, { type: "linear" }>;
      return { kind: "projection", outDim: h.output_dim };
    }
    case "mlp": {
      const h = head as Extract<ConfigHead, { type: "mlp" }>;
      return {
        kind: "projection",
        outDim: h.output_dim,
        ...(h.hidden_dims === null ? {} : { hidden: [...h.hidden_dims] }),
      };
    }
    case "simclr":
    case "sdclr": {
      const h = head as Extract<ConfigHead, { type: "simclr" | "sdclr" }>;
      return {
        kind: type,
        outDim: h.output_dim,
        ...(h.hidden_dim === null ? {} : { hiddenDim: h.hidden_dim }),
      };
    }
  }
}

/**
 * `mlp` with `hidden_dims: null` means one hidden layer of the feature size
 * (see `headDims`); the head builder needs that size spelled out.
 */
function resolveHead(head: HeadConfig, config: Pick<ExperimentConfig, "head">, featureDim: number) {
  if (head.kind === "projection" && config.head.type === "mlp" && head.hidden === undefined) {
    return { ...head, hidden: [featureDim] };
  }
  return head;
}

const LOSS_TYPES = ["ntxent", "weighted_ntxent"] as const;

/** The loss of `loss`; our `normalization: none` is the graph's (and ETH's) `"None"`. */
export function lossFromConfig(loss: LossConfig): ContrastiveLossSpec {
  const type = oneOf("loss.type", "loss", (loss as { type: unknown }).type, LOSS_TYPES);
  if (type === "ntxent") return { type: "ntxent", temperature: loss.temperature };
  const weighted = loss as Extract<LossConfig, { type: "weighted_ntxent" }>;
  const normalization = oneOf(
    "loss.normalization",
    "weight normalization",
    weighted.normalization,
    ["negatives_constant_total_weight", "none"] as const,
  );
  return {
    type: "weighted_ntxent",
    temperature: weighted.temperature,
    sigma: weighted.sigma,
    lowerBound: weighted.lower_bound,
    upperBound: weighted.upper_bound,
    outOfBoundsFactor: weighted.out_of_bounds_factor,
    normalization: normalization === "none" ? "None" : normalization,
  };
}

const METHOD_NAMES = ["simclr", "sdclr"] as const;

/** The method of `method`; SDCLR's graph always has dual BN. */
export function methodFromConfig(method: MethodConfig): MethodSpec {
  const name = oneOf("method.name", "method", (method as { name: unknown }).name, METHOD_NAMES);
  if (name === "sdclr" && (method as Extract<MethodConfig, { name: "sdclr" }>).dual_bn !== true) {
    throw new Error(
      "method.dual_bn: the SDCLR graph gives the pruned branch its own BN (dual BN); " +
        "only true is supported, got false",
    );
  }
  return { name };
}

/** The contrastive spec of a config: graphs are static-shaped at `train.batch_size`. */
export function contrastiveSpecFromConfig(config: ExperimentConfig): ContrastiveSpec {
  const encoder = encoderFromConfig(config.model);
  const featureDim = resnetFeatureDim(encoder);
  const batchSize = config.train.batch_size;
  if (!Number.isInteger(batchSize) || batchSize < 2) {
    throw new Error(`train.batch_size: expected an integer >= 2, got ${JSON.stringify(batchSize)}`);
  }
  const imageSize = config.data.image_size;
  if (!Number.isInteger(imageSize) || imageSize < 1) {
    throw new Error(
      `data.image_size: expected a positive integer, got ${JSON.stringify(imageSize)}`,
    );
  }
  return {
    encoder,
    head: resolveHead(headFromConfig(config.head), config, featureDim),
    loss: lossFromConfig(config.loss),
    method: methodFromConfig(config.method),
    batchSize,
    imageSize,
  };
}

/** A graph optimizer config and the base learning rate fed to it as the `lr` input. */
export interface OptimizerPlan {
  optimizer: OptimizerConfig;
  /** Base learning rate (the schedule scales it per step on the host). */
  lr: number;
}

/** The graph optimizer of `optimizer` (LARS's `eta` is the trust coefficient). */
export function optimizerFromConfig(optimizer: ConfigOptimizer): OptimizerPlan {
  const type = oneOf(
    "optimizer.type",
    "optimizer",
    (optimizer as { type: unknown }).type,
    OPTIMIZER_KINDS,
  );
  switch (type) {
    case "sgd": {
      const o = optimizer as Extract<ConfigOptimizer, { type: "sgd" }>;
      return {
        optimizer: {
          kind: "sgd",
          momentum: o.momentum,
          weightDecay: o.weight_decay,
          nesterov: o.nesterov,
        },
        lr: o.lr,
      };
    }
    case "adam":
    case "adamw": {
      const o = optimizer as Extract<ConfigOptimizer, { type: "adam" | "adamw" }>;
      return {
        optimizer: {
          kind: type,
          betas: [o.betas[0], o.betas[1]],
          eps: o.eps,
          weightDecay: o.weight_decay,
        },
        lr: o.lr,
      };
    }
    case "lars": {
      const o = optimizer as Extract<ConfigOptimizer, { type: "lars" }>;
      return {
        optimizer: {
          kind: "lars",
          momentum: o.momentum,
          weightDecay: o.weight_decay,
          trustCoefficient: o.eta,
        },
        lr: o.lr,
      };
    }
  }
}
