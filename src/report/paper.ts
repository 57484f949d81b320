/**
 * The results the two papers report (SPEC §A "Output", §B "Evaluation") and
 * the rules that decide which of our runs they compare to.
 *
 * Setting: a config's {@link ConfigSignature} is read from its resolved config
 * (ETH logs: the config mapped to ours). A paper entry lists the signature
 * fields that define its setting; a config matches the entry when every one of
 * those fields is equal (numbers within 1e-9 relative). Fields an entry does
 * not list are not compared. Every entry lists at least: dataset,
 * architecture, method, loss type, temperature, pretraining split kind and
 * linear protocol; weighted-loss entries add σ, the μ schedule, the weight
 * normalization and the bounds; the SDCLR entry adds the prune percentage.
 *
 * Protocol: a run of the paper's setting is compared with the paper's value
 * only when it was also measured the same way ({@link ProtocolSignature}:
 * pretraining epochs and batch, the linear probe's epochs, batch, learning
 * rate and weight decay, the number of images, the number of runs averaged).
 * Otherwise it is "not comparable", with the differences named.
 *
 * The μ schedule is compared in a normal form, so that the ETH configs'
 * `LinearParam` with begin = end (how they write a constant μ) equals a
 * constant: see {@link meanScheduleForm}.
 */
import type { ExperimentConfig, MeanSchedule } from "../config/mod.ts";

/** The fields a paper setting is defined by; null where a field does not apply. */
export interface ConfigSignature {
  /** `cifar10`, `cifar100`, ... */
  dataset: string;
  /** `resnet18` or `resnet50`... (width multiplier other than 1: `resnet18x0.125`). */
  architecture: string;
  /** `simclr` or `sdclr`. */
  method: string;
  /** `ntxent` or `weighted_ntxent`. */
  loss: string;
  temperature: number;
  /** Weighted loss only. */
  sigma: number | null;
  /** Weighted loss only: the μ schedule in normal form ({@link meanScheduleForm}). */
  mean: string | null;
  /** Weighted loss only. */
  normalization: string | null;
  lower_bound: number | null;
  upper_bound: number | null;
  /** `full` (whole train set), `D_i` (long-tail), `D_b` (balanced), `S_b`, or the file name. */
  pretrain_split: string;
  /** `eth`, `sdclr` or `none`. */
  linear_protocol: string;
  /** SDCLR only. */
  prune_percent: number | null;
}

/** How a value was measured: what a run must repeat to be compared with a paper's value. */
export interface ProtocolSignature {
  /** Pretraining epochs and batch size. */
  epochs: number;
  batch_size: number;
  /** Linear probe epochs, batch size and learning rate (null: no linear probe). */
  probe_epochs: number | null;
  probe_batch_size: number | null;
  probe_lr: number | null;
  /** The probe's weight decay: ETH the searched grid `10^a..10^b ×n`, SDCLR the value. */
  probe_weight_decay: string | null;
  /** Images pretrained on, the probe trained on (ETH: with its validation part), tested on; null: unknown. */
  pretrain_images: number | null;
  probe_train_images: number | null;
  test_images: number | null;
  /** Runs averaged: seeds or splits. */
  runs: number;
}

/** Image counts of a run, as its log states them (null: not logged). */
export interface RunImageCounts {
  pretrain: number | null;
  probeTrain: number | null;
  test: number | null;
}

/** A metric a paper reports, in percent. */
export type PaperMetric = "linear" | "many" | "medium" | "few";

/** One reported result and the setting it was obtained in. */
export interface PaperEntry {
  /** Short name, e.g. "SimCLR τ 0.1, batch 256". */
  label: string;
  /** Where the number is stated. */
  source: string;
  /** The signature fields that must be equal. */
  match: Partial<ConfigSignature>;
  /** How the paper measured it. */
  protocol: ProtocolSignature;
  /** Reported values in percent. */
  values: Partial<Record<PaperMetric, number>>;
}

