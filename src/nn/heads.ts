/**
 * Heads on encoder features [N, D]: the ETH projection (Linear with bias,
 * optionally an MLP), SimCLR's and SDCLR's projection heads with BN (dual
 * when the store has two BN branches), identity, and a linear classifier.
 * Layer names follow SDCLR's `proj_head` (`fc1`, `bn1`, ...) and torch's `fc`.
 */
import type { Tensor } from "../onnx/graph.ts";
import { batchNorm, batchNormRelu } from "./batchnorm.ts";
import { constantInit } from "./init.ts";
import { linear, relu } from "./layers.ts";
import { build, type Built, type ForwardOptions, type Module } from "./module.ts";
import type { ParamStore } from "./params.ts";

/** Head kinds. */
export const HEAD_KINDS = ["projection", "simclr", "sdclr", "identity", "linear"] as const;
/** A head kind. */
export type HeadKind = typeof HEAD_KINDS[number];

/** A head configuration. */
export type HeadConfig =
  /** ETH: Linear(D, outDim) with bias; with `hidden`, Linear+ReLU per hidden size first. */
  | { kind: "projection"; outDim?: number; hidden?: readonly number[] }
  /** SimCLR: Linear(D, hidden)–BN–ReLU–Linear(hidden, outDim, no bias)–BN. */
  | { kind: "simclr"; hiddenDim?: number; outDim?: number }
  /** SDCLR: Linear(D, hidden)–BN–ReLU–Linear(hidden, hidden, no bias)–BN–ReLU–Linear(hidden, outDim, no bias)–BN. */
  | { kind: "sdclr"; hiddenDim?: number; outDim?: number }
  /** The features themselves. */
  | { kind: "identity" }
  /** Linear(D, classes) with bias; `weightStd` draws the weight from N(0, std²) with a zero bias. */
  | { kind: "linear"; classes: number; weightStd?: number };

const DEFAULT_OUT = 128;

function positiveInt(value: number | undefined, fallback: number, key: string): number {
  const v = value ?? fallback;
  if (!Number.isInteger(v) || v < 1) throw new Error(`${key}: ${value} must be a positive integer`);
  return v;
}

/** Throws an Error naming the key (under `where`) and the allowed values when `config` is invalid. */
export function checkHeadConfig(config: HeadConfig, where = "head"): void {
  const kind = (config as { kind: string }).kind;
  if (!(HEAD_KINDS as readonly string[]).includes(kind)) {
    throw new Error(
      `${where}.kind: unknown head ${JSON.stringify(kind)}; expected one of ${
        HEAD_KINDS.join(", ")
      }`,
    );
  }
  switch (config.kind) {
    case "projection":
      positiveInt(config.outDim, DEFAULT_OUT, `${where}.outDim`);
      (config.hidden ?? []).forEach((h, i) => positiveInt(h, h, `${where}.hidden[${i}]`));
      return;
    case "simclr":
    case "sdclr":
      positiveInt(config.hiddenDim, 1, `${where}.hiddenDim`);
      positiveInt(config.outDim, DEFAULT_OUT, `${where}.outDim`);
      return;
    case "linear":
      positiveInt(config.classes, config.classes, `${where}.classes`);
      if (config.weightStd !== undefined && !(config.weightStd > 0)) {
        throw new Error(`${where}.weightStd: ${config.weightStd} must be positive`);
      }
      return;
  }
}

/** Output size of the head on `inDim` features. */
export function headOutputDim(config: HeadConfig, inDim: number): number {
  checkHeadConfig(config);
  switch (config.kind) {
    case "projection":
    case "simclr":
    case "sdclr":
      return config.outDim ?? DEFAULT_OUT;
    case "identity":
      return inDim;
    case "linear":
      return config.classes;
  }
}

/** Builds the head on `x` [N, D] under module `m`. */
export function head(m: Module, x: Tensor, config: HeadConfig): Tensor {
  checkHeadConfig(config, m.path || "head");
  const inDim = x.shape[1];
  if (x.rank !== 2 || typeof inDim !== "number") {
    throw new Error(`head ${m.path}: input ${x.name} ${x.shapeText} must be [N, D] with static D`);
  }
  switch (config.kind) {
    case "projection": {
      let h = x;
      const hidden = config.hidden ?? [];
      hidden.forEach((size, i) => {
        h = relu(m, linear(m.child(`fc${i + 1}`), h, { outFeatures: size }));
      });
      return linear(m.child(`fc${hidden.length + 1}`), h, {
        outFeatures: config.outDim ?? DEFAULT_OUT,
      });
    }
    case "simclr": {
      const hiddenDim = config.hiddenDim ?? inDim;
      let h = linear(m.child("fc1"), x, { outFeatures: hiddenDim });
      h = batchNormRelu(m, m.child("bn1"), h);
      h = linear(m.child("fc2"), h, { outFeatures: config.outDim ?? DEFAULT_OUT, bias: false });
      return batchNorm(m.child("bn2"), h);
    }
    case "sdclr": {
      const hiddenDim = config.hiddenDim ?? inDim;
      let h = linear(m.child("fc1"), x, { outFeatures: hiddenDim });
      h = batchNormRelu(m, m.child("bn1"), h);
      h = linear(m.child("fc2"), h, { outFeatures: hiddenDim, bias: false });
      h = batchNormRelu(m, m.child("bn2"), h);
      h = linear(m.child("fc3"), h, { outFeatures: config.outDim ?? DEFAULT_OUT, bias: false });
      return batchNorm(m.child("bn3"), h);
    }
    case "identity":
      return x;
    case "linear":
      return linear(m.child("fc"), x, {
        outFeatures: config.classes,
        ...(config.weightStd === undefined ? {} : {
          weightInit: { kind: "normal", std: config.weightStd },
          biasInit: constantInit(0),
        }),
      });
  }
}

/** Builds the head under `prefix` (default `"head"`) and returns its output with the BN updates. */
export function projectionHead(
  store: ParamStore,
  x: Tensor,
  config: HeadConfig,
  options: ForwardOptions,
  prefix = "head",
): Built {
  return build(store, prefix, options, (m) => head(m, x, config));
}
