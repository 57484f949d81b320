/**
 * ResNet-18/34/50 encoders exactly as torchvision builds them (BasicBlock;
 * Bottleneck v1.5 with the stride on the 3x3 conv), with a CIFAR stem (3x3
 * stride-1 conv, no max-pool) or the ImageNet stem (7x7 stride-2 conv, BN,
 * ReLU, 3x3 stride-2 max-pool), optional in-model input normalisation and a
 * width multiplier for tiny test models. The output is the global average of
 * the last stage: [N, 512·width] (18/34) or [N, 2048·width] (50).
 */
import { Graph, type Tensor } from "../onnx/graph.ts";
import { batchNorm, batchNormRelu } from "./batchnorm.ts";
import {
  conv2d,
  globalAvgPool,
  maxPool2d,
  type Normalization,
  normalizeInput,
  relu,
} from "./layers.ts";
import { build, type Built, type ForwardOptions, Module } from "./module.ts";
import { ParamStore } from "./params.ts";

/** Encoder architectures. */
export const RESNET_ARCHS = ["resnet18", "resnet34", "resnet50"] as const;
/** An encoder architecture name. */
export type ResNetArch = typeof RESNET_ARCHS[number];
/** Stem kinds. */
export const RESNET_STEMS = ["cifar", "imagenet"] as const;
/** A stem kind. */
export type ResNetStem = typeof RESNET_STEMS[number];

/** An encoder configuration. */
export interface ResNetConfig {
  arch: ResNetArch;
  stem: ResNetStem;
  /** Channel multiplier (1 = torchvision; 1/16 gives 4 base channels); 64·width must be an integer. */
  width?: number;
  /** (x − mean)/std inside the model (SDCLR normalises with ImageNet statistics this way). */
  normalize?: Normalization;
}

type BlockKind = "basic" | "bottleneck";
const ARCH_SPECS: Record<ResNetArch, { block: BlockKind; layers: number[] }> = {
  resnet18: { block: "basic", layers: [2, 2, 2, 2] },
  resnet34: { block: "basic", layers: [3, 4, 6, 3] },
  resnet50: { block: "bottleneck", layers: [3, 4, 6, 3] },
};
const EXPANSION: Record<BlockKind, number> = { basic: 1, bottleneck: 4 };

/** Throws an Error naming the key (under `where`) and the allowed values when `config` is invalid. */
export function checkResNetConfig(config: ResNetConfig, where = "encoder"): void {
  if (!(RESNET_ARCHS as readonly string[]).includes(config.arch)) {
    throw new Error(
      `${where}.arch: unknown architecture ${JSON.stringify(config.arch)}; expected one of ${
        RESNET_ARCHS.join(", ")
      }`,
    );
  }
  if (!(RESNET_STEMS as readonly string[]).includes(config.stem)) {
    throw new Error(
      `${where}.stem: unknown stem ${JSON.stringify(config.stem)}; expected one of ${
        RESNET_STEMS.join(", ")
      }`,
    );
  }
  baseChannels(config, where);
}

function baseChannels(config: ResNetConfig, where = "encoder"): number {
  const width = config.width ?? 1;
  const base = 64 * width;
  if (!(base >= 1) || Math.abs(base - Math.round(base)) > 1e-9) {
    throw new Error(
      `${where}.width: ${width} must make 64·width a positive integer (e.g. 1, 0.5, 0.125, 0.0625)`,
    );
  }
  return Math.round(base);
}

/** Feature size of the encoder: 512·width (ResNet-18/34) or 2048·width (ResNet-50). */
export function resnetFeatureDim(config: ResNetConfig): number {
  checkResNetConfig(config);
  return baseChannels(config) * 8 * EXPANSION[ARCH_SPECS[config.arch].block];
}

function downsample(m: Module, x: Tensor, outChannels: number, stride: number): Tensor {
  const y = conv2d(m.child(0), x, { outChannels, kernel: 1, stride });
  return batchNorm(m.child(1), y);
}