/** The normal form of a μ schedule: constants (however written) become `const <v>`. */
export function meanScheduleForm(mean: MeanSchedule): string {
  switch (mean.type) {
    case "const":
      return `const ${mean.value}`;
    case "linear":
      return mean.begin === mean.end
        ? `const ${mean.begin}`
        : `linear ${mean.begin}→${mean.end} over ${mean.steps} epochs`;
    case "exponential":
      return mean.begin === mean.end || mean.factor === 0
        ? `const ${mean.end}`
        : `exponential ${mean.begin}→${mean.end} factor ${mean.factor}`;
    case "random":
      return mean.begin === mean.end ? `const ${mean.begin}` : `random ${mean.begin}..${mean.end}`;
    case "random_every_iter":
      return mean.begin === mean.end
        ? `const ${mean.begin}`
        : `random every iteration ${mean.begin}..${mean.end}`;
    case "random_then_const":
      return mean.steps === 0
        ? `const ${mean.const_value}`
        : `random ${mean.begin}..${mean.end} for ${mean.steps} epochs, then ${mean.const_value}`;
  }
}

/** The kind of a pretraining split file: `D_i`, `D_b`, `S_b`, else its file name; null → `full`. */
export function splitKind(path: string | null): string {
  if (path === null) return "full";
  const kind = /_(D_i|D_b|S_b)(?:\.npy)?$/.exec(path);
  if (kind) return kind[1];
  return path.split("/").pop()!;
}

/** The signature of a resolved config. */
export function configSignature(config: ExperimentConfig): ConfigSignature {
  const loss = config.loss;
  const weighted = loss.type === "weighted_ntxent" ? loss : null;
  const width = config.model.width_multiplier;
  return {
    dataset: config.data.dataset,
    architecture: config.model.architecture + (width === 1 ? "" : `x${width}`),
    method: config.method.name,
    loss: loss.type,
    temperature: loss.temperature,
    sigma: weighted?.sigma ?? null,
    mean: weighted ? meanScheduleForm(weighted.mean) : null,
    normalization: weighted?.normalization ?? null,
    lower_bound: weighted?.lower_bound ?? null,
    upper_bound: weighted?.upper_bound ?? null,
    pretrain_split: splitKind(config.data.pretrain_split),
    linear_protocol: config.evaluation.linear?.protocol ?? "none",
    prune_percent: config.method.name === "sdclr" ? config.method.prune_percent : null,
  };
}

/** The protocol of a resolved config, with the image counts of its log and the runs averaged. */
export function protocolSignature(
  config: ExperimentConfig,
  counts: RunImageCounts,
  runs: number,
): ProtocolSignature {
  const linear = config.evaluation.linear;
  return {
    epochs: config.train.epochs,
    batch_size: config.train.batch_size,
    probe_epochs: linear?.epochs ?? null,
    probe_batch_size: linear?.batch_size ?? null,
    probe_lr: linear?.lr ?? null,
    probe_weight_decay: linear === null
      ? null
      : linear.protocol === "eth"
      ? `10^${linear.log_min}..10^${linear.log_max} ×${linear.n_steps}`
      : String(linear.weight_decay),
    pretrain_images: counts.pretrain,
    probe_train_images: counts.probeTrain,
    test_images: counts.test,
    runs,
  };
}

/** One field where a run's protocol differs from a paper's. */
export interface ProtocolDifference {
  field: keyof ProtocolSignature;
  ours: number | string | null;
  paper: number | string | null;
}

/** The fields where `ours` differs from the paper's protocol (empty: comparable). */
export function protocolDifferences(
  ours: ProtocolSignature,
  paper: ProtocolSignature,
): ProtocolDifference[] {
  return (Object.keys(paper) as (keyof ProtocolSignature)[])
    .filter((field) => !sameValue(ours[field], paper[field]))
    .map((field) => ({ field, ours: ours[field], paper: paper[field] }));
}

