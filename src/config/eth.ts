/**
 * The original ETH config format (seeds/eth/config/*.yaml): a strict zod
 * schema of every key the original code reads, and the mapping to our format
 * (SPEC §A). The original dict itself is kept verbatim by the loader for the
 * log's `config` field.
 */
import { z } from "zod";
import { describeValue } from "./errors.ts";
import type { ExperimentConfig, ExperimentConfigInput } from "./schema.ts";

const positive = z.number().positive();
const nonNegative = z.number().min(0);
const positiveInt = z.int().positive();
const probability = z.number().min(0).max(1);

/** Top-level keys that only the ETH format has (format detection). */
export const ETH_ONLY_KEYS = ["encoder_architecture", "pretraining", "testing"] as const;

/** True when a parsed YAML document is in the ETH format (judged by its top-level keys). */
export function isEthDocument(document: unknown): boolean {
  if (document === null || typeof document !== "object" || Array.isArray(document)) return false;
  return ETH_ONLY_KEYS.some((key) => key in document);
}

/** Numbers as the ETH code's parse_config_dict reads them: a number, a YAML list, or "a,b". */
function toNumberList(value: unknown): number[] | null {
  if (typeof value === "number") return [value];
  if (Array.isArray(value)) return value.every((v) => typeof v === "number") ? value : null;
  if (typeof value !== "string") return null;
  const parts = value.split(",").map((part) => part.trim());
  if (parts.some((part) => part === "")) return null;
  const numbers = parts.map(Number);
  return numbers.every(Number.isFinite) ? numbers : null;
}

function numberList(what: string, lengths: readonly number[]) {
  return z.unknown().transform((value, ctx) => {
    const list = toNumberList(value);
    if (list === null || !lengths.includes(list.length)) {
      ctx.addIssue({
        code: "custom",
        message: value === undefined
          ? `missing (expected ${what})`
          : `expected ${what}, got ${describeValue(value)}`,
        input: value,
      });
      return z.NEVER;
    }
    return list;
  });
}

const sizeList = numberList('a size such as 32 or "32,32"', [1, 2]);
const pairList = numberList('a pair such as "0.08,1.0"', [2]);

/** Transforms the original supports, in the only order ours applies them. */
export const ETH_TRANSFORM_ORDER = [
  "RandomResizedCrop",
  "RandomHorizontalFlip",
  "ColorJitter",
  "RandomGrayscale",
  "GaussianBlur",
] as const;

const EthTransformsObject = z.strictObject({
  RandomResizedCrop: z.strictObject({
    size: sizeList,
    scale: pairList.optional(),
    ratio: pairList.optional(),
    prob: probability.optional(),
  }).optional(),
  RandomHorizontalFlip: z.strictObject({ p: probability.optional(), prob: probability.optional() })
    .optional(),
  ColorJitter: z.strictObject({
    brightness: nonNegative.optional(),
    contrast: nonNegative.optional(),
    saturation: nonNegative.optional(),
    hue: z.number().min(0).max(0.5).optional(),
    prob: probability.optional(),
  }).optional(),
  RandomGrayscale: z.strictObject({ p: probability.optional(), prob: probability.optional() })
    .optional(),
  GaussianBlur: z.strictObject({
    kernel_size: sizeList,
    sigma: numberList('a number or a pair such as "0.1,2.0"', [1, 2]).optional(),
    prob: probability.optional(),
  }).optional(),
});

/** `pretraining.dataset.transforms`: checks the (meaningful) key order before the keys. */
const EthTransformsSchema = z.preprocess((value, ctx) => {
  if (value !== null && typeof value === "object" && !Array.isArray(value)) {
    const known = Object.keys(value).filter((key) =>
      (ETH_TRANSFORM_ORDER as readonly string[]).includes(key)
    );
    const expected = ETH_TRANSFORM_ORDER.filter((key) => known.includes(key));
    if (known.join() !== expected.join()) {
      ctx.addIssue({
        code: "custom",
        message: `transforms must come in the order ${
          ETH_TRANSFORM_ORDER.join(", ")
        } (ours applies them in that order), got ${known.join(", ")}`,
        input: value,
      });
    }
  }
  return value;
}, EthTransformsObject);

