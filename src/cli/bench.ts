/** `bench`: times the contrastive training step, optionally against PyTorch in the same invocation. */
import { parseBenchConfig, reportJson, runBench } from "../bench/mod.ts";
import { DEFAULT_STEPS_PER_RUN } from "../config/schema.ts";
import type { Command } from "./commands.ts";
import { UsageError } from "./errors.ts";

/** The bench command. */
export const benchCommand: Command = {
  name: "bench",
  summary: "time the training step (views/s, ms/step, peak memory), optionally against PyTorch",
  usage:
    "[--model resnet18] [--stem cifar] [--batch 32] [--loss weighted] [--optimizer adam] [--head linear] [--json] [--reference torch]",
  options: {
    model: {
      type: "string",
      description: "encoder: resnet18, resnet34 or resnet50",
      default: "resnet18",
    },
    stem: {
      type: "string",
      description: "cifar (3x3 conv) or imagenet (7x7 conv + max-pool)",
      default: "cifar",
    },
    width: {
      type: "string",
      description: "channel multiplier (1/16 for tiny tests)",
      default: "1",
    },
    method: {
      type: "string",
      description: "simclr or sdclr (dual BN, masked branch)",
      default: "simclr",
    },
    loss: {
      type: "string",
      description: "ntxent or weighted (ETH weighted NT-Xent)",
      default: "ntxent",
    },
    head: {
      type: "string",
      description: "projection head: simclr, sdclr or linear (ETH); default: the method's",
    },
    optimizer: {
      type: "string",
      description: "sgd (SDCLR: momentum 0.9, wd 1e-4) or adam (ETH: lr 1e-3, wd 1e-6)",
      default: "sgd",
    },
    precision: {
      type: "string",
      description: "float32, float16 (CUDA) or float16_simulated, as train.precision",
      default: "float32",
    },
    "steps-per-run": {
      type: "string",
      description: "training steps per ONNX Runtime run, as train.steps_per_run",
      default: String(DEFAULT_STEPS_PER_RUN),
    },
    batch: { type: "string", description: "images per step (2·batch views)", default: "32" },
    size: { type: "string", description: "image height and width", default: "32" },
    steps: {
      type: "string",
      description: "timed steps (rounded up to whole runs of --steps-per-run)",
      default: "10",
    },
    warmup: { type: "string", description: "untimed steps first", default: "2" },
    device: { type: "string", description: "cpu or cuda", default: "cpu" },
    threads: {
      type: "string",
      description: "intra-op threads, ours and torch's (0: the project default)",
      default: "0",
    },
    temperature: { type: "string", description: "loss temperature τ", default: "0.2" },
    prune: {
      type: "string",
      description: "SDCLR: fraction of conv weights masked",
      default: "0.9",
    },
    seed: { type: "string", description: "seed of weights, views and masks", default: "0" },
    json: { type: "boolean", description: "print one JSON object on the last line" },
    reference: {
      type: "string",
      description: "also time the same step in another framework: torch",
    },
    python: { type: "string", description: "python with torch for --reference torch" },
    "torch-amp": { type: "boolean", description: "reference only: autocast (float16 on CUDA)" },
    "torch-channels-last": {
      type: "boolean",
      description: "reference only: channels_last tensors",
    },
    profile: {
      type: "string",
      description: "also run this many steps under ORT's profiler and print the breakdown",
    },
    sequential: {
      type: "boolean",
      description: "run the reference after ours (default: the two take turns run by run)",
    },
  },
  async run(args) {
    if (args.positionals.length > 0) {
      throw new UsageError(
        `bench takes no positional arguments, got "${args.positionals.join(" ")}"`,
      );
    }
    const v = args.values;
    let config;
    try {
      config = parseBenchConfig(v);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    const reference = v.reference as string | undefined;
    if (reference !== undefined && reference !== "torch") {
      throw new UsageError(`--reference: unknown reference "${reference}"; expected torch`);
    }
    if (v.python !== undefined && reference === undefined) {
      throw new UsageError("--python is only used with --reference torch");
    }
    if (v.sequential && reference === undefined) {
      throw new UsageError("--sequential is only used with --reference torch");
    }
    const profileSteps = v.profile === undefined ? 0 : Number(v.profile);
    if (!Number.isInteger(profileSteps) || profileSteps < 0) {
      throw new UsageError(
        `--profile: expected a number of steps (integer >= 0), got "${v.profile}"`,
      );
    }
    const report = await runBench(config, {
      reference: reference as "torch" | undefined,
      python: v.python as string | undefined,
      torchFlags: { amp: Boolean(v["torch-amp"]), channelsLast: Boolean(v["torch-channels-last"]) },
      profileSteps,
      sequential: Boolean(v.sequential),
    });
    if (v.json) console.log(JSON.stringify(reportJson(report)));
  },
};
