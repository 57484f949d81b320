/**
 * Our experiment config format (YAML), one strict zod schema for SimCLR,
 * SDCLR and the ETH weighted loss in any combination. Unknown keys are
 * errors; everything but `experiment`, `data.dataset` and `train.epochs` has
 * a default. Parsing resolves presets (input normalization, augmentation
 * recipe, μ given as a plain number), and parsing a parsed config again
 * gives the same config.
 */
import { z } from "zod";
import {
  type AugmentationConfig,
  AugmentationInputSchema,
  resolveAugmentation,
} from "./augmentation.ts";
import { CUDA_OPTION_DEFAULTS, unappliedCudaOption } from "../runtime/session_options.ts";

const positive = z.number().positive();
const nonNegative = z.number().min(0);
const positiveInt = z.int().positive();

/** Where a run executes: `auto` picks CUDA when available. */
export const DEVICES = ["cpu", "cuda", "auto"] as const;
/** A device choice. */
export type DeviceChoice = (typeof DEVICES)[number];

/** Dataset kinds. */
export const DATASETS = ["cifar10", "cifar100", "imagefolder", "list"] as const;

/** Class counts of the datasets that fix them. */
export const DATASET_CLASSES: Partial<Record<(typeof DATASETS)[number], number>> = {
  cifar10: 10,
  cifar100: 100,
};

const splitPath = z.string().min(1);

/**
 * Data. Split files are relative to `dir` unless absolute: `.npy` int64
 * indices into the official training order for `cifar10`/`cifar100` (and into
 * the sorted `train/<class>/<file>` list for `imagefolder`), text lists of
 * `relative/path label` lines for `list`. `test_split` indexes the official
 * test set (`test/` for `imagefolder`) instead. `null` means the whole official
 * train set (pretraining and linear train), none (val, few-shot), or the
 * whole official test set (test). A split that nothing in the config reads is
 * refused.
 */
export const DataSchema = z.strictObject({
  dataset: z.enum(DATASETS),
  /** Root folder of the data (CIFAR: holds cifar-10-batches-bin/ etc.). */
  dir: z.string().min(1).default("data"),
  /** Side of the (square) network input; CIFAR: 32 (the default). */
  image_size: positiveInt.nullable().default(null),
  /** Evaluation resize of the short side before a center crop to image_size (ImageNet: 256). */
  eval_resize: positiveInt.nullable().default(null),
  /**
   * `list`/`imagefolder`: images that are cropped at random (pretraining, and the SDCLR probe's
   * training set with `augment`) are decoded whole and kept in memory with their longer side
   * shrunk to at most this many pixels (null: 320); RandomResizedCrop then crops from the whole
   * image, as torchvision does on the files. Memory: 3·h·w bytes per image.
   */
  full_image_max_side: z.int().min(8).nullable().default(null),
  /** Number of classes; null = fixed by the dataset or read from the labels. */
  num_classes: z.int().min(2).nullable().default(null),
  /** Subset used for contrastive pretraining. */
  pretrain_split: splitPath.nullable().default(null),
  /** Training set of the linear probe. */
  train_split: splitPath.nullable().default(null),
  /** Validation set for model selection in the SDCLR protocol. */
  val_split: splitPath.nullable().default(null),
  /** Training set of the few-shot probe. */
  few_shot_split: splitPath.nullable().default(null),
  /** Test set; null = the official test set. */
  test_split: splitPath.nullable().default(null),
});

/** Per-channel (R, G, B) normalization of [0, 1] images: (x − mean) / std. */
export interface InputNormalization {
  /** Per-channel mean. */
  mean: [number, number, number];
  /** Per-channel standard deviation. */
  std: [number, number, number];
}

/** Named input normalizations (ETH: CIFAR statistics; SDCLR: ImageNet statistics in the model). */
export const INPUT_NORMALIZATIONS: Readonly<
  Record<"imagenet" | "cifar10" | "cifar100", InputNormalization>
> = {
  imagenet: { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] },
  cifar10: { mean: [0.4914, 0.4822, 0.4465], std: [0.2470, 0.2435, 0.2616] },
  cifar100: { mean: [0.5071, 0.4865, 0.4409], std: [0.2673, 0.2564, 0.2762] },
};

const rgbMean = z.tuple([z.number(), z.number(), z.number()]);
const rgbStd = z.tuple([positive, positive, positive]);
const InputNormSchema = z.union([
  z.enum(["imagenet", "cifar10", "cifar100", "none"]).transform((name): InputNormalization | null =>
    name === "none" ? null : structuredClone(INPUT_NORMALIZATIONS[name])
  ),
  z.strictObject({ mean: rgbMean, std: rgbStd }),
  z.null(),
], {
  error:
    'expected "imagenet" | "cifar10" | "cifar100" | "none", {mean: [r, g, b], std: [r, g, b]} or null',
});

