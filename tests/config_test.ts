import { assert, assertClose, assertEquals, assertThrowsMessage } from "./assert.ts";
import {
  applyOverrides,
  ConfigError,
  DEFAULT_STEPS_PER_RUN,
  encoderFeatureDim,
  type ExperimentConfig,
  headDims,
  INPUT_NORMALIZATIONS,
  loadConfig,
  type LoadedConfig,
  parseConfigDocument,
  parseConfigText,
  parseExperimentConfig,
  recipeParams,
} from "../src/config/mod.ts";
import { renderConfig, sdclrConfigs } from "../tools/make_sdclr_configs.ts";

const ETH_DIR = "config/eth";
const SDCLR_DIR = "config/sdclr";

function yamlFiles(dir: string): string[] {
  return [...Deno.readDirSync(dir)].filter((e) => e.name.endsWith(".yaml")).map((e) =>
    `${dir}/${e.name}`
  ).sort();
}

/** A value of the ETH dict by dotted path. */
function ethValue(loaded: LoadedConfig, path: string): unknown {
  let node: unknown = loaded.eth;
  for (const key of path.split(".")) node = (node as Record<string, unknown>)[key];
  return node;
}

async function loadText(text: string, source = "test.yaml"): Promise<LoadedConfig> {
  return await Promise.resolve(parseConfigText(text, source));
}

const ETH_1 = Deno.readTextFileSync(`${ETH_DIR}/experiment_1.yaml`);
const ETH_25 = Deno.readTextFileSync(`${ETH_DIR}/experiment_25.yaml`);

function replaceOnce(text: string, from: string, to: string): string {
  assert(text.includes(from), `fixture text lacks ${JSON.stringify(from)}`);
  return text.replace(from, to);
}

Deno.test("all 60 ETH configs load and map faithfully", async () => {
  const files = yamlFiles(ETH_DIR);
  assertEquals(files.length, 60, "number of ETH configs");
  const lossCounts = { ntxent: 0, weighted_ntxent: 0 };
  for (const file of files) {
    const loaded = await loadConfig(file);
    const c = loaded.config;
    assertEquals(loaded.format, "eth", file);
    assertEquals(
      c.experiment,
      file.slice(ETH_DIR.length + 1, -".yaml".length),
      `${file} experiment`,
    );
    assertEquals(c.seed, 42, `${file} seed`);
    assertEquals(c.train.epochs, ethValue(loaded, "pretraining.max_epochs"), `${file} epochs`);
    assertEquals(c.train.batch_size, ethValue(loaded, "pretraining.batch_size"), `${file} batch`);
    assertEquals(c.train.drop_last, false, `${file} drop_last`);
    const cifar100 = file.includes("experiment_C");
    assertEquals(c.data.dataset, cifar100 ? "cifar100" : "cifar10", `${file} dataset`);
    assertEquals(
      c.model.input_norm,
      INPUT_NORMALIZATIONS[cifar100 ? "cifar100" : "cifar10"],
      `${file} norm`,
    );
    assertEquals([c.model.architecture, c.model.stem, encoderFeatureDim(c.model)], [
      "resnet50",
      "imagenet",
      2048,
    ]);
    assertEquals(c.head, { type: "linear", output_dim: 128 }, `${file} head`);
    assertEquals(c.optimizer, {
      type: "adam",
      lr: 1e-3,
      betas: [0.9, 0.999],
      eps: 1e-8,
      weight_decay: 1e-6,
    });
    assertEquals(c.lr_schedule, { type: "constant" }, `${file} lr schedule`);
    assertEquals(c.evaluation.testing_every_n_epochs, 100, `${file} testing period`);
    assertEquals(c.evaluation.linear, {
      protocol: "eth",
      val_fraction: 0.1,
      log_min: -6,
      log_max: -1,
      n_steps: 5,
      epochs: 60,
      batch_size: 256,
      lr: 1e-3,
    });
    assertEquals(
      c.augmentation,
      { recipe: "eth", ...recipeParams("eth", 32) },
      `${file} augmentation`,
    );

    const lossConfig = "pretraining.loss.loss_config";
    assertEquals(
      c.loss.temperature,
      ethValue(loaded, `${lossConfig}.temperature`),
      `${file} temperature`,
    );
    lossCounts[c.loss.type]++;
    if (c.loss.type === "weighted_ntxent") {
      const weight = `${lossConfig}.weight_config`;
      assertEquals(c.loss.sigma, ethValue(loaded, `${weight}.sigma`), `${file} sigma`);
      assertEquals([c.loss.lower_bound, c.loss.upper_bound], [
        ethValue(loaded, `${weight}.b_l`),
        ethValue(loaded, `${weight}.b_u`),
      ]);
      const normalization = ethValue(loaded, `${lossConfig}.weight_normalization`);
      assertEquals(
        c.loss.normalization,
        normalization === "None" ? "none" : normalization,
        `${file} normalization`,
      );
      const meanConfig = ethValue(loaded, `${weight}.mean_config`) as Record<string, number>;
      const names = {
        LinearParam: "linear",
        ExponentialParam: "exponential",
        RandomParam: "random",
        RandomParamEveryIter: "random_every_iter",
        RandomThenConst: "random_then_const",
      } as Record<string, string>;
      const mean = c.loss.mean;
      assertEquals(
        mean.type,
        names[ethValue(loaded, `${weight}.mean`) as string],
        `${file} mean type`,
      );
      if (mean.type !== "const") {
        assertEquals([mean.begin, mean.end], [meanConfig.begin, meanConfig.end]);
      }
      if (mean.type === "linear" || mean.type === "random_then_const") {
        assertEquals(mean.steps, meanConfig.steps);
      }
      if (mean.type === "exponential") assertEquals(mean.factor, meanConfig.factor);
      if (mean.type === "random_then_const") assertEquals(mean.const_value, meanConfig.const_value);
    }
  }
  assertEquals(lossCounts, { ntxent: 13, weighted_ntxent: 47 }, "losses over the 60 configs");
});

