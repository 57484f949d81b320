/**
 * `quickstart`: a small contrastive run (config/quickstart.yaml) on the bundled
 * CIFAR-10 subset, judged against the same encoder at its random initialization.
 * `--supervised` keeps the first quickstart: a small CNN trained with cross-entropy.
 */
import { loadCifar } from "../data/cifar.ts";
import { loadConfig } from "../config/mod.ts";
import { signed, textTable } from "../report/mod.ts";
import type { ExperimentLog } from "../train/log.ts";
import type { EvaluationRecord } from "../train/run_state.ts";
import { trainSupervised } from "../train/supervised.ts";
import type { Device } from "../runtime/session.ts";
import { type Command, type CommandArgs, numberOption } from "./commands.ts";
import { UsageError } from "./errors.ts";
import { configOverrideOptions, overridesFromArgs } from "./overrides.ts";
import { runLoadedConfig } from "./run.ts";
import { exitCodeOfRun } from "../train/stop_signals.ts";

/** Where the bundled CIFAR-10 subset lives, relative to the repository root. */
export const BUNDLED_CIFAR10 = new URL("../../data/cifar10-mini", import.meta.url).pathname;

/** The quickstart experiment's config. */
export const QUICKSTART_CONFIG = new URL("../../config/quickstart.yaml", import.meta.url).pathname;

/** The quickstart command. */
export const quickstartCommand: Command = {
  name: "quickstart",
  summary:
    "contrastive pretraining on the bundled CIFAR-10 subset (CPU), linear probe vs random init",
  usage: "[--resume] [--epochs N] [--threads T] [--set key=value ...] | --supervised [...]",
  options: {
    resume: { type: "boolean", description: "continue the quickstart run from its checkpoint" },
    ...configOverrideOptions,
    supervised: {
      type: "boolean",
      description: "instead: train a small CNN with cross-entropy (the first quickstart)",
    },
    "batch-size": { type: "string", description: "--supervised: batch size", default: "64" },
    lr: { type: "string", description: "--supervised: SGD learning rate", default: "0.02" },
    seed: { type: "string", description: "--supervised: random seed", default: "0" },
  },
  async run(args) {
    if (args.values.supervised) return await supervisedQuickstart(args);
    const start = performance.now();
    const log = await runLoadedConfig(
      await loadConfig(QUICKSTART_CONFIG, overridesFromArgs(args)),
      args,
    );
    if (log.status !== "finished") return exitCodeOfRun(log);
    console.log(comparisonTable(log));
    console.log(`time: ${((performance.now() - start) / 1000).toFixed(1)} s`);
    return 0;
  },
};

/** Accuracy (%) of one probe in an evaluation's details, or null. */
function probeAccuracy(record: EvaluationRecord | null | undefined, probe: "linear" | "knn") {
  const details = record?.details as
    | { linear?: { testAccuracy?: number } | null; knn?: { accuracy?: number } | null }
    | undefined;
  const value = probe === "linear" ? details?.linear?.testAccuracy : details?.knn?.accuracy;
  return typeof value === "number" ? 100 * value : null;
}

/** Pretrained vs random-init test accuracy per probe, with the margin. */
export function comparisonTable(log: ExperimentLog): string {
  const pretrained = log.evaluations.at(-1);
  const random = log.random_init_evaluation;
  if (!pretrained || !random) {
    return "no pretrained-vs-random comparison: the run has no final or no random-init evaluation";
  }
  const rows: string[][] = [];
  for (const [name, probe] of [["linear probe", "linear"], ["kNN", "knn"]] as const) {
    const a = probeAccuracy(pretrained, probe);
    const b = probeAccuracy(random, probe);
    if (a === null || b === null) continue;
    rows.push([name, a.toFixed(2), b.toFixed(2), signed(a - b)]);
  }
  return [
    `encoder after ${log.average_training_loss_per_epoch.length} epochs vs the same encoder at ` +
    "random initialization, same evaluation (test set):",
    textTable(["probe", "pretrained %", "random init %", "margin (points)"], rows),
  ].join("\n");
}

async function supervisedQuickstart(args: CommandArgs): Promise<number> {
  if ((args.values.set as string[] | undefined)?.length || args.values.resume) {
    throw new UsageError(
      "--set and --resume apply to the contrastive quickstart, not --supervised",
    );
  }
  const device = (args.values.device as string | undefined) ?? "cpu";
  if (device !== "cpu" && device !== "cuda") {
    throw new UsageError(`--device: expected cpu or cuda, got "${device}"`);
  }
  const dir = (args.values["data-dir"] as string | undefined) ?? BUNDLED_CIFAR10;
  const train = await loadCifar({ dataset: "cifar10", split: "train", dir });
  const test = await loadCifar({ dataset: "cifar10", split: "test", dir });
  console.log(`quickstart: ${train.count} training and ${test.count} test images from ${dir}`);
  const result = await trainSupervised(train, test, {
    model: { channels: [32, 64, 128], classes: 10, imageSize: train.height },
    epochs: numberOption(args, "epochs") ?? 15,
    batchSize: numberOption(args, "batch-size")!,
    lr: numberOption(args, "lr")!,
    momentum: 0.9,
    weightDecay: 5e-4,
    seed: numberOption(args, "seed")!,
    session: { device: device as Device, threads: numberOption(args, "threads") },
  });
  const losses = result.lossPerEpoch.map((l) => l.toFixed(3)).join(" ");
  console.log(`loss per epoch: ${losses}`);
  console.log(
    `test accuracy: ${
      (100 * result.testAccuracy).toFixed(2)
    } % (${test.count} images, chance 10 %)`,
  );
  console.log(`time: ${result.seconds.toFixed(1)} s`);
  return 0;
}