/**
 * Encoder. Channel widths are 64·w, 128·w, 256·w, 512·w per stage (×4 at the
 * output of ResNet-50 blocks); feature = mean over H, W of the last stage.
 */
export const ModelSchema = z.strictObject({
  architecture: z.enum(["resnet18", "resnet34", "resnet50"]).default("resnet18"),
  /** cifar: 3x3 stride-1 conv, no max-pool. imagenet: 7x7 stride-2 conv, BN, ReLU, 3x3 stride-2 max-pool. */
  stem: z.enum(["cifar", "imagenet"]).default("cifar"),
  width_multiplier: positive.default(1),
  /** (x − mean)/std on [0, 1] images as the model's first op; null = none. */
  input_norm: InputNormSchema.prefault("imagenet"),
});

const outputDim = positiveInt.default(128);
/**
 * Projection head on the encoder feature (dims null = the feature dim).
 * - linear: Linear(f, out) with bias (ETH).
 * - mlp: [Linear(+bias)–ReLU] per hidden dim, then Linear(+bias).
 * - simclr: Linear(f, h)–BN–ReLU–Linear(h, out, no bias)–BN (SDCLR's baselines).
 * - sdclr: Linear(f, h)–BN–ReLU–Linear(h, h, no bias)–BN–ReLU–Linear(h, out, no bias)–BN;
 *   every BN dual when the method uses dual BN.
 */
export const HeadSchema = z.discriminatedUnion("type", [
  z.strictObject({ type: z.literal("none") }),
  z.strictObject({ type: z.literal("linear"), output_dim: outputDim }),
  z.strictObject({
    type: z.literal("mlp"),
    hidden_dims: z.array(positiveInt).min(1).nullable().default(null),
    output_dim: outputDim,
  }),
  z.strictObject({
    type: z.literal("simclr"),
    hidden_dim: positiveInt.nullable().default(null),
    output_dim: outputDim,
  }),
  z.strictObject({
    type: z.literal("sdclr"),
    hidden_dim: positiveInt.nullable().default(null),
    output_dim: outputDim,
  }),
]);

/** SimCLR, or SDCLR's contrast between the dense and the magnitude-pruned branch. */
export const MethodSchema = z.discriminatedUnion("name", [
  z.strictObject({ name: z.literal("simclr") }),
  z.strictObject({
    name: z.literal("sdclr"),
    prune_percent: z.number().min(0).lt(1).default(0.9),
    random_prune_percent: z.number().min(0).lt(1).default(0),
    /** The pruned branch has its own BN (the SDCLR graph knows no other form). */
    dual_bn: z.literal(true, {
      error: "expected true: the SDCLR graph always gives the pruned branch its own BN (dual BN)",
    }).default(true),
  }),
]);

/**
 * μ schedule of the weighted loss (SPEC §A "Schedules"); a plain number is a
 * constant. Updates happen at every epoch end; random draws use the config seed.
 */
export const MeanScheduleSchema = z.preprocess(
  (value) => (typeof value === "number" ? { type: "const", value } : value),
  z.discriminatedUnion("type", [
    z.strictObject({ type: z.literal("const"), value: z.number() }),
    z.strictObject({
      type: z.literal("linear"),
      begin: z.number(),
      end: z.number(),
      steps: positiveInt,
    }),
    z.strictObject({
      type: z.literal("exponential"),
      begin: z.number(),
      end: z.number(),
      factor: positive,
    }),
    z.strictObject({ type: z.literal("random"), begin: z.number(), end: z.number() }),
    z.strictObject({ type: z.literal("random_every_iter"), begin: z.number(), end: z.number() }),
    z.strictObject({
      type: z.literal("random_then_const"),
      begin: z.number(),
      end: z.number(),
      steps: z.int().min(0),
      const_value: z.number(),
    }),
  ]),
);

/** NT-Xent, or the ETH weighted NT-Xent (SPEC §A "Loss"). */
export const LossSchema = z.discriminatedUnion("type", [
  z.strictObject({ type: z.literal("ntxent"), temperature: positive }),
  z.strictObject({
    type: z.literal("weighted_ntxent"),
    temperature: positive,
    sigma: positive,
    mean: MeanScheduleSchema,
    /** Weights of similarities below b_l or above b_u are multiplied by out_of_bounds_factor. */
    lower_bound: z.number().default(-1),
    upper_bound: z.number().default(1),
    out_of_bounds_factor: positive.default(1e-3),
    normalization: z.enum(["negatives_constant_total_weight", "none"]).default(
      "negatives_constant_total_weight",
    ),
  }),
]);