/** μ schedule classes of the original (ConstParam and plain numbers per SPEC §A). */
export const ETH_MEAN_NAMES = [
  "ConstParam",
  "LinearParam",
  "ExponentialParam",
  "RandomParam",
  "RandomParamEveryIter",
  "RandomThenConst",
] as const;

/** mean_config keys each schedule reads. */
const MEAN_CONFIG_KEYS: Record<(typeof ETH_MEAN_NAMES)[number], readonly string[]> = {
  ConstParam: ["const_value"],
  LinearParam: ["begin", "end", "steps"],
  ExponentialParam: ["begin", "end", "factor"],
  RandomParam: ["begin", "end"],
  RandomParamEveryIter: ["begin", "end"],
  RandomThenConst: ["begin", "end", "steps", "const_value"],
};

const EthLossConfigSchema = z.strictObject({
  temperature: positive,
  weight: z.literal("GaussianWeight").optional(),
  /** The string "None" (YAML `None` is not null) or negatives_constant_total_weight. */
  weight_normalization: z.enum(["negatives_constant_total_weight", "None"]).optional(),
  weight_config: z.strictObject({
    sigma: positive.optional(),
    mean: z.union([z.enum(ETH_MEAN_NAMES), z.number()], {
      error: `expected ${ETH_MEAN_NAMES.map((n) => JSON.stringify(n)).join(" | ")} or a number`,
    }).optional(),
    mean_config: z.strictObject({
      begin: z.number().optional(),
      end: z.number().optional(),
      factor: positive.optional(),
      steps: z.int().min(0).optional(),
      const_value: z.number().optional(),
    }).optional(),
    b_l: z.number().optional(),
    b_u: z.number().optional(),
  }).optional(),
});

const cifarName = z.enum(["Cifar10", "Cifar100"]);

/** The ETH config format, strict. */
export const EthConfigSchema = z.strictObject({
  experiment: z.string().regex(/^[A-Za-z0-9._-]+$/, {
    message: "expected a name of letters, digits, '.', '_' or '-'",
  }),
  seed: z.int().min(0),
  encoder_architecture: z.strictObject({ name: z.enum(["ResNet18", "ResNet34", "ResNet50"]) }),
  pretraining: z.strictObject({
    training: z.literal(true, {
      error: "expected True (the original writes no log without training)",
    }),
    batch_size: z.int().min(2),
    num_workers_loader: z.int().min(0).optional(),
    max_epochs: positiveInt,
    projection: z.strictObject({
      use_projection: z.boolean(),
      /** Ignored by the original; only the "None" string (or null) is accepted. */
      hidden_layer_sizes: z.union([z.literal("None"), z.null()], {
        error: 'expected "None" (the original ignores hidden_layer_sizes)',
      }).optional(),
      projection_dimension: positiveInt.optional(),
    }),
    loss: z.strictObject({
      name: z.enum(["NTXent", "WeightedNTXent"]),
      loss_config: EthLossConfigSchema,
    }),
    optimizer: z.strictObject({
      name: z.literal("Adam"),
      config: z.strictObject({
        lr: positive.optional(),
        weight_decay: nonNegative.optional(),
        betas: pairList.optional(),
        eps: positive.optional(),
      }),
    }),
    dataset: z.strictObject({ name: cifarName, transforms: EthTransformsSchema }),
    model_dimension: z.strictObject({ embedding_dimension: positiveInt }),
  }),
  testing: z.strictObject({
    testing: z.boolean(),
    /** An epoch period, or "None"/null for no testing (the original tests only on int). */
    testing_every_n_epochs: z.union([positiveInt, z.literal("None"), z.null()], {
      error: 'expected a positive integer or "None"',
    }),
    batch_size: positiveInt,
    num_workers_loader: z.int().min(0).optional(),
    max_epochs: positiveInt,
    dataset: z.strictObject({ val_percentage: z.number().gt(0).lt(1), name: cifarName }),
    optimizer: z.strictObject({ lr: positive }),
    param_tuning: z.strictObject({
      log_min: z.number(),
      log_max: z.number(),
      n_steps: positiveInt,
    }),
  }),
}).superRefine(checkEthConsistency);

/** A validated ETH config with numeric strings parsed (the raw dict is kept apart). */
export type EthConfig = z.output<typeof EthConfigSchema>;

