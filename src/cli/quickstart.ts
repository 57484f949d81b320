/** `quickstart`: small end-to-end training run on the bundled CIFAR-10 subset. */
import { loadCifar } from "../data/cifar.ts";
import { trainSupervised } from "../train/supervised.ts";
import type { Device } from "../runtime/session.ts";
import { type Command, numberOption } from "./commands.ts";
import { UsageError } from "./errors.ts";

/** Where the bundled CIFAR-10 subset lives, relative to the repository root. */
export const BUNDLED_CIFAR10 = new URL("../../data/cifar10-mini", import.meta.url).pathname;

/** The quickstart command. */
export const quickstartCommand: Command = {
  name: "quickstart",
  summary: "train a small CNN on the bundled CIFAR-10 subset (CPU) and print test accuracy",
  options: {
    epochs: { type: "string", description: "training epochs", default: "15" },
    "batch-size": { type: "string", description: "batch size", default: "64" },
    lr: { type: "string", description: "SGD learning rate", default: "0.02" },
    seed: { type: "string", description: "random seed", default: "0" },
    threads: { type: "string", description: "CPU threads (0: all cores)", default: "0" },
    device: { type: "string", description: "cpu or cuda", default: "cpu" },
    "data-dir": {
      type: "string",
      description: "folder with cifar-10-batches-bin",
      default: BUNDLED_CIFAR10,
    },
  },
  async run(args) {
    const device = args.values.device as string;
    if (device !== "cpu" && device !== "cuda") {
      throw new UsageError(`--device: expected cpu or cuda, got "${device}"`);
    }
    const dir = args.values["data-dir"] as string;
    const train = await loadCifar({ dataset: "cifar10", split: "train", dir });
    const test = await loadCifar({ dataset: "cifar10", split: "test", dir });
    console.log(`quickstart: ${train.count} training and ${test.count} test images from ${dir}`);
    const result = await trainSupervised(train, test, {
      model: { channels: [32, 64, 128], classes: 10, imageSize: train.height },
      epochs: numberOption(args, "epochs")!,
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
  },
};