Deno.test("ETH spot checks against the YAML text", async () => {
  const c1 = (await loadConfig(`${ETH_DIR}/experiment_1.yaml`)).config;
  assertEquals([c1.loss.type, c1.loss.temperature, c1.train.batch_size, c1.train.epochs], [
    "ntxent",
    0.05,
    256,
    500,
  ]);
  assertEquals((await loadConfig(`${ETH_DIR}/experiment_A1.yaml`)).config.train.batch_size, 512);
  const b4 = (await loadConfig(`${ETH_DIR}/experiment_B4.yaml`)).config;
  assertEquals([b4.loss.temperature, b4.train.batch_size], [1, 1024]);

  const c25 = (await loadConfig(`${ETH_DIR}/experiment_25.yaml`)).config;
  assert(c25.loss.type === "weighted_ntxent");
  assertEquals(c25.loss.mean, {
    type: "random_then_const",
    begin: -1,
    end: 1,
    steps: 200,
    const_value: 0.8,
  });
  assertEquals([c25.loss.sigma, c25.loss.temperature, c25.loss.normalization], [
    0.5,
    0.1,
    "negatives_constant_total_weight",
  ]);

  const c22 = (await loadConfig(`${ETH_DIR}/experiment_22.yaml`)).config;
  assert(c22.loss.type === "weighted_ntxent");
  assertEquals(c22.loss.mean, { type: "exponential", begin: -1, end: 1, factor: 0.98 });

  const c12 = (await loadConfig(`${ETH_DIR}/experiment_12.yaml`)).config;
  assert(c12.loss.type === "weighted_ntxent");
  assertEquals([c12.loss.normalization, c12.loss.sigma], ["none", 0.5]);
  assertEquals(c12.loss.mean, { type: "linear", begin: -1, end: 1, steps: 250 });

  const c37 = (await loadConfig(`${ETH_DIR}/experiment_37.yaml`)).config;
  assert(c37.loss.type === "weighted_ntxent");
  assertEquals([c37.loss.sigma, c37.loss.lower_bound, c37.loss.upper_bound], [1000, -0.9, 0.9]);
  assertEquals(c37.loss.mean, { type: "linear", begin: 0, end: 0, steps: 500 });

  const c40 = (await loadConfig(`${ETH_DIR}/experiment_40.yaml`)).config;
  assert(c40.loss.type === "weighted_ntxent");
  assertEquals(c40.loss.mean, { type: "random_every_iter", begin: -1, end: 1 });

  const cc3 = (await loadConfig(`${ETH_DIR}/experiment_C3.yaml`)).config;
  assert(cc3.loss.type === "weighted_ntxent");
  assertEquals([cc3.data.dataset, cc3.loss.mean], ["cifar100", {
    type: "linear",
    begin: 0.6,
    end: 0.6,
    steps: 100,
  }]);
  assertEquals(cc3.model.input_norm?.std, [0.2673, 0.2564, 0.2762]);
  const cc1 = (await loadConfig(`${ETH_DIR}/experiment_C1.yaml`)).config;
  assertEquals([cc1.data.dataset, cc1.loss.type, cc1.loss.temperature], [
    "cifar100",
    "ntxent",
    0.1,
  ]);
});

Deno.test("the ETH dict is kept verbatim, as PyYAML reads it", async () => {
  const loaded = await loadConfig(`${ETH_DIR}/experiment_12.yaml`);
  assertEquals(ethValue(loaded, "pretraining.projection.hidden_layer_sizes"), "None");
  assertEquals(ethValue(loaded, "pretraining.loss.loss_config.weight_normalization"), "None");
  assertEquals(ethValue(loaded, "pretraining.dataset.transforms.RandomResizedCrop.size"), "32,32");
  assertEquals(ethValue(loaded, "pretraining.training"), true);
  assertEquals(ethValue(loaded, "testing.dataset.val_percentage"), 0.1);
  assertEquals(Object.keys(loaded.eth!), [
    "experiment",
    "seed",
    "encoder_architecture",
    "pretraining",
    "testing",
  ]);
  // PyYAML (YAML 1.1) reads `yes` as true.
  const yes = await loadText(replaceOnce(ETH_1, "use_projection: True", "use_projection: yes"));
  assertEquals(ethValue(yes, "pretraining.projection.use_projection"), true);
  assertEquals(yes.config.head.type, "linear");
});

const ETH_EXAMPLE = `experiment: "experiment_config_example"
seed: 42
encoder_architecture:
  name: "ResNet50"
pretraining:
  training: True
  batch_size: 256
  num_workers_loader: 4
  max_epochs: 50
  projection:
    use_projection: True
    hidden_layer_sizes: None
    projection_dimension: 128
  loss:
    name: WeightedNTXent
    loss_config:
      temperature: 0.1
      weight: GaussianWeight
      weight_normalization: negatives_constant_total_weight # or None
      weight_config:
        sigma: 0.75
        mean: LinearParam
        mean_config:
          begin: -0.99
          end: 0.99
          factor: 0.99
          steps: 50
        b_l: -1
        b_u: 1
  optimizer:
    name: Adam
    config:
      lr: 0.001
      weight_decay: 0.000001
  dataset:
    name: Cifar10
    transforms:
      RandomResizedCrop:
        size: 32,32
        scale: 0.08,1.0
        ratio: 0.75,1.3333333333
      RandomHorizontalFlip:
        p: 0.5
      ColorJitter:
        brightness: 0.4
        contrast: 0.4
        saturation: 0.4
        hue: 0.1
        prob: 0.8
      RandomGrayscale:
        p: 0.2
      GaussianBlur:
        kernel_size: 3
        prob: 0.5
  model_dimension:
    embedding_dimension: 2048
testing:
  testing: True
  testing_every_n_epochs: 25 # or None
  batch_size: 256
  num_workers_loader: 0
  max_epochs: 60 #
  dataset:
    val_percentage: .1
    name: "Cifar10"
  optimizer:
    lr: 0.001
  param_tuning:
    log_min: -6
    log_max: -1
    n_steps: 5
`;

