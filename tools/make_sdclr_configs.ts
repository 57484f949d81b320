/**
 * Writes config/sdclr/*.yaml: the SDCLR paper's runs (SPEC §B) as configs.
 * CIFAR-10-LT and CIFAR-100-LT, splits 1–5: SimCLR on D_b, SimCLR on D_i,
 * SDCLR on D_i; ImageNet-100-LT: SimCLR on the balanced and the long-tail
 * list, SDCLR on the long-tail list. Split paths are relative to data.dir
 * (copy or link datasets/sdclr-splits/ to <data dir>/splits).
 *
 * Run: deno run -A tools/make_sdclr_configs.ts [out-dir]   (default config/sdclr)
 */
import { Document, visit } from "yaml";

/** One generated config: file name and our-format document. */
export interface GeneratedConfig {
  file: string;
  document: Record<string, unknown>;
}

type Variant = "simclr_D_b" | "simclr_D_i" | "sdclr_D_i";
const VARIANTS: readonly Variant[] = ["simclr_D_b", "simclr_D_i", "sdclr_D_i"];

const SGD = { type: "sgd", lr: 0.5, momentum: 0.9, weight_decay: 1e-4 };
const WARMUP_COSINE = { type: "warmup_cosine", warmup_epochs: 10, final_lr: 1e-6 };
const OUTPUT = { log_dir: "experiment_logs", checkpoint_dir: "checkpoints" };

/**
 * The SDCLR probes. The original validates every `--test_freq` epochs (train_cifar.py default 1,
 * cifar-10-LT.sh passes 5 to the few-shot run; imagenet-100-res50-LT.sh passes 2 and 10) and keeps
 * the best model on validation top-1 (train_cifar.py) or top-5 (train_imagenet.py).
 */
function sdclrProbe(
  batchSize: number,
  testFreq: { linear: number; fewShot: number },
  selectOn: "top1" | "top5",
) {
  return {
    linear: {
      protocol: "sdclr",
      lr: 30,
      momentum: 0.9,
      weight_decay: 0,
      batch_size: batchSize,
      epochs: 30,
      milestones: [10, 20],
      gamma: 0.1,
      init_std: 0.01,
      augment: true,
      test_freq: testFreq.linear,
      select_on: selectOn,
    },
    few_shot: {
      lr: 30,
      momentum: 0.9,
      weight_decay: 0,
      batch_size: batchSize,
      epochs: 100,
      milestones: [40, 60],
      gamma: 0.1,
      init_std: 0.01,
      augment: true,
      test_freq: testFreq.fewShot,
      select_on: selectOn,
    },
  };
}

function methodAndHead(variant: Variant, prunePercent: number) {
  return variant === "sdclr_D_i"
    ? {
      head: { type: "sdclr", output_dim: 128 },
      method: {
        name: "sdclr",
        prune_percent: prunePercent,
        random_prune_percent: 0,
        dual_bn: true,
      },
    }
    : { head: { type: "simclr", output_dim: 128 }, method: { name: "simclr" } };
}

function cifarConfig(
  dataset: "cifar10" | "cifar100",
  split: number,
  variant: Variant,
): GeneratedConfig {
  // File names exactly as in datasets/sdclr-splits/.
  const subsets = dataset === "cifar10"
    ? "splits/cifar10_imbSub_with_subsets"
    : "splits/cifar100_imbSub_with_subsets";
  const prefix = dataset === "cifar10" ? `split${split}` : `cifar100_split${split}`;
  const probeLists = dataset === "cifar10"
    ? { train: "splits/cifar10/trainIdxList.npy", val: "splits/cifar10/valIdxList.npy" }
    : {
      train: "splits/cifar100/cifar100_trainIdxList.npy",
      val: "splits/cifar100/cifar100_valIdxList.npy",
    };
  const pretrainSubset = variant === "simclr_D_b" ? "D_b" : "D_i";
  const method = variant.split("_")[0];
  const name = `${method}_${dataset}_split${split}_${pretrainSubset}`;
  const longTail = `${subsets}/${prefix}_D_i.npy`;
  return {
    file: `${name}.yaml`,
    document: {
      experiment: name,
      seed: 10,
      device: "auto",
      data: {
        dataset,
        dir: "data",
        pretrain_split: `${subsets}/${prefix}_${pretrainSubset}.npy`,
        train_split: probeLists.train,
        val_split: probeLists.val,
        few_shot_split: `${subsets}/${prefix}_S_b.npy`,
        test_split: null,
      },
      model: {
        architecture: "resnet18",
        stem: "cifar",
        width_multiplier: 1,
        input_norm: "imagenet",
      },
      ...methodAndHead(variant, 0.9),
      loss: { type: "ntxent", temperature: 0.2 },
      optimizer: SGD,
      lr_schedule: WARMUP_COSINE,
      train: { epochs: 2000, batch_size: 512, drop_last: false, checkpoint_every_n_epochs: 10 },
      augmentation: { recipe: "sdclr" },
      evaluation: {
        testing_every_n_epochs: null,
        evaluate_at_end: true,
        ...sdclrProbe(128, { linear: 1, fewShot: 5 }, "top1"),
        knn: null,
        // Groups come from the class counts of the long-tail subset, whatever was pretrained on.
        groups: {
          by: "rank",
          reference_split: longTail,
          sizes: dataset === "cifar10" ? [4, 3, 3] : [34, 33, 33],
        },
      },
      output: OUTPUT,
    },
  };
}