const beta = z.number().min(0).lt(1);
/** Optimizers; Adam's weight_decay is L2 added to the gradient (torch.optim.Adam), AdamW's is decoupled. */
export const OptimizerSchema = z.discriminatedUnion("type", [
  z.strictObject({
    type: z.literal("sgd"),
    lr: positive,
    momentum: z.number().min(0).lt(1).default(0.9),
    weight_decay: nonNegative.default(0),
    nesterov: z.boolean().default(false),
  }),
  z.strictObject({
    type: z.literal("adam"),
    lr: positive.default(1e-3),
    betas: z.tuple([beta, beta]).default([0.9, 0.999]),
    eps: positive.default(1e-8),
    weight_decay: nonNegative.default(0),
  }),
  z.strictObject({
    type: z.literal("adamw"),
    lr: positive.default(1e-3),
    betas: z.tuple([beta, beta]).default([0.9, 0.999]),
    eps: positive.default(1e-8),
    weight_decay: nonNegative.default(0.01),
  }),
  z.strictObject({
    type: z.literal("lars"),
    lr: positive,
    momentum: z.number().min(0).lt(1).default(0.9),
    weight_decay: nonNegative.default(1e-6),
    /** Trust coefficient: local lr = eta·‖w‖ / (‖g‖ + wd·‖w‖). */
    eta: positive.default(1e-3),
  }),
]);

/**
 * Learning-rate schedule, updated every iteration. warmup_cosine (SDCLR):
 * lr = base·it/W for it < W = warmup_epochs·iterations per epoch, then
 * final_lr + (base − final_lr)·½(1 + cos(π(it − W)/(T − W))). step: ×gamma
 * at each milestone epoch.
 */
export const LrScheduleSchema = z.discriminatedUnion("type", [
  z.strictObject({ type: z.literal("constant") }),
  z.strictObject({
    type: z.literal("warmup_cosine"),
    warmup_epochs: z.int().min(0).default(10),
    final_lr: nonNegative.default(1e-6),
  }),
  z.strictObject({
    type: z.literal("step"),
    milestones: z.array(positiveInt).min(1),
    gamma: positive.default(0.1),
  }),
]);

/**
 * Default of `train.steps_per_run`, chosen by measurement (bench/copies.ts and interleaved A/B
 * runs; README "Speed"): at 8 the host↔ORT copies fall from 1.7 % to 0.2 % of a ResNet-18 batch-32
 * step and from 2–7 % to 0.3 % of the ETH ResNet-50 batch-128 Adam step, steps are not slower
 * than single ones, and peak RSS is not higher. The cost: Ctrl-C and the progress bar wait for up
 * to 8 steps.
 */
export const DEFAULT_STEPS_PER_RUN = 8;

/**
 * Training precisions (src/train/precision.ts): float32; float16 (mixed precision with loss
 * scaling, CUDA only); float16_simulated (float16's rounding computed in float32, any device);
 * bfloat16 only to be refused with its reason.
 */
export const PRECISIONS = ["float32", "float16", "float16_simulated", "bfloat16"] as const;
/** A training precision. */
export type Precision = (typeof PRECISIONS)[number];

/** Why `train.precision: bfloat16` is refused. */
export const BFLOAT16_UNSUPPORTED =
  "bfloat16 is not supported: the graph builder has no bfloat16 type and ONNX Runtime 1.29's CPU " +
  "provider has no bfloat16 Conv; use float16 (CUDA) or float32";

/** Pretraining loop. */
export const TrainSchema = z.strictObject({
  epochs: positiveInt,
  batch_size: z.int().min(2).default(512),
  /** Drop the last partial batch (both originals keep it). */
  drop_last: z.boolean().default(false),
  /** Resumable checkpoint period; null = only at the end. */
  checkpoint_every_n_epochs: positiveInt.nullable().default(10),
  /**
   * Training steps per ONNX Runtime run (an ONNX Loop over up to K steps): parameters and
   * optimizer state cross the host↔runtime boundary once per run instead of once per step.
   * Results are the same for every K, bit for bit.
   */
  steps_per_run: positiveInt.default(DEFAULT_STEPS_PER_RUN),
  /** Compute precision of the training step (see {@link PRECISIONS}); evaluation stays float32. */
  precision: z.enum(PRECISIONS).default("float32"),
  /** Loss scaling of the float16 precisions: "dynamic" (torch GradScaler's defaults) or a fixed scale. */
  loss_scale: z.union([z.literal("dynamic"), positive]).default("dynamic"),
});