Deno.test("config_example.yaml (the ETH template) loads", async () => {
  const c = (await loadText(ETH_EXAMPLE, "config_example.yaml")).config;
  assert(c.loss.type === "weighted_ntxent");
  assertEquals(c.loss.mean, { type: "linear", begin: -0.99, end: 0.99, steps: 50 });
  assertEquals([c.loss.sigma, c.train.epochs, c.evaluation.testing_every_n_epochs], [0.75, 50, 25]);
});

Deno.test("ETH transforms: defaults, prob as random apply, string parameters", async () => {
  const transforms = `    transforms:
      RandomResizedCrop:
        size: 24
        scale: 0.2,1.0
        prob: 0.9
      RandomHorizontalFlip:
        p: 0.5
        prob: 0.5
      ColorJitter:
        brightness: 0.8
      RandomGrayscale:
        prob: 0.5
      GaussianBlur:
        kernel_size: 5,5
        sigma: 0.5,1.5
  model_dimension:`;
  const start = ETH_1.indexOf("    transforms:");
  const end = ETH_1.indexOf("  model_dimension:");
  const c = (await loadText(
    ETH_1.slice(0, start) + transforms + ETH_1.slice(end + "  model_dimension:".length),
  )).config;
  assertEquals(c.augmentation.crop, {
    size: [24, 24],
    scale: [0.2, 1],
    ratio: [3 / 4, 4 / 3],
    interpolation: "bilinear",
    p: 0.9,
  });
  assertEquals(c.augmentation.flip, { p: 0.25 });
  assertEquals(c.augmentation.color_jitter, {
    brightness: 0.8,
    contrast: 0,
    saturation: 0,
    hue: 0,
    p: 1,
  });
  assertEquals(c.augmentation.grayscale, { p: 0.05 });
  assertEquals(c.augmentation.blur, { kernel_size: 5, sigma: [0.5, 1.5], p: 1 });

  const noBlur = replaceOnce(
    ETH_1,
    "      GaussianBlur:\n        kernel_size: 3\n        prob: 0.5\n",
    "",
  );
  assertEquals((await loadText(noBlur)).config.augmentation.blur, null);
});

Deno.test("ETH testing on: a shortened run is scored at its end only if it got no score", async () => {
  const on = (await loadText(ETH_1)).config.evaluation;
  assertEquals([on.testing_every_n_epochs, on.evaluate_at_end, on.random_init_baseline], [
    100,
    "if_none",
    false,
  ]);
});

Deno.test("ETH testing switched off or None", async () => {
  const off =
    (await loadText(replaceOnce(ETH_1, "  testing: True", "  testing: False"))).config.evaluation;
  assertEquals([off.testing_every_n_epochs, off.evaluate_at_end], [null, false]);
  const none = (await loadText(
    replaceOnce(ETH_1, "testing_every_n_epochs: 100", "testing_every_n_epochs: None"),
  )).config;
  assertEquals([none.evaluation.testing_every_n_epochs, none.evaluation.evaluate_at_end], [
    null,
    false,
  ]);
  const noProjection =
    (await loadText(replaceOnce(ETH_1, "use_projection: True", "use_projection: False"))).config;
  assertEquals(noProjection.head, { type: "none" });
});

Deno.test("ETH config with a wrong type: one error naming file and key path", async () => {
  const bad = replaceOnce(ETH_1, "temperature: 0.05", 'temperature: "abc"');
  const message = await assertThrowsMessage(() => loadText(bad, "config/eth/x.yaml"));
  assertEquals(
    message,
    'config/eth/x.yaml: pretraining.loss.loss_config.temperature: expected number, got "abc"',
  );

  const badBatch = replaceOnce(ETH_1, "batch_size: 256", "batch_size: many");
  await assertThrowsMessage(
    () => loadText(badBatch, "e.yaml"),
    'e.yaml: pretraining.batch_size: expected number, got "many"',
  );
  const badSize = replaceOnce(ETH_1, "size: 32,32", "size: 32x32");
  await assertThrowsMessage(
    () => loadText(badSize, "e.yaml"),
    "pretraining.dataset.transforms.RandomResizedCrop.size: expected a size",
    '"32x32"',
  );
  const badMean = replaceOnce(ETH_25, "mean: RandomThenConst", "mean: SineParam");
  await assertThrowsMessage(
    () => loadText(badMean, "e.yaml"),
    "weight_config.mean: expected",
    "SineParam",
  );
  const badNorm = replaceOnce(
    ETH_25,
    "weight_normalization: negatives_constant_total_weight",
    "weight_normalization: null",
  );
  await assertThrowsMessage(
    () => loadText(badNorm, "e.yaml"),
    "loss_config.weight_normalization: expected",
  );
});