/** `probe_epochs 1 (paper 30)`, `pretrain_images unknown (paper 50000)`, ... */
export function formatProtocolDifferences(differences: readonly ProtocolDifference[]): string {
  return differences.map((d) =>
    `${d.field} ${d.ours === null ? "unknown" : d.ours} (paper ${d.paper})`
  )
    .join(", ");
}

const ETH_SOURCE = "ETH curriculum paper (SPEC §A Output), CIFAR test accuracy after 500 epochs";
const SDCLR_SOURCE = "SDCLR paper (SPEC §B Evaluation), CIFAR-10-LT linear, mean over 5 splits";

/** What every ETH entry shares: ResNet-50, whole train set, ETH protocol. */
const ETH_BASE: Partial<ConfigSignature> = {
  architecture: "resnet50",
  method: "simclr",
  temperature: 0.1,
  pretrain_split: "full",
  linear_protocol: "eth",
};

/**
 * How the ETH values were measured: one run (seed 42) of 500 epochs at batch 256 on the 50,000
 * CIFAR training images; the probe searched 5 weight decays 10^-6..10^-1 with 60 Adam epochs
 * (lr 1e-3, batch 256) on 90/10 % of the training images; 10,000 test images.
 */
const ETH_PROTOCOL: ProtocolSignature = {
  epochs: 500,
  batch_size: 256,
  probe_epochs: 60,
  probe_batch_size: 256,
  probe_lr: 1e-3,
  probe_weight_decay: "10^-6..10^-1 ×5",
  pretrain_images: 50000,
  probe_train_images: 50000,
  test_images: 10000,
  runs: 1,
};

/** The weighted-loss setting of the ETH entries: σ 0.5, normalized, bounds ±1. */
function ethWeighted(dataset: string, mean: string): Partial<ConfigSignature> {
  return {
    ...ETH_BASE,
    dataset,
    loss: "weighted_ntxent",
    sigma: 0.5,
    mean,
    normalization: "negatives_constant_total_weight",
    lower_bound: -1,
    upper_bound: 1,
  };
}

/** What every SDCLR CIFAR-10-LT entry shares (SPEC §B). */
const SDCLR_BASE: Partial<ConfigSignature> = {
  dataset: "cifar10",
  architecture: "resnet18",
  loss: "ntxent",
  temperature: 0.2,
  pretrain_split: "D_i",
  linear_protocol: "sdclr",
};

/**
 * How the SDCLR values were measured: the mean over the 5 splits, each 2000 epochs at batch 512 on
 * its D_i (11,165 images); the probe 30 epochs of SGD (lr 30, no weight decay, batch 128) on the
 * 45,000 images of trainIdxList; 10,000 test images.
 */
const SDCLR_PROTOCOL: ProtocolSignature = {
  epochs: 2000,
  batch_size: 512,
  probe_epochs: 30,
  probe_batch_size: 128,
  probe_lr: 30,
  probe_weight_decay: "0",
  pretrain_images: 11165,
  probe_train_images: 45000,
  test_images: 10000,
  runs: 5,
};