function imagenet100Config(variant: Variant): GeneratedConfig {
  const lists = "splits/imagenet-100";
  const pretrainList = variant === "simclr_D_b" ? "imageNet_100_BL_train" : "imageNet_100_LT_train";
  const method = variant.split("_")[0];
  const name = `${method}_imagenet100_${variant === "simclr_D_b" ? "BL" : "LT"}`;
  return {
    file: `${name}.yaml`,
    document: {
      experiment: name,
      // imagenet-100-res50-LT.sh: seed 1 (the CIFAR scripts use 10).
      seed: 1,
      device: "auto",
      data: {
        dataset: "list",
        dir: "data/imagenet",
        image_size: 224,
        eval_resize: 256,
        full_image_max_side: 320,
        num_classes: 100,
        pretrain_split: `${lists}/${pretrainList}.txt`,
        // --fullset probe list; not among the shared split files (it is large).
        // Pretraining and the probes' training sets are decoded whole (longer side at most 320
        // px, data.full_image_max_side) for RandomResizedCrop; val/test are Resize(256) +
        // CenterCrop(224) as in the original.
        train_split: `${lists}/ImageNet_100_train.txt`,
        val_split: `${lists}/ImageNet_100_val.txt`,
        few_shot_split: `${lists}/imageNet_100_sub_balance_train_0.01.txt`,
        test_split: `${lists}/ImageNet_100_test.txt`,
      },
      model: {
        architecture: "resnet50",
        stem: "imagenet",
        width_multiplier: 1,
        input_norm: "imagenet",
      },
      ...methodAndHead(variant, 0.3),
      // README: SDCLR runs with --temp 0.3; the script's default is 0.2.
      loss: { type: "ntxent", temperature: variant === "sdclr_D_i" ? 0.3 : 0.2 },
      optimizer: SGD,
      lr_schedule: WARMUP_COSINE,
      train: { epochs: 500, batch_size: 256, drop_last: false, checkpoint_every_n_epochs: 5 },
      augmentation: {
        recipe: "sdclr",
        crop: { scale: [0.08, 1] },
        // PIL GaussianBlur(radius = sigma ~ U(0.1, 2)) with p 0.5; 13 taps cover ±3 sigma at sigma 2.
        blur: { kernel_size: 13, sigma: [0.1, 2], p: 0.5 },
      },
      evaluation: {
        testing_every_n_epochs: null,
        evaluate_at_end: true,
        ...sdclrProbe(512, { linear: 2, fewShot: 10 }, "top5"),
        knn: null,
        groups: {
          by: "count",
          reference_split: `${lists}/imageNet_100_LT_train.txt`,
          many_above: 100,
          few_below: 20,
        },
      },
      output: OUTPUT,
    },
  };
}

/** Every SDCLR config, in a stable order. */
export function sdclrConfigs(): GeneratedConfig[] {
  const configs: GeneratedConfig[] = [];
  for (const dataset of ["cifar10", "cifar100"] as const) {
    for (let split = 1; split <= 5; split++) {
      for (const variant of VARIANTS) configs.push(cifarConfig(dataset, split, variant));
    }
  }
  for (const variant of VARIANTS) configs.push(imagenet100Config(variant));
  return configs;
}

/** YAML text of a generated config: a header comment, short lists in flow style. */
export function renderConfig(config: GeneratedConfig): string {
  const document = new Document(config.document);
  visit(document, {
    Seq(_, node) {
      node.flow = true;
    },
  });
  document.commentBefore =
    " Generated by tools/make_sdclr_configs.ts; edit the script, not this file.";
  return document.toString({ lineWidth: 100, flowCollectionPadding: false });
}

if (import.meta.main) {
  const outDir = Deno.args[0] ?? "config/sdclr";
  await Deno.mkdir(outDir, { recursive: true });
  const configs = sdclrConfigs();
  for (const config of configs) {
    await Deno.writeTextFile(`${outDir}/${config.file}`, renderConfig(config));
  }
  console.log(`wrote ${configs.length} configs to ${outDir}/`);
}