Deno.test("ETH config with an unknown or missing key: error naming it", async () => {
  const extra = replaceOnce(
    ETH_1,
    "  batch_size: 256\n  num_workers_loader: 4",
    "  batch_size: 256\n  batch_sise: 4\n  num_workers_loader: 4",
  );
  const message = await assertThrowsMessage(() => loadText(extra, "config/eth/y.yaml"));
  assertEquals(message, "config/eth/y.yaml: pretraining.batch_sise: unknown key");
  const transform = replaceOnce(ETH_1, "      RandomHorizontalFlip:", "      RandomVerticalFlip:");
  await assertThrowsMessage(
    () => loadText(transform, "t.yaml"),
    "t.yaml: pretraining.dataset.transforms.RandomVerticalFlip: unknown key",
  );
  const noBu = replaceOnce(ETH_25, "        b_u: 1\n", "");
  await assertThrowsMessage(
    () => loadText(noBu, "u.yaml"),
    "u.yaml: pretraining.loss.loss_config.weight_config.b_u: missing",
  );
  const noConst = replaceOnce(ETH_25, "          const_value: 0.8\n", "");
  await assertThrowsMessage(
    () => loadText(noConst, "v.yaml"),
    "weight_config.mean_config.const_value: missing (required by RandomThenConst)",
  );
  const order = ETH_1.replace(
    "      RandomHorizontalFlip:\n        p: 0.5\n",
    "",
  ).replace(
    "      RandomGrayscale:\n",
    "      RandomHorizontalFlip:\n        p: 0.5\n      RandomGrayscale:\n",
  );
  await assertThrowsMessage(() => loadText(order, "o.yaml"), "transforms must come in the order");
  const two = replaceOnce(
    replaceOnce(ETH_1, "seed: 42", "seed: -1"),
    "max_epochs: 60",
    "max_epochs: 0",
  );
  const both = await assertThrowsMessage(
    () => loadText(two, "w.yaml"),
    "w.yaml: 2 problems",
    "  seed:",
    "  testing.max_epochs:",
  );
  assert(both.split("\n").length === 3, both);
  await assertThrowsMessage(() => loadText("a: [1, 2", "s.yaml"), "s.yaml: not valid YAML");
  await assertThrowsMessage(
    () => loadConfig("config/eth/missing.yaml"),
    "config/eth/missing.yaml: cannot read",
  );
});

Deno.test("every SDCLR config and the quickstart load", async () => {
  const files = yamlFiles(SDCLR_DIR);
  assertEquals(files.length, 33, "SDCLR configs");
  for (const file of files) {
    const loaded = await loadConfig(file);
    assertEquals(loaded.format, "ours", file);
    assertEquals(`${SDCLR_DIR}/${loaded.config.experiment}.yaml`, file);
  }
  const sdclr = (await loadConfig(`${SDCLR_DIR}/sdclr_cifar10_split1_D_i.yaml`)).config;
  assertEquals(sdclr.method, {
    name: "sdclr",
    prune_percent: 0.9,
    random_prune_percent: 0,
    dual_bn: true,
  });
  assertEquals(headDims(sdclr), { input: 512, hidden: [512, 512], output: 128 });
  assertEquals(sdclr.data.pretrain_split, "splits/cifar10_imbSub_with_subsets/split1_D_i.npy");
  assertEquals(sdclr.data.few_shot_split, "splits/cifar10_imbSub_with_subsets/split1_S_b.npy");
  assertEquals([sdclr.seed, sdclr.train.epochs, sdclr.train.batch_size, sdclr.loss.temperature], [
    10,
    2000,
    512,
    0.2,
  ]);
  assertEquals(sdclr.optimizer, {
    type: "sgd",
    lr: 0.5,
    momentum: 0.9,
    weight_decay: 1e-4,
    nesterov: false,
  });
  assertEquals(sdclr.lr_schedule, { type: "warmup_cosine", warmup_epochs: 10, final_lr: 1e-6 });
  assertEquals([sdclr.model.architecture, sdclr.model.stem], ["resnet18", "cifar"]);
  assertEquals(sdclr.model.input_norm, INPUT_NORMALIZATIONS.imagenet);
  assertEquals(sdclr.augmentation.crop, {
    size: [32, 32],
    scale: [0.1, 1],
    ratio: [0.75, 4 / 3],
    interpolation: "bicubic",
    p: 1,
  });
  assertEquals(sdclr.augmentation.blur, null);
  assertEquals(sdclr.evaluation.linear?.protocol, "sdclr");
  assertEquals(sdclr.evaluation.few_shot?.milestones, [40, 60]);

  const baseline = (await loadConfig(`${SDCLR_DIR}/simclr_cifar100_split2_D_b.yaml`)).config;
  assertEquals(baseline.method, { name: "simclr" });
  assertEquals(headDims(baseline), { input: 512, hidden: [512], output: 128 });
  assertEquals(
    baseline.data.pretrain_split,
    "splits/cifar100_imbSub_with_subsets/cifar100_split2_D_b.npy",
  );
  assertEquals(baseline.data.train_split, "splits/cifar100/cifar100_trainIdxList.npy");
  assertEquals(baseline.evaluation.groups, {
    by: "rank",
    reference_split: "splits/cifar100_imbSub_with_subsets/cifar100_split2_D_i.npy",
    sizes: [34, 33, 33],
  });

  const imagenet = (await loadConfig(`${SDCLR_DIR}/sdclr_imagenet100_LT.yaml`)).config;
  assertEquals([imagenet.model.architecture, imagenet.model.stem, imagenet.data.image_size], [
    "resnet50",
    "imagenet",
    224,
  ]);
  assertEquals([imagenet.train.epochs, imagenet.train.batch_size, imagenet.loss.temperature], [
    500,
    256,
    0.3,
  ]);
  assert(imagenet.method.name === "sdclr" && imagenet.method.prune_percent === 0.3);
  assertEquals(imagenet.augmentation.crop?.size, [224, 224]);
  assertEquals(imagenet.augmentation.crop?.scale, [0.08, 1]);
  assertEquals(headDims(imagenet), { input: 2048, hidden: [2048, 2048], output: 128 });

  const quick = (await loadConfig("config/quickstart.yaml")).config;
  assertEquals([quick.data.dir, quick.train.batch_size, quick.optimizer.type], [
    "data/cifar10-mini",
    128,
    "adam",
  ]);
  assertEquals(encoderFeatureDim(quick.model), 64);
  assert(quick.loss.type === "weighted_ntxent" && quick.loss.mean.type === "linear");
  assertEquals(quick.evaluation.knn, { k: 20, temperature: 0.1 });
  assertEquals(quick.evaluation.linear?.protocol, "eth");
  assertEquals(quick.evaluation.random_init_baseline, true);
  assertEquals(quick.train.epochs, 20);
});