/** ETH linear protocol (SPEC §A "Evaluation"): wd search on a stratified split of the train features. */
export const EthLinearEvalSchema = z.strictObject({
  protocol: z.literal("eth"),
  val_fraction: z.number().gt(0).lt(1).default(0.1),
  log_min: z.number().default(-6),
  log_max: z.number().default(-1),
  n_steps: positiveInt.default(5),
  epochs: positiveInt.default(60),
  batch_size: positiveInt.default(256),
  lr: positive.default(1e-3),
});

const sdclrProbeFields = {
  lr: positive.default(30),
  momentum: z.number().min(0).lt(1).default(0.9),
  weight_decay: nonNegative.default(0),
  batch_size: positiveInt.default(128),
  gamma: positive.default(0.1),
  /** std of the N(0, std) initialisation of the linear layer. */
  init_std: positive.default(0.01),
  /**
   * Train-time augmentation of the probe: CIFAR RandomCrop(32, pad 4) + flip; `list`/`imagefolder`
   * RandomResizedCrop(image_size) + flip from the whole image (SDCLR's ImageNet probe).
   */
  augment: z.boolean().default(true),
  /**
   * Validate, and keep the model if it is the best so far, after every test_freq-th epoch (the
   * original's `--test_freq`: linear 1, few-shot 5 on CIFAR; 2 and 10 on ImageNet-100).
   */
  test_freq: positiveInt.default(1),
  /** The validation accuracy that picks the kept model (SDCLR's ImageNet probe: top5). */
  select_on: z.enum(["top1", "top5"]).default("top1"),
};

/** SDCLR linear protocol (SPEC §B "Evaluation"): SGD on the frozen encoder, step decay. */
export const SdclrLinearEvalSchema = z.strictObject({
  protocol: z.literal("sdclr"),
  ...sdclrProbeFields,
  epochs: positiveInt.default(30),
  milestones: z.array(positiveInt).default([10, 20]),
});

/** Few-shot probe on data.few_shot_split, SDCLR protocol. */
export const FewShotEvalSchema = z.strictObject({
  ...sdclrProbeFields,
  epochs: positiveInt.default(100),
  milestones: z.array(positiveInt).default([40, 60]),
});

/** Weighted kNN on L2-normalized features. */
export const KnnEvalSchema = z.strictObject({
  k: positiveInt.default(200),
  temperature: positive.default(0.1),
});

/**
 * Many/medium/few class groups from the class counts of `reference_split`:
 * `rank` takes the `sizes` most frequent, next, ... classes; `count` uses
 * > many_above / < few_below images.
 */
export const GroupsSchema = z.discriminatedUnion("by", [
  z.strictObject({
    by: z.literal("rank"),
    reference_split: splitPath,
    sizes: z.array(positiveInt).min(1),
  }),
  z.strictObject({
    by: z.literal("count"),
    reference_split: splitPath,
    many_above: z.int().min(0).default(100),
    few_below: z.int().min(0).default(20),
  }),
]);

/** When and how the encoder is judged. */
export const EvaluationSchema = z.strictObject({
  /** Evaluate after epoch e when (e + 1) % n == 0; null = no periodic evaluation. */
  testing_every_n_epochs: positiveInt.nullable().default(null),
  /**
   * Evaluate after the last epoch too: `true` whenever it was not an evaluation epoch,
   * `"if_none"` only when the run got no evaluation at all (ETH configs shortened by `--epochs`).
   */
  evaluate_at_end: z.union([z.boolean(), z.literal("if_none")]).default(true),
  /**
   * Also evaluate the encoder at its random initialization, before the first step, with the
   * same protocols: the baseline that pretraining has to beat (logged as `random_init_evaluation`).
   */
  random_init_baseline: z.boolean().default(false),
  linear: z.discriminatedUnion("protocol", [EthLinearEvalSchema, SdclrLinearEvalSchema]).nullable()
    .prefault({ protocol: "eth" }),
  few_shot: FewShotEvalSchema.nullable().default(null),
  knn: KnnEvalSchema.nullable().default(null),
  groups: GroupsSchema.nullable().default(null),
});

/**
 * ONNX Runtime settings: speed and memory, not results (a run resumes under other values).
 * onnxruntime-node 1.29.0 passes only the device id to the CUDA provider, so the CUDA keys
 * accept only ORT's defaults (anything else is refused rather than silently ignored).
 */