function basicBlock(m: Module, x: Tensor, planes: number, stride: number): Tensor {
  let out = conv2d(m.child("conv1"), x, { outChannels: planes, kernel: 3, stride, padding: 1 });
  out = batchNormRelu(m, m.child("bn1"), out);
  out = conv2d(m.child("conv2"), out, { outChannels: planes, kernel: 3, padding: 1 });
  out = batchNorm(m.child("bn2"), out);
  const identity = stride !== 1 || x.shape[1] !== planes
    ? downsample(m.child("downsample"), x, planes, stride)
    : x;
  return relu(m, m.graph.op("Add", [out, identity], {}, m.nodeName("residual")));
}

function bottleneck(m: Module, x: Tensor, planes: number, stride: number): Tensor {
  const outChannels = planes * EXPANSION.bottleneck;
  let out = conv2d(m.child("conv1"), x, { outChannels: planes, kernel: 1 });
  out = batchNormRelu(m, m.child("bn1"), out);
  out = conv2d(m.child("conv2"), out, { outChannels: planes, kernel: 3, stride, padding: 1 });
  out = batchNormRelu(m, m.child("bn2"), out);
  out = conv2d(m.child("conv3"), out, { outChannels, kernel: 1 });
  out = batchNorm(m.child("bn3"), out);
  const identity = stride !== 1 || x.shape[1] !== outChannels
    ? downsample(m.child("downsample"), x, outChannels, stride)
    : x;
  return relu(m, m.graph.op("Add", [out, identity], {}, m.nodeName("residual")));
}

/**
 * Builds the encoder on `x` [N, 3, H, W] under module `m` (names as
 * torchvision's: `conv1`, `bn1`, `layer1.0.conv1`, `layer2.0.downsample.0`,
 * ...). Returns the features [N, featureDim].
 */
export function resnet(m: Module, x: Tensor, config: ResNetConfig): Tensor {
  checkResNetConfig(config, m.path || "encoder");
  if (x.rank !== 4 || x.shape[1] !== 3) {
    throw new Error(`resnet ${m.path}: input ${x.name} ${x.shapeText} must be [N, 3, H, W]`);
  }
  const spec = ARCH_SPECS[config.arch];
  const base = baseChannels(config);
  let h = config.normalize ? normalizeInput(x, config.normalize) : x;
  if (config.stem === "cifar") {
    h = conv2d(m.child("conv1"), h, { outChannels: base, kernel: 3, stride: 1, padding: 1 });
    h = batchNormRelu(m, m.child("bn1"), h);
  } else {
    h = conv2d(m.child("conv1"), h, { outChannels: base, kernel: 7, stride: 2, padding: 3 });
    h = batchNormRelu(m, m.child("bn1"), h);
    h = maxPool2d(m, h, 3, 2, 1);
  }
  const block = spec.block === "basic" ? basicBlock : bottleneck;
  spec.layers.forEach((blocks, stage) => {
    const layer = m.child(`layer${stage + 1}`);
    const planes = base * 2 ** stage;
    for (let i = 0; i < blocks; i++) {
      h = block(layer.child(i), h, planes, i === 0 && stage > 0 ? 2 : 1);
    }
  });
  return globalAvgPool(h);
}

/**
 * Builds the encoder under `prefix` (default `"encoder"`) and returns the
 * features with the BN updates (empty in eval mode). For SDCLR, call it twice
 * on one store (created with `bnBranches: 2`): `{ train: true, branch: 0 }`,
 * then `{ train: true, branch: 1, masks: declareMasks(store, "encoder.") }`;
 * conv weights are shared, BN parameters and statistics are per branch.
 */
export function encoder(
  store: ParamStore,
  x: Tensor,
  config: ResNetConfig,
  options: ForwardOptions,
  prefix = "encoder",
): Built {
  return build(store, prefix, options, (m) => resnet(m, x, config));
}

/** Number of trainable parameters of the encoder (no classifier), counted on a throwaway graph. */
export function resnetParamCount(config: ResNetConfig): number {
  const store = new ParamStore(new Graph("count"));
  const x = store.graph.input("x", "float32", [2, 3, 32, 32]);
  encoder(store, x, config, { train: false }, "");
  return store.count();
}