Deno.test("config/sdclr matches tools/make_sdclr_configs.ts", () => {
  const generated = sdclrConfigs();
  assertEquals(generated.map((g) => `${SDCLR_DIR}/${g.file}`).sort(), yamlFiles(SDCLR_DIR));
  for (const config of generated) {
    assertEquals(
      Deno.readTextFileSync(`${SDCLR_DIR}/${config.file}`),
      renderConfig(config),
      config.file,
    );
  }
});

/** The shared SDCLR split files, beside the repository as `../shared` (not in a clean clone). */
const SHARED_SPLITS = new URL("../../shared/datasets/sdclr-splits", import.meta.url).pathname;
const haveSharedSplits = (() => {
  try {
    return Deno.statSync(SHARED_SPLITS).isDirectory;
  } catch {
    return false;
  }
})();
if (!haveSharedSplits) {
  console.log(
    `config_test: the split-file check is ignored: no ${SHARED_SPLITS} (../shared beside the repository)`,
  );
}

Deno.test({
  name: "SDCLR split paths name real files of sdclr-splits",
  ignore: !haveSharedSplits,
  fn: async () => {
    const absent = new Set(["imagenet-100/ImageNet_100_train.txt"]); // large; not shipped
    let checked = 0;
    for (const file of yamlFiles(SDCLR_DIR)) {
      const c = (await loadConfig(file)).config;
      const paths = [
        c.data.pretrain_split,
        c.data.train_split,
        c.data.val_split,
        c.data.few_shot_split,
        c.data.test_split,
      ];
      for (const path of [...paths, c.evaluation.groups?.reference_split]) {
        if (path == null) continue;
        assert(path.startsWith("splits/"), path);
        const relative = path.slice("splits/".length);
        if (absent.has(relative)) continue;
        Deno.statSync(`${SHARED_SPLITS}/${relative}`);
        checked++;
      }
    }
    assertEquals(checked, 30 * 5 + 3 * 5, "split references checked");
  },
});

const MINIMAL = { experiment: "tiny", data: { dataset: "cifar10" }, train: { epochs: 2 } };

Deno.test("our format: defaults, strictness, cross checks, idempotence", async () => {
  const c = parseExperimentConfig(MINIMAL, "min.yaml");
  assertEquals([c.seed, c.device, c.data.dir, c.data.image_size], [0, "auto", "data", 32]);
  assertEquals([c.model.architecture, c.model.stem, c.model.width_multiplier], [
    "resnet18",
    "cifar",
    1,
  ]);
  assertEquals(c.head, { type: "simclr", hidden_dim: null, output_dim: 128 });
  assertEquals(c.loss, { type: "ntxent", temperature: 0.2 });
  assertEquals(c.optimizer, {
    type: "sgd",
    lr: 0.5,
    momentum: 0.9,
    weight_decay: 1e-4,
    nesterov: false,
  });
  assertEquals(c.train, {
    epochs: 2,
    batch_size: 512,
    drop_last: false,
    checkpoint_every_n_epochs: 10,
    steps_per_run: DEFAULT_STEPS_PER_RUN,
    precision: "float32",
    loss_scale: "dynamic",
  });
  assertEquals(c.augmentation, { recipe: "sdclr", ...recipeParams("sdclr", 32) });
  assertEquals(c.evaluation.linear?.protocol, "eth");

  await assertThrowsMessage(
    () => parseExperimentConfig({ ...MINIMAL, model: { widht_multiplier: 2 } }, "m.yaml"),
    "m.yaml: model.widht_multiplier: unknown key",
  );
  await assertThrowsMessage(
    () =>
      parseExperimentConfig({
        ...MINIMAL,
        loss: { type: "weighted_ntxent", temperature: 0.1, sigma: 0.5 },
      }, "m.yaml"),
    "m.yaml: loss.mean: ",
  );
  await assertThrowsMessage(
    () => parseExperimentConfig({ ...MINIMAL, optimizer: { type: "rmsprop", lr: 1 } }, "m.yaml"),
    'm.yaml: optimizer.type: expected "sgd" | "adam" | "adamw" | "lars", got "rmsprop"',
  );
  await assertThrowsMessage(
    () =>
      parseExperimentConfig({ ...MINIMAL, method: { name: "sdclr", prune_percent: 1 } }, "m.yaml"),
    "method.prune_percent: ",
    "got 1",
  );
  await assertThrowsMessage(
    () =>
      parseExperimentConfig({
        ...MINIMAL,
        method: { name: "sdclr", prune_percent: 0.3, random_prune_percent: 0.5 },
      }, "m.yaml"),
    "method.random_prune_percent: must not exceed prune_percent (0.3), got 0.5",
  );
  await assertThrowsMessage(
    () =>
      parseExperimentConfig(
        { ...MINIMAL, data: { dataset: "list", pretrain_split: "a.npy" } },
        "l.yaml",
      ),
    "l.yaml: 4 problems",
    "data.image_size: required for dataset list",
    'data.pretrain_split: expected a .txt file for dataset list, got "a.npy"',
    "data.test_split: required",
  );
  await assertThrowsMessage(
    () => parseExperimentConfig({ ...MINIMAL, model: { width_multiplier: 0.3 } }, "w.yaml"),
    "model.width_multiplier: 64 × width_multiplier must be a whole number of channels, got 0.3",
  );
  await assertThrowsMessage(
    () => parseExperimentConfig({ ...MINIMAL, evaluation: { few_shot: {} } }, "f.yaml"),
    "data.few_shot_split: required by evaluation.few_shot",
  );
  await assertThrowsMessage(
    () => parseExperimentConfig({ ...MINIMAL, model: { input_norm: "mnist" } }, "n.yaml"),
    'n.yaml: model.input_norm: expected "imagenet" | "cifar10" | "cifar100" | "none"',
  );
  await assertThrowsMessage(
    () => parseExperimentConfig({ ...MINIMAL, experiment: "a/b" }, "e.yaml"),
    "experiment: expected a name",
  );

  // μ as a plain number; partial augmentation params merge over the recipe.
  const weighted = parseExperimentConfig({
    ...MINIMAL,
    loss: { type: "weighted_ntxent", temperature: 0.1, sigma: 0.5, mean: 0.6 },
    augmentation: { recipe: "eth", color_jitter: { p: 0.5 }, blur: null },
  }, "w.yaml");
  assert(weighted.loss.type === "weighted_ntxent");
  assertEquals(weighted.loss.mean, { type: "const", value: 0.6 });
  assertEquals(weighted.augmentation.color_jitter, {
    brightness: 0.4,
    contrast: 0.4,
    saturation: 0.4,
    hue: 0.1,
    p: 0.5,
  });
  assertEquals(weighted.augmentation.blur, null);
  const noneRecipe = parseExperimentConfig({
    ...MINIMAL,
    augmentation: { recipe: "none", flip: {} },
  }, "n.yaml");
  assertEquals([noneRecipe.augmentation.flip, noneRecipe.augmentation.crop], [{ p: 0.5 }, null]);

  // Parsing a parsed config changes nothing (a run can store and reload it).
  const all: ExperimentConfig[] = [c, weighted];
  for (
    const file of [
      ...yamlFiles(SDCLR_DIR).slice(0, 3),
      `${ETH_DIR}/experiment_25.yaml`,
      "config/quickstart.yaml",
    ]
  ) {
    all.push((await loadConfig(file)).config);
  }
  for (const config of all) {
    assertEquals(
      parseExperimentConfig(structuredClone(config), "again"),
      config,
      config.experiment,
    );
  }
});