export const RuntimeSchema = z.strictObject({
  /** Intra-op CPU threads; 0 = the default. */
  threads: z.int().min(0).default(0),
  /** ORT's CPU memory arena (off: smaller resident size, slower). */
  memory_arena: z.boolean().default(true),
  /** CPU: Convs on ORT's blocked-channel (NCHWc) kernels (off: MLAS's im2col Conv, slower). */
  blocked_convs: z.boolean().default(true),
  /** CUDA device id. */
  device_id: z.int().min(0).default(0),
  cudnn_conv_algo_search: z.enum(["EXHAUSTIVE", "HEURISTIC", "DEFAULT"]).default(
    CUDA_OPTION_DEFAULTS.cudnnConvAlgoSearch,
  ),
  use_tf32: z.boolean().default(CUDA_OPTION_DEFAULTS.useTf32),
  prefer_nhwc: z.boolean().default(CUDA_OPTION_DEFAULTS.preferNhwc),
  arena_extend_strategy: z.enum(["kNextPowerOfTwo", "kSameAsRequested"]).default(
    CUDA_OPTION_DEFAULTS.arenaExtendStrategy,
  ),
});

/** Where results go: `<log_dir>/<experiment>.json`, `<checkpoint_dir>/<experiment>/`. */
export const OutputSchema = z.strictObject({
  log_dir: z.string().min(1).default("experiment_logs"),
  checkpoint_dir: z.string().min(1).default("checkpoints"),
});

/** The sections as parsed, before presets that depend on other sections are resolved. */
export const ConfigSectionsSchema = z.strictObject({
  /** Run name; also the log file name. */
  experiment: z.string().regex(/^[A-Za-z0-9._-]+$/, {
    message: "expected a name of letters, digits, '.', '_' or '-'",
  }),
  seed: z.int().min(0).default(0),
  device: z.enum(DEVICES).default("auto"),
  data: DataSchema,
  model: ModelSchema.prefault({}),
  head: HeadSchema.prefault({ type: "simclr" }),
  method: MethodSchema.prefault({ name: "simclr" }),
  loss: LossSchema.prefault({ type: "ntxent", temperature: 0.2 }),
  optimizer: OptimizerSchema.prefault({ type: "sgd", lr: 0.5, momentum: 0.9, weight_decay: 1e-4 }),
  lr_schedule: LrScheduleSchema.prefault({ type: "warmup_cosine" }),
  train: TrainSchema,
  augmentation: AugmentationInputSchema.prefault({}),
  evaluation: EvaluationSchema.prefault({}),
  runtime: RuntimeSchema.prefault({}),
  output: OutputSchema.prefault({}),
});
/** The sections as parsed (data.image_size and augmentation not yet resolved). */
export type ConfigSections = z.output<typeof ConfigSectionsSchema>;
/** A config document as written (our format, before defaults). */
export type ExperimentConfigInput = z.input<typeof ConfigSectionsSchema>;

/** Data section with the image size (and, for image files, the whole-image bound) resolved. */
export type DataConfig = Omit<ConfigSections["data"], "image_size"> & { image_size: number };

/** Longer side of the whole images kept for random crops of `list`/`imagefolder` data (default). */
export const DEFAULT_FULL_IMAGE_MAX_SIDE = 320;
/** Encoder section. */
export type ModelConfig = ConfigSections["model"];
/** Projection head section. */
export type HeadConfig = ConfigSections["head"];
/** Method section. */
export type MethodConfig = ConfigSections["method"];
/** Loss section. */
export type LossConfig = ConfigSections["loss"];
/** Weighted loss variant. */
export type WeightedNtXentConfig = Extract<LossConfig, { type: "weighted_ntxent" }>;
/** μ schedule. */
export type MeanSchedule = WeightedNtXentConfig["mean"];
/** Optimizer section. */
export type OptimizerConfig = ConfigSections["optimizer"];
/** LR schedule section. */
export type LrScheduleConfig = ConfigSections["lr_schedule"];
/** Training loop section. */
export type TrainConfig = ConfigSections["train"];
/** Evaluation section. */
export type EvaluationConfig = ConfigSections["evaluation"];
/** Output section. */
export type OutputConfig = ConfigSections["output"];
/** Runtime section. */
export type RuntimeSection = ConfigSections["runtime"];
export type { AugmentationConfig };

/** A parsed, fully resolved experiment config. */
export type ExperimentConfig = Omit<ConfigSections, "data" | "augmentation"> & {
  data: DataConfig;
  augmentation: AugmentationConfig;
};