function checkEthConsistency(config: z.output<typeof EthConfigSchema>, ctx: z.RefinementCtx): void {
  const issue = (path: PropertyKey[], message: string, input?: unknown) =>
    ctx.addIssue({ code: "custom", path, message, input });
  const pre = config.pretraining;
  const lossPath = ["pretraining", "loss", "loss_config"];
  const lossConfig = pre.loss.loss_config;

  if (pre.loss.name === "WeightedNTXent") {
    for (const key of ["weight", "weight_normalization", "weight_config"] as const) {
      if (lossConfig[key] === undefined) {
        issue([...lossPath, key], "missing (required by WeightedNTXent)");
      }
    }
    const weight = lossConfig.weight_config;
    if (weight !== undefined) {
      const weightPath = [...lossPath, "weight_config"];
      for (const key of ["sigma", "mean", "b_l", "b_u"] as const) {
        if (weight[key] === undefined) {
          issue([...weightPath, key], "missing (required by GaussianWeight)");
        }
      }
      if (weight.b_l !== undefined && weight.b_u !== undefined && !(weight.b_l < weight.b_u)) {
        issue(
          [...weightPath, "b_l"],
          `must be below b_u (${weight.b_u}), got ${weight.b_l}`,
          weight.b_l,
        );
      }
      if (typeof weight.mean === "string") {
        for (const key of MEAN_CONFIG_KEYS[weight.mean]) {
          if (weight.mean_config?.[key as keyof typeof weight.mean_config] === undefined) {
            issue([...weightPath, "mean_config", key], `missing (required by ${weight.mean})`);
          }
        }
        if (weight.mean === "LinearParam" && weight.mean_config?.steps === 0) {
          issue([...weightPath, "mean_config", "steps"], "LinearParam needs steps >= 1, got 0", 0);
        }
      }
    }
  }

  const projection = pre.projection;
  if (projection.use_projection && projection.projection_dimension === undefined) {
    issue(
      ["pretraining", "projection", "projection_dimension"],
      "missing (required when use_projection is True)",
    );
  }
  const featureDim = config.encoder_architecture.name === "ResNet50" ? 2048 : 512;
  if (pre.model_dimension.embedding_dimension !== featureDim) {
    issue(
      ["pretraining", "model_dimension", "embedding_dimension"],
      `${config.encoder_architecture.name} gives ${featureDim}-d features, got ${pre.model_dimension.embedding_dimension}`,
      pre.model_dimension.embedding_dimension,
    );
  }
  if (config.testing.dataset.name !== pre.dataset.name) {
    issue(
      ["testing", "dataset", "name"],
      `must equal pretraining.dataset.name (${pre.dataset.name}), got ${config.testing.dataset.name}`,
      config.testing.dataset.name,
    );
  }
  if (config.testing.param_tuning.log_min > config.testing.param_tuning.log_max) {
    issue(
      ["testing", "param_tuning", "log_min"],
      "must not exceed log_max",
      config.testing.param_tuning.log_min,
    );
  }

  const transforms = pre.dataset.transforms;
  const transformPath = ["pretraining", "dataset", "transforms"];
  const ordered = (pair: number[] | undefined) =>
    pair === undefined || pair.length < 2 || pair[0] <= pair[1];
  const crop = transforms.RandomResizedCrop;
  if (crop !== undefined) {
    if (!crop.size.every((s) => Number.isInteger(s) && s > 0)) {
      issue(
        [...transformPath, "RandomResizedCrop", "size"],
        `expected positive integers, got ${crop.size}`,
        crop.size,
      );
    }
    if (!ordered(crop.scale) || crop.scale?.some((s) => s <= 0 || s > 1)) {
      issue(
        [...transformPath, "RandomResizedCrop", "scale"],
        `expected min,max in (0, 1], got ${crop.scale}`,
        crop.scale,
      );
    }
    if (!ordered(crop.ratio) || crop.ratio?.some((r) => r <= 0)) {
      issue(
        [...transformPath, "RandomResizedCrop", "ratio"],
        `expected positive min,max, got ${crop.ratio}`,
        crop.ratio,
      );
    }
  }
  const blur = transforms.GaussianBlur;
  if (blur !== undefined) {
    const [kx, ky = kx] = blur.kernel_size;
    if (kx !== ky || !Number.isInteger(kx) || kx <= 0 || kx % 2 !== 1) {
      issue(
        [...transformPath, "GaussianBlur", "kernel_size"],
        `expected one odd positive size (square kernels only), got ${blur.kernel_size}`,
        blur.kernel_size,
      );
    }
    if (blur.sigma !== undefined && (!ordered(blur.sigma) || blur.sigma.some((s) => s <= 0))) {
      issue(
        [...transformPath, "GaussianBlur", "sigma"],
        `expected positive min,max, got ${blur.sigma}`,
        blur.sigma,
      );
    }
  }
}