Deno.test("overrides: --set, --epochs, --device, --data-dir", async () => {
  const eth = await loadConfig(`${ETH_DIR}/experiment_25.yaml`);
  const changed = applyOverrides(eth, {
    set: [
      "loss.temperature=0.3",
      "augmentation.crop.scale[0]=0.2",
      "evaluation.knn.k=50",
      "loss.mean.steps=20",
    ],
    epochs: 3,
    device: "cpu",
    dataDir: "/tmp/cifar",
  });
  const c = changed.config;
  assert(c.loss.type === "weighted_ntxent");
  assertEquals([c.loss.temperature, c.train.epochs, c.device, c.data.dir], [
    0.3,
    3,
    "cpu",
    "/tmp/cifar",
  ]);
  assertEquals(c.augmentation.crop?.scale, [0.2, 1]);
  assertEquals(c.evaluation.knn, { k: 50, temperature: 0.1 });
  assertEquals(c.loss.mean, {
    type: "random_then_const",
    begin: -1,
    end: 1,
    steps: 20,
    const_value: 0.8,
  });
  assertEquals(changed.overrides, [
    "loss.temperature=0.3",
    "augmentation.crop.scale[0]=0.2",
    "evaluation.knn.k=50",
    "loss.mean.steps=20",
    "train.epochs=3",
    'device="cpu"',
    'data.dir="/tmp/cifar"',
  ]);
  assertEquals(eth.config.train.epochs, 500, "the original stays unchanged");
  assertEquals(changed.eth, eth.eth, "the ETH dict is kept for the log");

  // Switching a variant keeps the shared keys and drops the others.
  const ntxent = applyOverrides(eth, { set: ["loss.type=ntxent"] }).config;
  assertEquals(ntxent.loss, { type: "ntxent", temperature: 0.1 });
  const linearMean = applyOverrides(eth, { set: ["loss.mean.type=linear", "loss.mean.steps=10"] });
  await assertThrowsMessage(
    () => applyOverrides(eth, { set: ["loss.mean.type=exponential"] }),
    "loss.mean.factor: missing (expected number)",
  );
  assert(linearMean.config.loss.type === "weighted_ntxent");
  assertEquals(linearMean.config.loss.mean, { type: "linear", begin: -1, end: 1, steps: 10 });
  const sdclrAug = applyOverrides(eth, { set: ["augmentation.recipe=sdclr"] }).config;
  assertEquals(sdclrAug.augmentation, { recipe: "sdclr", ...recipeParams("sdclr", 32) });
  const sgd = applyOverrides(eth, { set: ["optimizer.type=sgd", "optimizer.momentum=0.8"] }).config;
  assertEquals(sgd.optimizer, {
    type: "sgd",
    lr: 1e-3,
    momentum: 0.8,
    weight_decay: 1e-6,
    nesterov: false,
  });

  // A key of a defaulted section keeps the section's other defaults.
  const minimal = parseConfigDocument(MINIMAL, "min.yaml");
  const sdclr = applyOverrides(minimal, { set: ["method.name=sdclr", "optimizer.lr=0.05"] });
  assertEquals(sdclr.config.method, {
    name: "sdclr",
    prune_percent: 0.9,
    random_prune_percent: 0,
    dual_bn: true,
  });
  assertEquals(sdclr.config.optimizer, {
    type: "sgd",
    lr: 0.05,
    momentum: 0.9,
    weight_decay: 1e-4,
    nesterov: false,
  });
  assertEquals(
    applyOverrides(minimal, { set: ["data.dataset=cifar100", "head={type: linear}"] }).config.head,
    {
      type: "linear",
      output_dim: 128,
    },
  );
  // The default loss is NT-Xent, which has no μ.
  await assertThrowsMessage(
    () => applyOverrides(minimal, { set: ["loss.mean=0.4"] }),
    "loss.mean: unknown key",
  );
});