function increasing(values: readonly number[]): boolean {
  return values.every((v, i) => i === 0 || v > values[i - 1]);
}

/** The split keys of the data section. */
export const SPLIT_KEYS = [
  "pretrain_split",
  "train_split",
  "val_split",
  "few_shot_split",
  "test_split",
] as const;
/** One split key. */
export type SplitKey = (typeof SPLIT_KEYS)[number];

/** Who reads a split, said when a config names one that nothing reads. */
const SPLIT_READ_BY: Record<SplitKey, string> = {
  pretrain_split: "pretraining reads it",
  train_split: "only evaluation.linear and evaluation.knn read it, and both are null",
  val_split:
    "only the SDCLR probes (evaluation.linear with protocol sdclr, evaluation.few_shot) select on it; " +
    "the ETH protocol splits val_fraction off its training set",
  few_shot_split: "only evaluation.few_shot reads it, and it is null",
  test_split: "only evaluations read it, and none is configured",
};

/** The parts of a config that read each split (empty: nothing does). */
export function splitReaders(
  evaluation: Pick<ConfigSections["evaluation"], "linear" | "few_shot" | "knn">,
): Record<SplitKey, string[]> {
  const { linear, few_shot: fewShot, knn } = evaluation;
  const named = (entries: [string, unknown][]) =>
    entries.filter(([, section]) => section !== null).map(([name]) => name);
  return {
    pretrain_split: ["pretraining"],
    train_split: named([["evaluation.linear", linear], ["evaluation.knn", knn]]),
    val_split: named([
      ["evaluation.linear", linear?.protocol === "sdclr" ? linear : null],
      ["evaluation.few_shot", fewShot],
    ]),
    few_shot_split: named([["evaluation.few_shot", fewShot]]),
    test_split: named([
      ["evaluation.linear", linear],
      ["evaluation.few_shot", fewShot],
      ["evaluation.knn", knn],
    ]),
  };
}