/** ETH dataset statistics, applied after ToTensor in the original; ours as the model's input normalization. */
const ETH_NORMALIZATION = {
  Cifar10: "cifar10",
  Cifar100: "cifar100",
} as const;

function mapMean(
  weight: NonNullable<EthConfig["pretraining"]["loss"]["loss_config"]["weight_config"]>,
) {
  const mean = weight.mean!;
  const c = weight.mean_config ?? {};
  if (typeof mean === "number") return { type: "const", value: mean };
  switch (mean) {
    case "ConstParam":
      return { type: "const", value: c.const_value! };
    case "LinearParam":
      return { type: "linear", begin: c.begin!, end: c.end!, steps: c.steps! };
    case "ExponentialParam":
      return { type: "exponential", begin: c.begin!, end: c.end!, factor: c.factor! };
    case "RandomParam":
      return { type: "random", begin: c.begin!, end: c.end! };
    case "RandomParamEveryIter":
      return { type: "random_every_iter", begin: c.begin!, end: c.end! };
    case "RandomThenConst":
      return {
        type: "random_then_const",
        begin: c.begin!,
        end: c.end!,
        steps: c.steps!,
        const_value: c.const_value!,
      };
  }
}

function mapLoss(loss: EthConfig["pretraining"]["loss"]): ExperimentConfigInput["loss"] {
  const config = loss.loss_config;
  if (loss.name === "NTXent") return { type: "ntxent", temperature: config.temperature };
  const weight = config.weight_config!;
  return {
    type: "weighted_ntxent",
    temperature: config.temperature,
    sigma: weight.sigma!,
    mean: mapMean(weight),
    lower_bound: weight.b_l!,
    upper_bound: weight.b_u!,
    out_of_bounds_factor: 1e-3,
    normalization: config.weight_normalization === "None"
      ? "none"
      : "negatives_constant_total_weight",
  };
}

/**
 * The ETH transform dict as our augmentation: torchvision's defaults for
 * absent parameters; `prob` (RandomApply) multiplies into p for flip and
 * grayscale, and is the probability of the others.
 */
export function mapEthTransforms(
  transforms: EthConfig["pretraining"]["dataset"]["transforms"],
): ExperimentConfigInput["augmentation"] {
  const crop = transforms.RandomResizedCrop;
  const flip = transforms.RandomHorizontalFlip;
  const jitter = transforms.ColorJitter;
  const gray = transforms.RandomGrayscale;
  const blur = transforms.GaussianBlur;
  const pair = (list: number[]): [number, number] => [list[0], list[list.length - 1]];
  return {
    recipe: "eth",
    crop: crop === undefined ? null : {
      size: pair(crop.size),
      scale: crop.scale === undefined ? [0.08, 1] : pair(crop.scale),
      ratio: crop.ratio === undefined ? [3 / 4, 4 / 3] : pair(crop.ratio),
      interpolation: "bilinear",
      p: crop.prob ?? 1,
    },
    flip: flip === undefined ? null : { p: (flip.p ?? 0.5) * (flip.prob ?? 1) },
    color_jitter: jitter === undefined ? null : {
      brightness: jitter.brightness ?? 0,
      contrast: jitter.contrast ?? 0,
      saturation: jitter.saturation ?? 0,
      hue: jitter.hue ?? 0,
      p: jitter.prob ?? 1,
    },
    grayscale: gray === undefined ? null : { p: (gray.p ?? 0.1) * (gray.prob ?? 1) },
    blur: blur === undefined ? null : {
      kernel_size: blur.kernel_size[0],
      sigma: blur.sigma === undefined ? [0.1, 2] : pair(blur.sigma),
      p: blur.prob ?? 1,
    },
  };
}

