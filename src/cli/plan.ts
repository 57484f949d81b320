/**
 * `plan <config.yaml> [--json]`: validates a config and prints the resolved
 * settings and the per-epoch μ and learning rate, without training.
 */
import { type ExperimentConfig, loadConfig } from "../config/mod.ts";
import { readIndexNpy } from "../data/npy.ts";
import { readImageList } from "../data/image_folder.ts";
import {
  CifarFilesNotFound,
  type CifarName,
  cifarRecordBytes,
  findCifarFiles,
  loadCifar,
} from "../data/cifar.ts";
import { dataPath } from "../train/experiment_data.ts";
import { evaluationEpochs } from "../train/evaluate.ts";
import { iterationsPerEpoch, muRng, planEpochs } from "../schedules/from_config.ts";
import { type Command, numberOption } from "./commands.ts";
import { UsageError } from "./errors.ts";
import { configOverrideOptions, overridesFromArgs } from "./overrides.ts";

/** Official training-set sizes of the built-in data sets. */
const TRAIN_SIZES: Record<CifarName, number> = { cifar10: 50_000, cifar100: 50_000 };

/** How many images a config pretrains on, and where that number comes from. */
export interface PretrainImages {
  count: number;
  /** Said after the count when it is not read from the data: why. */
  assumed?: string;
}

/**
 * Number of images the config pretrains on: the split file's length when one is named, else the
 * records in data.dir's training files (a subset such as data/cifar10-mini is counted as it is),
 * else the official size, said as assumed.
 */
export async function pretrainImageCount(config: ExperimentConfig): Promise<PretrainImages> {
  const { data } = config;
  if (data.pretrain_split) {
    const path = dataPath(data.dir, data.pretrain_split);
    if (data.dataset === "list") return { count: (await readImageList(path, data.dir)).length };
    return { count: (await readIndexNpy(path)).length };
  }
  if (data.dataset !== "cifar10" && data.dataset !== "cifar100") {
    throw new UsageError(
      `plan: cannot tell the size of data.dataset ${data.dataset} without data.pretrain_split; ` +
        `pass --iterations-per-epoch`,
    );
  }
  const options = { dataset: data.dataset, split: "train" as const, dir: data.dir };
  let found;
  try {
    found = await findCifarFiles(options);
  } catch (error) {
    // Only a folder without the files means "assume the official size"; a broken one is reported.
    if (!(error instanceof CifarFilesNotFound)) throw error;
    return {
      count: TRAIN_SIZES[data.dataset],
      assumed: `the official size: no ${data.dataset} training files in ${data.dir}`,
    };
  }
  if (found.format === "python") return { count: (await loadCifar(options)).count };
  const bytes = await Promise.all(found.files.map(async (file) => (await Deno.stat(file)).size));
  return {
    count: Math.floor(bytes.reduce((a, b) => a + b, 0) / cifarRecordBytes(data.dataset)),
  };
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
      iterationsPerEpoch(images!.count, config.train.batch_size, config.train.drop_last);
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
          pretrain_images: images?.count ?? null,
          pretrain_images_assumed: images?.assumed ?? null,
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
        (images !== undefined
          ? ` (${images.count} images${
            images.assumed ? ` assumed, ${images.assumed}` : ""
          }; batch ${config.train.batch_size})`
          : ""),
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