function checkConsistency(config: ConfigSections, ctx: z.RefinementCtx): void {
  const issue = (path: PropertyKey[], message: string, input: unknown) =>
    ctx.addIssue({
      code: "custom",
      path,
      message: `${message}, got ${JSON.stringify(input)}`,
      input,
    });

  const { data, model, method, loss, lr_schedule: lrSchedule, evaluation, train } = config;
  if (train.precision === "bfloat16") {
    issue(["train", "precision"], BFLOAT16_UNSUPPORTED, train.precision);
  }
  const firstStage = 64 * model.width_multiplier;
  if (!Number.isInteger(firstStage) || firstStage < 1) {
    issue(
      ["model", "width_multiplier"],
      "64 × width_multiplier must be a whole number of channels",
      model.width_multiplier,
    );
  }
  if (method.name === "sdclr" && method.random_prune_percent > method.prune_percent) {
    issue(
      ["method", "random_prune_percent"],
      `must not exceed prune_percent (${method.prune_percent})`,
      method.random_prune_percent,
    );
  }
  if (loss.type === "weighted_ntxent" && !(loss.lower_bound < loss.upper_bound)) {
    issue(
      ["loss", "lower_bound"],
      `must be below upper_bound (${loss.upper_bound})`,
      loss.lower_bound,
    );
  }
  if (lrSchedule.type === "step" && !increasing(lrSchedule.milestones)) {
    issue(["lr_schedule", "milestones"], "expected increasing epochs", lrSchedule.milestones);
  }

  const fixedClasses = DATASET_CLASSES[data.dataset];
  if (fixedClasses !== undefined) {
    if (data.image_size !== null && data.image_size !== 32) {
      issue(["data", "image_size"], `${data.dataset} images are 32x32`, data.image_size);
    }
    if (data.num_classes !== null && data.num_classes !== fixedClasses) {
      issue(
        ["data", "num_classes"],
        `${data.dataset} has ${fixedClasses} classes`,
        data.num_classes,
      );
    }
    for (const key of ["eval_resize", "full_image_max_side"] as const) {
      if (data[key] !== null) {
        issue(["data", key], `not used for ${data.dataset} (32x32 images); remove it`, data[key]);
      }
    }
  } else {
    if (data.image_size === null) {
      issue(["data", "image_size"], `required for dataset ${data.dataset}`, null);
    }
    // Pretraining crops from whole images of different sizes: a crop must fix the output size.
    const crop = resolveAugmentation(config.augmentation, data.image_size ?? 32).crop;
    if (crop === null || crop.p !== 1) {
      issue(
        ["augmentation", "crop"],
        `${data.dataset} images differ in size and pretraining crops from the whole image; ` +
          "expected a crop with p 1",
        crop,
      );
    }
  }
  const extension = data.dataset === "list" ? ".txt" : ".npy";
  for (const key of SPLIT_KEYS) {
    const path = data[key];
    if (path !== null && !path.endsWith(extension)) {
      issue(["data", key], `expected a ${extension} file for dataset ${data.dataset}`, path);
    }
  }
  // Every split is read by someone, or refused: a split the run ignores would mislead.
  const readers = splitReaders(evaluation);
  for (const key of SPLIT_KEYS) {
    if (data[key] !== null && readers[key].length === 0) {
      issue(["data", key], `${SPLIT_READ_BY[key]}; remove it`, data[key]);
    }
  }
  if (data.dataset === "list") {
    if (data.pretrain_split === null) {
      issue(
        ["data", "pretrain_split"],
        "required for dataset list (a text list of `path label` lines)",
        null,
      );
    }
    for (const key of ["train_split", "test_split"] as const) {
      if (data[key] === null && readers[key].length > 0) {
        issue(
          ["data", key],
          `required for dataset list by ${
            readers[key].join(" and ")
          } (a text list of \`path label\` lines)`,
          null,
        );
      }
    }
  }

  const evaluates = evaluation.linear !== null || evaluation.few_shot !== null ||
    evaluation.knn !== null;
  if (!evaluates) {
    if (evaluation.random_init_baseline) {
      issue(
        ["evaluation", "random_init_baseline"],
        "needs something to evaluate (evaluation.linear, few_shot or knn)",
        true,
      );
    }
    if (evaluation.testing_every_n_epochs !== null) {
      issue(
        ["evaluation", "testing_every_n_epochs"],
        "needs something to evaluate (evaluation.linear, few_shot or knn)",
        evaluation.testing_every_n_epochs,
      );
    }
  }
  if (
    evaluation.groups !== null && evaluation.linear === null && evaluation.few_shot === null
  ) {
    issue(
      ["evaluation", "groups"],
      "groups split the per-class accuracies of evaluation.linear or few_shot, both null",
      evaluation.groups,
    );
  }
  const probes = [
    ["linear", evaluation.linear?.protocol === "sdclr" ? evaluation.linear : null],
    ["few_shot", evaluation.few_shot],
  ] as const;
  for (const [name, probe] of probes) {
    if (probe === null) continue;
    if (data.val_split === null) {
      if (probe.test_freq !== 1) {
        issue(
          ["evaluation", name, "test_freq"],
          "validation needs data.val_split (without it the last epoch is kept)",
          probe.test_freq,
        );
      }
      if (probe.select_on !== "top1") {
        issue(
          ["evaluation", name, "select_on"],
          "selection needs data.val_split (without it the last epoch is kept)",
          probe.select_on,
        );
      }
    } else if (probe.test_freq > probe.epochs) {
      issue(
        ["evaluation", name, "test_freq"],
        `no epoch of the ${probe.epochs} would be validated; expected at most epochs`,
        probe.test_freq,
      );
    }
  }
  const runtime = config.runtime;
  const cudaKeys = {
    cudnn_conv_algo_search: "cudnnConvAlgoSearch",
    use_tf32: "useTf32",
    prefer_nhwc: "preferNhwc",
    arena_extend_strategy: "arenaExtendStrategy",
  } as const;
  for (
    const [key, option] of Object.entries(cudaKeys) as [
      keyof typeof cudaKeys,
      typeof cudaKeys[keyof typeof cudaKeys],
    ][]
  ) {
    const problem = unappliedCudaOption(option, runtime[key]);
    if (problem !== null) {
      ctx.addIssue({
        code: "custom",
        path: ["runtime", key],
        message: problem,
        input: runtime[key],
      });
    }
  }

  const linear = evaluation.linear;
  if (linear?.protocol === "eth" && linear.log_min > linear.log_max) {
    issue(
      ["evaluation", "linear", "log_min"],
      `must not exceed log_max (${linear.log_max})`,
      linear.log_min,
    );
  }
  if (linear?.protocol === "sdclr" && !increasing(linear.milestones)) {
    issue(["evaluation", "linear", "milestones"], "expected increasing epochs", linear.milestones);
  }
  if (evaluation.few_shot !== null) {
    if (!increasing(evaluation.few_shot.milestones)) {
      issue(
        ["evaluation", "few_shot", "milestones"],
        "expected increasing epochs",
        evaluation.few_shot.milestones,
      );
    }
    if (data.few_shot_split === null) {
      issue(["data", "few_shot_split"], "required by evaluation.few_shot", null);
    }
  }
  if (evaluation.groups !== null && !evaluation.groups.reference_split.endsWith(extension)) {
    issue(
      ["evaluation", "groups", "reference_split"],
      `expected a ${extension} file`,
      evaluation.groups.reference_split,
    );
  }
  if (evaluation.groups?.by === "rank" && fixedClasses !== undefined) {
    const total = evaluation.groups.sizes.reduce((a, b) => a + b, 0);
    if (total !== fixedClasses) {
      issue(
        ["evaluation", "groups", "sizes"],
        `expected group sizes summing to ${fixedClasses} classes`,
        evaluation.groups.sizes,
      );
    }
  }
}