/** Our config document for a validated ETH config (SPEC §A). */
export function mapEthConfig(eth: EthConfig): ExperimentConfigInput {
  const pre = eth.pretraining;
  const testing = eth.testing;
  const dataset = pre.dataset.name === "Cifar10" ? "cifar10" : "cifar100";
  const optimizer = pre.optimizer.config;
  const period = testing.testing && typeof testing.testing_every_n_epochs === "number"
    ? testing.testing_every_n_epochs
    : null;
  return {
    experiment: eth.experiment,
    seed: eth.seed,
    device: "auto",
    data: { dataset, dir: "data", image_size: 32 },
    model: {
      architecture: eth.encoder_architecture.name === "ResNet50"
        ? "resnet50"
        : eth.encoder_architecture.name === "ResNet34"
        ? "resnet34"
        : "resnet18",
      stem: "imagenet",
      width_multiplier: 1,
      input_norm: ETH_NORMALIZATION[pre.dataset.name],
    },
    head: pre.projection.use_projection
      ? { type: "linear", output_dim: pre.projection.projection_dimension! }
      : { type: "none" },
    method: { name: "simclr" },
    loss: mapLoss(pre.loss),
    optimizer: {
      type: "adam",
      lr: optimizer.lr ?? 1e-3,
      betas: optimizer.betas === undefined
        ? [0.9, 0.999]
        : [optimizer.betas[0], optimizer.betas[1]],
      eps: optimizer.eps ?? 1e-8,
      weight_decay: optimizer.weight_decay ?? 0,
    },
    lr_schedule: { type: "constant" },
    train: { epochs: pre.max_epochs, batch_size: pre.batch_size, drop_last: false },
    augmentation: mapEthTransforms(pre.dataset.transforms),
    evaluation: {
      testing_every_n_epochs: period,
      // SPEC: a run shortened below the first testing epoch is scored once, at its end.
      evaluate_at_end: testing.testing && period !== null ? "if_none" : false,
      linear: {
        protocol: "eth",
        val_fraction: testing.dataset.val_percentage,
        log_min: testing.param_tuning.log_min,
        log_max: testing.param_tuning.log_max,
        n_steps: testing.param_tuning.n_steps,
        epochs: testing.max_epochs,
        batch_size: testing.batch_size,
        lr: testing.optimizer.lr,
      },
      few_shot: null,
      knn: null,
      groups: null,
    },
    output: { log_dir: "experiment_logs", checkpoint_dir: "checkpoints" },
  };
}

/**
 * The ETH dict of a run with the values it ran with: keys of the ETH format that a resolved config
 * sets differently (overrides such as `--epochs`) take the resolved value; the rest stays as the
 * file has it. Overrides without an ETH key are in the log's `overrides` and `resolved_config`.
 */
export function ethEffectiveConfig(
  eth: Record<string, unknown>,
  config: ExperimentConfig,
): Record<string, unknown> {
  const effective = structuredClone(eth);
  const section = (parent: Record<string, unknown>, key: string) => {
    const child = parent[key];
    if (child === null || typeof child !== "object" || Array.isArray(child)) {
      parent[key] = {};
    }
    return parent[key] as Record<string, unknown>;
  };
  const set = (parent: Record<string, unknown>, key: string, value: unknown) => {
    const current = toNumberList(parent[key]);
    const same = typeof value === "number" && current?.length === 1 && current[0] === value;
    if (!same && parent[key] !== value) parent[key] = value;
  };
  set(effective, "experiment", config.experiment);
  set(effective, "seed", config.seed);
  const pretraining = section(effective, "pretraining");
  set(pretraining, "max_epochs", config.train.epochs);
  set(pretraining, "batch_size", config.train.batch_size);
  const linear = config.evaluation.linear;
  if (linear?.protocol === "eth") {
    const testing = section(effective, "testing");
    set(testing, "max_epochs", linear.epochs);
    set(testing, "batch_size", linear.batch_size);
    set(section(testing, "optimizer"), "lr", linear.lr);
    set(section(testing, "dataset"), "val_percentage", linear.val_fraction);
    const tuning = section(testing, "param_tuning");
    set(tuning, "log_min", linear.log_min);
    set(tuning, "log_max", linear.log_max);
    set(tuning, "n_steps", linear.n_steps);
    const every = config.evaluation.testing_every_n_epochs;
    const written = testing.testing_every_n_epochs;
    const writtenPeriod = typeof written === "number" ? written : null;
    if (every !== writtenPeriod) testing.testing_every_n_epochs = every ?? "None";
  }
  return effective;
}
