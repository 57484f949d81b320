/**
 * `plan <config.yaml> [--json]`: validates a config and prints the resolved
 * settings and the per-epoch μ and learning rate, without training.
 */
import { type ExperimentConfig, loadConfig } from "../config/mod.ts";
import { readIndexNpy } from "../data/npy.ts";
import { readImageList } from "../data/image_folder.ts";
import { dataPath } from "../train/experiment_data.ts";
import { evaluationEpochs } from "../train/evaluate.ts";
import { iterationsPerEpoch, muRng, planEpochs } from "../schedules/from_config.ts";
import { type Command, numberOption } from "./commands.ts";
import { UsageError } from "./errors.ts";
import { configOverrideOptions, overridesFromArgs } from "./overrides.ts";

/** Official training-set sizes of the built-in data sets. */
const TRAIN_SIZES: Record<string, number> = { cifar10: 50_000, cifar100: 50_000 };

/** Number of images the config pretrains on (reads the split file when one is named). */
export async function pretrainImageCount(config: ExperimentConfig): Promise<number> {
  const { data } = config;
  if (data.pretrain_split) {
    const path = dataPath(data.dir, data.pretrain_split);
    if (data.dataset === "list") return (await readImageList(path, data.dir)).length;
    return (await readIndexNpy(path)).length;
  }
  const size = TRAIN_SIZES[data.dataset];
  if (size === undefined) {
    throw new UsageError(
      `plan: cannot tell the size of data.dataset ${data.dataset} without data.pretrain_split; ` +
        `pass --iterations-per-epoch`,
    );
  }
  return size;
}

/** The plan command. */
export const planCommand: Command = {
  name: "plan",
  summary: "validate a config and print its resolved settings and per-epoch μ and learning rate",
  usage: "<config.yaml> [--json]",
  options: {
    json: { type: "boolean", description: "print one JSON object instead of a table" },
    "iterations-per-epoch": {
      type: "string",
      description:
        "iterations per epoch (default: from the data set size, batch size and drop_last)",
    },
    ...configOverrideOptions,
  },
  async run(args) {
    const path = args.positionals[0];
    if (!path) {
      throw new UsageError("plan: give a config file, e.g. `plan config/eth/experiment_1.yaml`");
    }
    const loaded = await loadConfig(path, overridesFromArgs(args));
    const config = loaded.config;
    const given = numberOption(args, "iterations-per-epoch");
    const images = given === undefined ? await pretrainImageCount(config) : undefined;
    const iterations = given ??
      iterationsPerEpoch(images!, config.train.batch_size, config.train.drop_last);
    const evaluated = new Set(evaluationEpochs(config));
    const epochs = planEpochs(config, iterations, muRng(config.seed)).map((e) => ({
      ...e,
      evaluate: evaluated.has(e.epoch),
    }));
    if (args.values.json) {
      console.log(
        JSON.stringify({
          experiment: config.experiment,
          iterations_per_epoch: iterations,
          config,
          epochs,
        }),
      );
      return;
    }
    console.log(`experiment ${config.experiment} (${loaded.format} format, ${loaded.source})`);
    console.log(
      `  method ${config.method.name}, loss ${config.loss.type}, optimizer ${config.optimizer.type}`,
    );
    console.log(
      `  ${config.model.architecture} (${config.model.stem} stem, width ${config.model.width_multiplier}), ` +
        `head ${config.head.type}`,
    );
    console.log(
      `  ${config.train.epochs} epochs × ${iterations} iterations` +
        (images !== undefined ? ` (${images} images, batch ${config.train.batch_size})` : ""),
    );
    const after = [...evaluated].map((e) => e + 1);
    console.log(
      `  evaluated after epochs: ${after.length > 0 ? after.join(", ") : "none"}` +
        (config.evaluation.random_init_baseline ? ", and at random initialization" : ""),
    );
    console.log("epoch        mu           lr  evaluate");
    for (const e of epochs) {
      const mu = e.mu === null ? "-" : e.mu.toPrecision(6);
      console.log(
        `${String(e.epoch).padStart(5)} ${mu.padStart(12)} ${e.lr.toExponential(4).padStart(12)}` +
          (e.evaluate ? "       yes" : ""),
      );
    }
  },
};