Deno.test("bad overrides fail clearly", async () => {
  const eth = await loadConfig(`${ETH_DIR}/experiment_1.yaml`);
  const source = `${ETH_DIR}/experiment_1.yaml (with --set optimizer.momentun=0.9)`;
  const unknown = await assertThrowsMessage(() =>
    applyOverrides(eth, { set: ["optimizer.momentun=0.9"] })
  );
  assertEquals(unknown, `${source}: optimizer.momentun: unknown key`);
  await assertThrowsMessage(
    () => applyOverrides(eth, { set: ["trian.epochs=3"] }),
    "trian: unknown key",
  );
  await assertThrowsMessage(
    () => applyOverrides(eth, { set: ["loss.temperature=abc"] }),
    'loss.temperature: expected number, got "abc"',
  );
  await assertThrowsMessage(
    () => applyOverrides(eth, { set: ["loss.temperature"] }),
    "--set loss.temperature: expected key.path=value",
  );
  await assertThrowsMessage(() => applyOverrides(eth, { set: ["a..b=1"] }), "expected a key path");
  await assertThrowsMessage(
    () => applyOverrides(eth, { set: ["seed.x=1"] }),
    "--set seed.x=1: seed: is 42, not a mapping",
  );
  await assertThrowsMessage(
    () => applyOverrides(eth, { set: ["augmentation.crop.scale[5]=1"] }),
    "augmentation.crop.scale[5]: no such list item",
  );
  await assertThrowsMessage(
    () => applyOverrides(eth, { epochs: 0 }),
    "(with --epochs 0): train.epochs: ",
    "got 0",
  );
  await assertThrowsMessage(
    () => applyOverrides(eth, { epochs: 2.5 }),
    "train.epochs: expected int, got 2.5",
  );
  await assertThrowsMessage(
    () => applyOverrides(eth, { device: "tpu" }),
    'device: expected "cpu" | "cuda" | "auto", got "tpu"',
  );
  await assertThrowsMessage(
    () => loadConfig(`${ETH_DIR}/experiment_1.yaml`, { set: ["loss.temperature=-1"] }),
    "loss.temperature: ",
    "got -1",
  );
  assert(new ConfigError("f", ["a: b"]).message === "f: a: b");
  assertClose(eth.config.loss.temperature, 0.05);
});

Deno.test("the schema refuses what the code cannot do and every key nothing reads", async () => {
  const refused = async (document: Record<string, unknown>, ...parts: string[]) =>
    await assertThrowsMessage(() => parseExperimentConfig(document, "r.yaml"), ...parts);
  const sdclrProbe = { protocol: "sdclr", epochs: 4, milestones: [2] };
  await refused(
    {
      ...MINIMAL,
      loss: {
        type: "weighted_ntxent",
        temperature: 0.1,
        sigma: 0.5,
        mean: 0.6,
        out_of_bounds_factor: 0,
      },
    },
    "loss.out_of_bounds_factor: too small: expected number to be >0, got 0",
  );
  await refused(
    { ...MINIMAL, method: { name: "sdclr", dual_bn: false } },
    "method.dual_bn: expected true: the SDCLR graph always gives the pruned branch its own BN",
    "got false",
  );
  // Splits nothing reads.
  await refused(
    { ...MINIMAL, data: { dataset: "cifar10", val_split: "v.npy" } },
    "data.val_split: only the SDCLR probes",
    "the ETH protocol splits val_fraction off its training set; remove it",
  );
  await refused(
    { ...MINIMAL, data: { dataset: "cifar10", few_shot_split: "s.npy" } },
    "data.few_shot_split: only evaluation.few_shot reads it, and it is null; remove it",
  );
  await refused(
    {
      ...MINIMAL,
      data: { dataset: "cifar10", train_split: "t.npy", few_shot_split: "s.npy" },
      evaluation: { linear: null, few_shot: {} },
    },
    "data.train_split: only evaluation.linear and evaluation.knn read it, and both are null",
  );
  await refused(
    { ...MINIMAL, data: { dataset: "cifar10", eval_resize: 36 } },
    "data.eval_resize: not used for cifar10 (32x32 images); remove it, got 36",
  );
  await refused(
    { ...MINIMAL, data: { dataset: "cifar10", full_image_max_side: 64 } },
    "data.full_image_max_side: not used for cifar10",
  );
  // Evaluation keys with nothing to act on.
  await refused(
    {
      ...MINIMAL,
      evaluation: {
        linear: null,
        knn: {},
        groups: { by: "rank", reference_split: "d.npy", sizes: [5, 5] },
      },
    },
    "evaluation.groups: groups split the per-class accuracies of evaluation.linear or few_shot",
  );
  await refused(
    { ...MINIMAL, evaluation: { linear: null, random_init_baseline: true } },
    "evaluation.random_init_baseline: needs something to evaluate",
  );
  await refused(
    { ...MINIMAL, evaluation: { linear: null, testing_every_n_epochs: 5 } },
    "evaluation.testing_every_n_epochs: needs something to evaluate",
  );
  // The SDCLR probes' validation period and selection.
  await refused(
    {
      ...MINIMAL,
      data: { dataset: "cifar10", val_split: "v.npy" },
      evaluation: { linear: { ...sdclrProbe, test_freq: 5 } },
    },
    "evaluation.linear.test_freq: no epoch of the 4 would be validated; expected at most epochs, got 5",
  );
  await refused(
    { ...MINIMAL, evaluation: { linear: { ...sdclrProbe, test_freq: 2, select_on: "top5" } } },
    "r.yaml: 2 problems",
    "evaluation.linear.test_freq: validation needs data.val_split",
    "evaluation.linear.select_on: selection needs data.val_split",
  );
  // Image files are pretrained from whole images of different sizes: a crop must fix the size.
  await refused(
    {
      ...MINIMAL,
      data: {
        dataset: "list",
        image_size: 64,
        pretrain_split: "p.txt",
        test_split: "t.txt",
        train_split: "a.txt",
      },
      augmentation: { recipe: "none" },
    },
    "augmentation.crop: list images differ in size and pretraining crops from the whole image; " +
      "expected a crop with p 1, got null",
  );
  // CUDA options the pinned onnxruntime-node cannot pass.
  await refused(
    { ...MINIMAL, runtime: { use_tf32: false } },
    "runtime.use_tf32: false cannot be applied: onnxruntime-node 1.29.0 passes only deviceId",
  );
  await refused(
    { ...MINIMAL, runtime: { cudnn_conv_algo_search: "HEURISTIC" } },
    'runtime.cudnn_conv_algo_search: "HEURISTIC" cannot be applied',
  );
  await refused({ ...MINIMAL, runtime: { threads: -1 } }, "runtime.threads: ");

  // What is read is accepted: few-shot alone (its score stands in for the linear one).
  const fewShotOnly = parseExperimentConfig({
    ...MINIMAL,
    data: { dataset: "cifar10", val_split: "v.npy", few_shot_split: "s.npy" },
    evaluation: { linear: null, few_shot: { epochs: 10, milestones: [5], test_freq: 5 } },
  }, "f.yaml");
  assertEquals(fewShotOnly.evaluation.few_shot?.test_freq, 5);
  assertEquals(fewShotOnly.runtime, {
    threads: 0,
    memory_arena: true,
    blocked_convs: true,
    device_id: 0,
    cudnn_conv_algo_search: "EXHAUSTIVE",
    use_tf32: true,
    prefer_nhwc: false,
    arena_extend_strategy: "kNextPowerOfTwo",
  });
  assertEquals(fewShotOnly.data.full_image_max_side, null);
});