function resolveConfig(config: ConfigSections): ExperimentConfig {
  const imageSize = config.data.image_size ?? 32;
  const fixedSize = DATASET_CLASSES[config.data.dataset] !== undefined;
  const maxSide = config.data.full_image_max_side ??
    (fixedSize ? null : DEFAULT_FULL_IMAGE_MAX_SIDE);
  return {
    ...config,
    data: { ...config.data, image_size: imageSize, full_image_max_side: maxSide },
    augmentation: resolveAugmentation(config.augmentation, imageSize),
  };
}

/** Our config format: validates, checks cross-section consistency, resolves presets. */
export const ExperimentConfigSchema: z.ZodType<ExperimentConfig, unknown> = ConfigSectionsSchema
  .superRefine(checkConsistency).transform(
    resolveConfig,
  );

/** Width of the encoder feature (input of the head and of the linear probe). */
export function encoderFeatureDim(
  model: Pick<ModelConfig, "architecture" | "width_multiplier">,
): number {
  const lastStage = 512 * model.width_multiplier;
  return model.architecture === "resnet50" ? 4 * lastStage : lastStage;
}

/** Layer widths of the projection head: input, hidden layers, output (none: no layers, output = input). */
export function headDims(config: Pick<ExperimentConfig, "model" | "head">): {
  input: number;
  hidden: number[];
  output: number;
} {
  const input = encoderFeatureDim(config.model);
  const head = config.head;
  switch (head.type) {
    case "none":
      return { input, hidden: [], output: input };
    case "linear":
      return { input, hidden: [], output: head.output_dim };
    case "mlp":
      return { input, hidden: head.hidden_dims ?? [input], output: head.output_dim };
    case "simclr":
      return { input, hidden: [head.hidden_dim ?? input], output: head.output_dim };
    case "sdclr": {
      const hidden = head.hidden_dim ?? input;
      return { input, hidden: [hidden, hidden], output: head.output_dim };
    }
  }
}

/** Class count fixed by the config (dataset or data.num_classes), or null when read from the labels. */
export function configuredClassCount(
  data: Pick<DataConfig, "dataset" | "num_classes">,
): number | null {
  return data.num_classes ?? DATASET_CLASSES[data.dataset] ?? null;
}

/** Keys of each variant of the discriminated sections, by discriminator path (used by overrides). */
export const VARIANT_KEYS: Record<string, Record<string, readonly string[]>> = {
  "head.type": variantKeys(HeadSchema, "type"),
  "method.name": variantKeys(MethodSchema, "name"),
  "loss.type": variantKeys(LossSchema, "type"),
  "optimizer.type": variantKeys(OptimizerSchema, "type"),
  "lr_schedule.type": variantKeys(LrScheduleSchema, "type"),
  "evaluation.linear.protocol": {
    eth: Object.keys(EthLinearEvalSchema.shape),
    sdclr: Object.keys(SdclrLinearEvalSchema.shape),
  },
  "evaluation.groups.by": variantKeys(GroupsSchema, "by"),
  // A new recipe replaces every transform, so nothing but the recipe survives.
  "augmentation.recipe": { eth: ["recipe"], sdclr: ["recipe"], none: ["recipe"] },
  "loss.mean.type": {
    const: ["type", "value"],
    linear: ["type", "begin", "end", "steps"],
    exponential: ["type", "begin", "end", "factor"],
    random: ["type", "begin", "end"],
    random_every_iter: ["type", "begin", "end"],
    random_then_const: ["type", "begin", "end", "steps", "const_value"],
  },
};

function variantKeys(
  union: { options: readonly { shape: Record<string, unknown> }[] },
  discriminator: string,
): Record<string, readonly string[]> {
  const byValue: Record<string, readonly string[]> = {};
  for (const option of union.options) {
    const literal = option.shape[discriminator] as { value: string };
    byValue[literal.value] = Object.keys(option.shape);
  }
  return byValue;
}