/** Every reported result of SPEC. */
export const PAPER_RESULTS: readonly PaperEntry[] = [
  {
    label: "SimCLR τ 0.1, batch 256",
    source: ETH_SOURCE,
    protocol: ETH_PROTOCOL,
    match: { ...ETH_BASE, dataset: "cifar10", loss: "ntxent" },
    values: { linear: 81.80 },
  },
  {
    label: "WeightedNTXent constant μ 0.6",
    source: ETH_SOURCE,
    protocol: ETH_PROTOCOL,
    match: ethWeighted("cifar10", "const 0.6"),
    values: { linear: 82.46 },
  },
  {
    label: "WeightedNTXent constant μ 0.4",
    source: ETH_SOURCE,
    protocol: ETH_PROTOCOL,
    match: ethWeighted("cifar10", "const 0.4"),
    values: { linear: 82.24 },
  },
  {
    label: "WeightedNTXent RandomThenConst (−1..1 for 200 epochs, then 0.8)",
    source: ETH_SOURCE,
    protocol: ETH_PROTOCOL,
    match: ethWeighted("cifar10", "random -1..1 for 200 epochs, then 0.8"),
    values: { linear: 82.36 },
  },
  {
    label: "WeightedNTXent linear μ −1→1 over 500 epochs",
    source: ETH_SOURCE,
    protocol: ETH_PROTOCOL,
    match: ethWeighted("cifar10", "linear -1→1 over 500 epochs"),
    values: { linear: 80.14 },
  },
  {
    label: "CIFAR-100 SimCLR τ 0.1, batch 256",
    source: ETH_SOURCE,
    protocol: ETH_PROTOCOL,
    match: { ...ETH_BASE, dataset: "cifar100", loss: "ntxent" },
    values: { linear: 53.40 },
  },
  {
    label: "CIFAR-100 WeightedNTXent constant μ 0.6",
    source: ETH_SOURCE,
    protocol: ETH_PROTOCOL,
    match: ethWeighted("cifar100", "const 0.6"),
    values: { linear: 54.61 },
  },
  {
    label: "SDCLR paper: SimCLR on CIFAR-10-LT",
    source: SDCLR_SOURCE,
    protocol: SDCLR_PROTOCOL,
    match: { ...SDCLR_BASE, method: "simclr" },
    values: { many: 78.18, medium: 76.23, few: 71.37 },
  },
  {
    label: "SDCLR on CIFAR-10-LT (prune 90 %)",
    source: SDCLR_SOURCE,
    protocol: SDCLR_PROTOCOL,
    match: { ...SDCLR_BASE, method: "sdclr", prune_percent: 0.9 },
    values: { many: 86.44, medium: 81.84, few: 76.23 },
  },
];

function sameValue(a: unknown, b: unknown): boolean {
  if (typeof a === "number" && typeof b === "number") {
    return Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(a), Math.abs(b));
  }
  return a === b;
}

/** One field where a signature differs from an entry. */
export interface SignatureDifference {
  field: keyof ConfigSignature;
  ours: unknown;
  paper: unknown;
}

/** The fields of `entry.match` where `signature` differs (empty: it matches). */
export function signatureDifferences(
  signature: ConfigSignature,
  entry: PaperEntry,
): SignatureDifference[] {
  return (Object.keys(entry.match) as (keyof ConfigSignature)[])
    .filter((field) => !sameValue(signature[field], entry.match[field]))
    .map((field) => ({ field, ours: signature[field], paper: entry.match[field] }));
}

/** Fields that make a different experiment rather than a variant of a paper setting. */
const KIND_FIELDS: readonly (keyof ConfigSignature)[] = ["dataset", "method", "loss"];

/** The paper entries whose setting `signature` matches. */
export function matchPaper(
  signature: ConfigSignature,
  entries: readonly PaperEntry[] = PAPER_RESULTS,
): PaperEntry[] {
  return entries.filter((entry) => signatureDifferences(signature, entry).length === 0);
}

/**
 * Among the entries of the same dataset, method and loss type, the one
 * differing from `signature` in the fewest fields (ties: the first), with
 * those fields; null when none is within `maxDifferences`.
 */
export function nearestPaper(
  signature: ConfigSignature,
  maxDifferences = 2,
  entries: readonly PaperEntry[] = PAPER_RESULTS,
): { entry: PaperEntry; differences: SignatureDifference[] } | null {
  let best: { entry: PaperEntry; differences: SignatureDifference[] } | null = null;
  for (const entry of entries) {
    const differences = signatureDifferences(signature, entry);
    const kindDiffers = differences.some((d) => KIND_FIELDS.includes(d.field));
    if (kindDiffers || differences.length > maxDifferences) continue;
    if (best === null || differences.length < best.differences.length) {
      best = { entry, differences };
    }
  }
  return best;
}