Deno.test("SDCLR configs validate as the original's scripts: test_freq, top-5 on ImageNet, whole images", async () => {
  for (const file of yamlFiles(SDCLR_DIR)) {
    const c = (await loadConfig(file)).config;
    const linear = c.evaluation.linear!;
    const fewShot = c.evaluation.few_shot!;
    assert(linear.protocol === "sdclr", file);
    if (c.data.dataset === "list") {
      // imagenet-100-res50-LT.sh: --test_freq 2 (linear), 10 (few-shot); train_imagenet.py keeps the best top-5.
      assertEquals([linear.test_freq, fewShot.test_freq], [2, 10], file);
      assertEquals([linear.select_on, fewShot.select_on], ["top5", "top5"], file);
      assertEquals([c.data.full_image_max_side, c.data.eval_resize, c.data.image_size], [
        320,
        256,
        224,
      ]);
    } else {
      // cifar-10-LT.sh / cifar-100-LT.sh: the few-shot run passes --test_freq 5, the linear run the default 1.
      assertEquals([linear.test_freq, fewShot.test_freq], [1, 5], file);
      assertEquals([linear.select_on, fewShot.select_on], ["top1", "top1"], file);
    }
  }
});

Deno.test("runtime section: --threads and --set reach it; resuming ignores it", async () => {
  const loaded = await loadConfig("config/quickstart.yaml", {
    threads: 2,
    set: ["runtime.memory_arena=false"],
  });
  assertEquals([loaded.config.runtime.threads, loaded.config.runtime.memory_arena], [2, false]);
  assertEquals(loaded.overrides, ["runtime.memory_arena=false", "runtime.threads=2"]);
  const { configHash } = await import("../src/train/paths.ts");
  assertEquals(configHash(loaded), configHash(await loadConfig("config/quickstart.yaml")));
  const { sessionOptionsFromConfig } = await import("../src/runtime/session_options.ts");
  const session = sessionOptionsFromConfig({ device: "cpu", ...loaded.config.runtime });
  assertEquals([session.device, session.threads, session.memoryArena], ["cpu", 2, false]);
});

Deno.test("the ETH config of a shortened run carries the values it ran with", async () => {
  const { ethEffectiveConfig } = await import("../src/config/mod.ts");
  const loaded = await loadConfig(`${ETH_DIR}/experiment_2.yaml`, {
    epochs: 3,
    set: ["evaluation.linear.epochs=2", "evaluation.testing_every_n_epochs=null"],
  });
  const effective = ethEffectiveConfig(loaded.eth!, loaded.config) as {
    pretraining: { max_epochs: number; batch_size: number };
    testing: { max_epochs: number; testing_every_n_epochs: unknown; batch_size: number };
  };
  assertEquals(effective.pretraining.max_epochs, 3);
  assertEquals(effective.testing.max_epochs, 2);
  assertEquals(effective.testing.testing_every_n_epochs, "None");
  // Untouched keys stay as the file has them; the loaded dict itself is not changed.
  assertEquals([effective.pretraining.batch_size, effective.testing.batch_size], [256, 256]);
  assertEquals(ethValue(loaded, "pretraining.max_epochs"), 500);
  const unchanged = await loadConfig(`${ETH_DIR}/experiment_2.yaml`);
  assertEquals(ethEffectiveConfig(unchanged.eth!, unchanged.config), unchanged.eth);
});

Deno.test("train.steps_per_run and train.precision: defaults, --set, bad values", async () => {
  const c = parseExperimentConfig(MINIMAL, "min.yaml");
  assertEquals([c.train.steps_per_run, c.train.precision, c.train.loss_scale], [
    DEFAULT_STEPS_PER_RUN,
    "float32",
    "dynamic",
  ]);
  const loaded = parseConfigDocument(structuredClone(MINIMAL), "min.yaml");
  const set = applyOverrides(loaded, {
    set: ["train.steps_per_run=3", "train.precision=float16_simulated", "train.loss_scale=1024"],
  }).config.train;
  assertEquals([set.steps_per_run, set.precision, set.loss_scale], [3, "float16_simulated", 1024]);
  await assertThrowsMessage(
    () => applyOverrides(loaded, { set: ["train.steps_per_run=0"] }),
    "train.steps_per_run",
  );
  await assertThrowsMessage(
    () =>
      parseExperimentConfig({ ...MINIMAL, train: { epochs: 1, precision: "float8" } }, "p.yaml"),
    "p.yaml: train.precision",
    "float16_simulated",
  );
  await assertThrowsMessage(
    () =>
      parseExperimentConfig({ ...MINIMAL, train: { epochs: 1, precision: "bfloat16" } }, "b.yaml"),
    "b.yaml: train.precision: bfloat16 is not supported",
  );
  await assertThrowsMessage(
    () => parseExperimentConfig({ ...MINIMAL, train: { epochs: 1, loss_scale: -2 } }, "s.yaml"),
    "s.yaml: train.loss_scale",
  );
});
