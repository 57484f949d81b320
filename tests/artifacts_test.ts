/**
 * Training artifacts: tiny configs export graphs that load and run in ORT
 * (CPU) with the manifest's shapes and pass onnx 1.12's full checker; the
 * training model's gradients agree with the fused step's update; the
 * checkpoint holds the initial state; config errors name the key; the
 * committed graphs/ match a fresh export of the default models.
 */
import { join } from "node:path";
import {
  assert,
  assertAllClose,
  assertClose,
  assertEquals,
  assertThrowsMessage,
} from "./assert.ts";
import {
  type ArtifactManifest,
  buildArtifactGraphs,
  GRAPH_FILES,
  initialTrainingState,
  type ManifestValue,
  writeArtifacts,
} from "../src/artifacts/mod.ts";
import { loadCheckpoint } from "../src/artifacts/checkpoint.ts";
import { loadConfig, parseConfigText } from "../src/config/mod.ts";
import type {
  ExperimentConfig,
  OptimizerConfig as OptimizerSection,
  WeightedNtXentConfig,
} from "../src/config/mod.ts";
import {
  contrastiveSpecFromConfig,
  encoderFromConfig,
  lossFromConfig,
  optimizerFromConfig,
} from "../src/methods/from_config.ts";
import { DEFAULT_EXPORTS, exportConfig } from "../src/cli/export_graphs.ts";
import { main } from "../mod.ts";
import type { HostTensor } from "../src/runtime/host_tensor.ts";
import { Session } from "../src/runtime/session.ts";
import { Rng } from "../src/util/rng.ts";

import { PYTHON, pythonOnnxAvailable } from "./python_onnx.ts";
/** The repository root, so the test runs from any working directory. */
const ROOT = new URL("../", import.meta.url).pathname;
const BATCH = 4;

const TINY_MODEL =
  "{architecture: resnet18, stem: cifar, width_multiplier: 0.0625, input_norm: imagenet}";

function tinyYaml(name: string, sections: string, model = TINY_MODEL): string {
  return [
    `experiment: ${name}`,
    "seed: 3",
    "data: {dataset: cifar10}",
    `train: {epochs: 1, batch_size: ${BATCH}}`,
    `model: ${model}`,
    sections,
  ].join("\n");
}

/** SimCLR + weighted loss + Adam, SDCLR + NT-Xent + SGD (momentum), SimCLR + plain SGD. */
const TINY: Record<string, string> = {
  tiny_weighted_adam: tinyYaml(
    "tiny_weighted_adam",
    [
      "head: {type: simclr, hidden_dim: 16, output_dim: 8}",
      "loss: {type: weighted_ntxent, temperature: 0.1, sigma: 0.5, mean: 0.2, normalization: none}",
      "optimizer: {type: adam, lr: 0.001, weight_decay: 0.000001}",
    ].join("\n"),
  ),
  tiny_sdclr_sgd: tinyYaml(
    "tiny_sdclr_sgd",
    [
      "head: {type: sdclr, hidden_dim: 16, output_dim: 8}",
      "method: {name: sdclr}",
      "loss: {type: ntxent, temperature: 0.2}",
      "optimizer: {type: sgd, lr: 0.5, momentum: 0.9, weight_decay: 0.0001}",
    ].join("\n"),
  ),
  tiny_plain_sgd: tinyYaml(
    "tiny_plain_sgd",
    [
      "head: {type: linear, output_dim: 8}",
      "loss: {type: ntxent, temperature: 0.5}",
      "optimizer: {type: sgd, lr: 0.5, momentum: 0, weight_decay: 0}",
    ].join("\n"),
  ),
};

function tinyConfig(name: keyof typeof TINY): ExperimentConfig {
  return parseConfigText(TINY[name], `${name}.yaml`).config;
}

function randomTensor(shape: number[], rng: Rng, draw = () => rng.normal()): HostTensor {
  const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
  for (let i = 0; i < data.length; i++) data[i] = draw();
  return { dtype: "float32", shape, data };
}

/** Feeds for every input of a manifest graph: checkpoint values, random views/masks, scalars. */
function feedsFor(
  inputs: ManifestValue[],
  state: Map<string, HostTensor>,
  scalars: Record<string, number>,
  rng: Rng,
  extra: Record<string, HostTensor> = {},
): Record<string, HostTensor> {
  const feeds: Record<string, HostTensor> = {};
  for (const input of inputs) {
    const shape = input.shape.map((d) => (typeof d === "number" ? d : BATCH));
    if (extra[input.name]) feeds[input.name] = extra[input.name];
    else if (state.has(input.name)) feeds[input.name] = state.get(input.name)!;
    else if (input.role === "view" || input.role === "images") {
      feeds[input.name] = randomTensor(shape, rng, () => rng.uniform());
    } else if (input.role === "mask") {
      feeds[input.name] = randomTensor(shape, rng, () => (rng.bernoulli(0.5) ? 1 : 0));
    } else if (input.role === "scalar") {
      const value = scalars[input.name];
      assert(value !== undefined, `no value for scalar input ${input.name}`);
      feeds[input.name] = { dtype: "float32", shape: [], data: Float32Array.of(value) };
    } else {
      throw new Error(`test has no feed for ${input.role} ${input.name}`);
    }
  }
  return feeds;
}

function checkShapes(out: Record<string, HostTensor>, outputs: ManifestValue[], file: string) {
  assertEquals(Object.keys(out).sort(), outputs.map((o) => o.name).sort(), `${file} outputs`);
  for (const o of outputs) {
    const expected = o.shape.map((d) => (typeof d === "number" ? d : BATCH));
    assertEquals(out[o.name].shape, expected, `${file} ${o.name} shape`);
  }
}

const SCALARS = { lr: 0.5, step: 1, mu: 0.2 };

/** Views and masks drawn once, so every graph of a config sees the same batch. */
function fixedBatch(inputs: ManifestValue[], rng: Rng): Record<string, HostTensor> {
  const batch: Record<string, HostTensor> = {};
  for (const v of inputs) {
    if (v.role === "view") {
      batch[v.name] = randomTensor(v.shape as number[], rng, () => rng.uniform());
    }
    if (v.role === "mask") {
      batch[v.name] = randomTensor(v.shape as number[], rng, () => (rng.bernoulli(0.3) ? 0 : 1));
    }
  }
  return batch;
}

Deno.test("tiny configs: every exported graph runs in ORT CPU with the manifest's shapes; optimizer_model on training_model's gradients equals train_step", async () => {
  const dir = await Deno.makeTempDir({ prefix: "artifacts_" });
  try {
    for (const name of ["tiny_weighted_adam", "tiny_sdclr_sgd"] as const) {
      const result = await writeArtifacts(tinyConfig(name), dir);
      const manifest: ArtifactManifest = JSON.parse(
        await Deno.readTextFile(join(result.dir, "manifest.json")),
      );
      assertEquals(manifest, JSON.parse(JSON.stringify(result.manifest)), `${name} manifest`);
      for (const file of [...GRAPH_FILES, "checkpoint.safetensors"]) {
        assertEquals(manifest.files[file], (await Deno.stat(join(result.dir, file))).size, file);
      }
      const state = (await loadCheckpoint(join(result.dir, "checkpoint.safetensors"))).tensors;
      assertEquals(Object.keys(state).length, manifest.checkpoint_tensors, `${name} checkpoint`);
      const values = new Map(Object.entries(state));
      const rng = new Rng(11, name);
      const given = fixedBatch(manifest.graphs["train_step.onnx"].inputs, rng);
      const outputs: Record<string, Record<string, HostTensor>> = {};
      for (const file of GRAPH_FILES) {
        const graph = manifest.graphs[file];
        const s = await Session.create(await Deno.readFile(join(result.dir, file)), { threads: 2 });
        const out = await s.run(feedsFor(graph.inputs, values, SCALARS, rng, given));
        await s.release();
        checkShapes(out, graph.outputs, `${name}/${file}`);
        for (const o of graph.outputs) {
          const data = out[o.name].data as Float32Array;
          assert(data.every(Number.isFinite), `${name}/${file}: ${o.name} has non-finite values`);
          if (o.role === "gradient") given[o.name] = out[o.name];
        }
        outputs[file] = out;
      }
      const loss = outputs["train_step.onnx"].loss.data[0] as number;
      // The loss over 2·4 rows of unrelated embeddings is near ln 7 ≈ 1.95.
      assert(loss > 0.5 && loss < 10, `${name}: train_step loss ${loss}`);
      assertClose(outputs["training_model.onnx"].loss.data[0] as number, loss, 1e-5);
      if (name !== "tiny_sdclr_sgd") continue;
      // SGD is linear in the gradient, so the two routes agree to rounding (Adam's first step,
      // ≈ lr·sign(g), would not for the near-zero gradients of biases followed by BN).
      let updates = 0;
      for (const o of manifest.graphs["optimizer_model.onnx"].outputs) {
        assertAllClose(
          outputs["optimizer_model.onnx"][o.name].data as Float32Array,
          outputs["train_step.onnx"][o.name].data as Float32Array,
          1e-5,
          1e-6,
          o.name,
        );
        updates++;
      }
      assertEquals(
        updates,
        2 *
          manifest.graphs["training_model.onnx"].outputs.filter((o) => o.role === "gradient")
            .length,
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("manifest roles: inputs and outputs of each graph", () => {
  const built = buildArtifactGraphs(tinyConfig("tiny_sdclr_sgd"));
  const sorted = (o: Record<string, number>) =>
    Object.fromEntries(Object.entries(o).sort(([a], [b]) => a < b ? -1 : 1));
  const roles = (file: string, side: "inputs" | "outputs") => {
    const count: Record<string, number> = {};
    for (const v of built.graphs[file].manifest[side]) count[v.role] = (count[v.role] ?? 0) + 1;
    return sorted(count);
  };
  const params = built.store.params().length;
  const buffers = built.store.buffers().length;
  const convs = built.store.convWeights("encoder.").length;
  // ResNet-18: 20 convs (stem, 16 in blocks, 3 downsample), each followed by a BN; SDCLR head:
  // 3 linears (fc1 with bias) and 3 BNs. Dual BN doubles every BN's weight, bias and statistics.
  assertEquals(convs, 20);
  assertEquals(params, 20 + 20 * 2 * 2 + 4 + 3 * 2 * 2);
  assertEquals(buffers, (20 + 3) * 2 * 2);
  assertEquals(
    roles("training_model.onnx", "inputs"),
    sorted({
      view: 2,
      mask: convs,
      param: params,
      buffer: buffers,
    }),
  );
  assertEquals(
    roles("training_model.onnx", "outputs"),
    sorted({
      loss: 1,
      gradient: params,
      buffer_update: buffers,
    }),
  );
  assertEquals(
    roles("optimizer_model.onnx", "inputs"),
    sorted({
      scalar: 1,
      param: params,
      gradient: params,
      optimizer_state: params,
    }),
  );
  assertEquals(
    roles("train_step.onnx", "outputs"),
    sorted({
      loss: 1,
      param_update: params,
      optimizer_state_update: params,
      buffer_update: buffers,
      per_anchor_loss: 1,
    }),
  );
  // The eval model runs the dense branch only: BN set 0, no masks, any batch.
  const evalInputs = built.graphs["eval_model.onnx"].manifest.inputs;
  assert(evalInputs.every((v) => !v.name.includes("bn_list.1")), "eval model uses BN set 1");
  assertEquals(evalInputs[0], {
    name: "images",
    shape: ["batch", 3, 32, 32],
    dtype: "float32",
    role: "images",
  });
  const evalOutputs = built.graphs["eval_model.onnx"].manifest.outputs;
  assertEquals(evalOutputs.map((o) => [o.name, o.shape]), [
    ["features", ["batch", 32]],
    ["projections", ["batch", 8]],
  ]);
});

Deno.test("plain SGD: train_step's new parameters are p − lr·grad of training_model", async () => {
  const built = buildArtifactGraphs(tinyConfig("tiny_plain_sgd"));
  const state = initialTrainingState(built.step, 3);
  const rng = new Rng(5);
  const views = fixedBatch(built.graphs["train_step.onnx"].manifest.inputs, rng);
  const lr = 0.5;
  const run = async (file: string) => {
    const { graph, manifest } = built.graphs[file];
    const s = await Session.create(graph, { threads: 2 });
    const out = await s.run(feedsFor(manifest.inputs, state, { lr }, rng, views));
    await s.release();
    return out;
  };
  const training = await run("training_model.onnx");
  const step = await run("train_step.onnx");
  assertClose(step.loss.data[0] as number, training.loss.data[0] as number, 1e-6);
  let largest = 0;
  for (const p of built.store.params()) {
    const before = state.get(p.name)!.data as Float32Array;
    const grad = training[`${p.name}_grad`].data as Float32Array;
    const expected = before.map((v, i) => v - lr * grad[i]);
    assertAllClose(step[`${p.name}_new`].data as Float32Array, expected, 1e-5, 1e-6, p.name);
    largest = Math.max(largest, ...grad.map(Math.abs));
  }
  assert(largest > 1e-3, `gradients are all near zero (largest ${largest}): nothing was checked`);
  for (const b of built.store.buffers()) {
    const name = `${b.name}_new`;
    assertAllClose(
      step[name].data as Float32Array,
      training[name].data as Float32Array,
      1e-5,
      1e-7,
    );
  }
});

Deno.test("checkpoint: initial values from the config seed, BN 1/0, running var 1, zero state", async () => {
  const config = tinyConfig("tiny_weighted_adam");
  const dir = await Deno.makeTempDir({ prefix: "artifacts_ckpt_" });
  try {
    const result = await writeArtifacts(config, dir);
    const { tensors, meta } = await loadCheckpoint(join(result.dir, "checkpoint.safetensors"));
    assertEquals(meta, { experiment: "tiny_weighted_adam", seed: 3, step: 0, epoch: 0 });
    const built = buildArtifactGraphs(config);
    const expected = initialTrainingState(built.step, config.seed);
    assertEquals(Object.keys(tensors).sort(), [...expected.keys()].sort());
    for (const [name, value] of expected) {
      assertEquals(tensors[name].shape, value.shape, name);
      assertAllClose(tensors[name].data as Float32Array, value.data as Float32Array, 0, 0, name);
    }
    const conv = tensors["encoder.conv1.weight"].data as Float32Array;
    // kaiming-normal fan_out: std √(2 / (4·3·3)) = 0.2357 for 4 output channels.
    const std = Math.sqrt(conv.reduce((s, v) => s + v * v, 0) / conv.length);
    assertClose(std, Math.sqrt(2 / 36), 0.2);
    assert(
      (tensors["encoder.bn1.weight"].data as Float32Array).every((v) => v === 1),
      "BN weight 1",
    );
    assert(
      (tensors["encoder.bn1.running_var"].data as Float32Array).every((v) => v === 1),
      "running var 1",
    );
    assert(
      (tensors["encoder.conv1.weight.exp_avg_sq"].data as Float32Array).every((v) => v === 0),
      "Adam state starts at 0",
    );
    // Another seed gives other weights.
    const other = initialTrainingState(built.step, 4).get("encoder.conv1.weight")!.data;
    assert(other[0] !== conv[0], "seed does not change the initial weights");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

if (!pythonOnnxAvailable) {
  console.log(
    `artifacts_test: the onnx checker test is ignored: ${PYTHON} with python3-onnx not found`,
  );
}

Deno.test({
  name:
    "exported tiny graphs and the committed graphs/ pass onnx.checker.check_model(full_check=True)",
  // Reported as ignored, not passed, where the checker cannot run.
  ignore: !pythonOnnxAvailable,
  async fn(t) {
    const dir = await Deno.makeTempDir({ prefix: "artifacts_check_" });
    try {
      for (const name of Object.keys(TINY)) {
        await writeArtifacts(tinyConfig(name), dir, { checkpoint: false });
      }
      // The committed full-size graphs of the default models too.
      const args = [join(ROOT, "tools/check_onnx.py"), dir, join(ROOT, "graphs")];
      const out = await new Deno.Command(PYTHON, { args }).output();
      const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
      assert(out.success, `checker failed:\n${text}`);
      const ok = text.split("\n").filter((l) => l.startsWith("ok ")).length;
      const expected = (Object.keys(TINY).length + DEFAULT_EXPORTS.length) * GRAPH_FILES.length;
      assertEquals(ok, expected, text);
      await t.step(`${ok} files checked`, () => {});
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("config mapping: ETH normalization None, heads, LARS eta, static batch", () => {
  const weighted = tinyConfig("tiny_weighted_adam");
  assertEquals(lossFromConfig(weighted.loss), {
    type: "weighted_ntxent",
    temperature: 0.1,
    sigma: 0.5,
    lowerBound: -1,
    upperBound: 1,
    outOfBoundsFactor: 0.001,
    normalization: "None",
  });
  const weightedLoss = weighted.loss as WeightedNtXentConfig;
  assertEquals(
    (lossFromConfig({ ...weightedLoss, out_of_bounds_factor: 0.01 }) as {
      outOfBoundsFactor: number;
    })
      .outOfBoundsFactor,
    0.01,
    "out_of_bounds_factor reaches the loss graph",
  );
  const spec = contrastiveSpecFromConfig(weighted);
  assertEquals(spec.batchSize, BATCH);
  assertEquals(spec.imageSize, 32);
  assertEquals(spec.head, { kind: "simclr", outDim: 8, hiddenDim: 16 });
  assertEquals(spec.encoder.normalize, {
    mean: [0.485, 0.456, 0.406],
    std: [0.229, 0.224, 0.225],
  });
  assertEquals(optimizerFromConfig(weighted.optimizer), {
    optimizer: { kind: "adam", betas: [0.9, 0.999], eps: 1e-8, weightDecay: 1e-6 },
    lr: 0.001,
  });
  assertEquals(
    optimizerFromConfig({ type: "lars", lr: 0.3, momentum: 0.9, weight_decay: 1e-6, eta: 0.001 }),
    {
      optimizer: { kind: "lars", momentum: 0.9, weightDecay: 1e-6, trustCoefficient: 0.001 },
      lr: 0.3,
    },
  );
  const mlp = parseConfigText(
    tinyYaml("mlp", "head: {type: mlp, output_dim: 8}", "{architecture: resnet50}"),
    "mlp.yaml",
  ).config;
  assertEquals(contrastiveSpecFromConfig(mlp).head, {
    kind: "projection",
    outDim: 8,
    hidden: [2048],
  });
});

Deno.test("bad input: unknown architecture, stem or optimizer names the key and the allowed values", async () => {
  const dir = await Deno.makeTempDir({ prefix: "artifacts_bad_" });
  try {
    const write = async (name: string, text: string) => {
      const path = join(dir, name);
      await Deno.writeTextFile(path, text);
      return path;
    };
    const ours = (model: string, optimizer: string) =>
      `experiment: bad\ndata: {dataset: cifar10}\ntrain: {epochs: 1}\nmodel: ${model}\noptimizer: ${optimizer}\n`;
    const sgd = "{type: sgd, lr: 0.1}";
    const cases: [string, string, string[]][] = [
      ["arch.yaml", ours("{architecture: resnet99}", sgd), [
        "model.architecture",
        "resnet50",
        "resnet99",
      ]],
      ["stem.yaml", ours("{stem: tiny}", sgd), ["model.stem", '"cifar" | "imagenet"', "tiny"]],
      ["opt.yaml", ours("{}", "{type: rmsprop, lr: 0.1}"), ["optimizer.type", '"lars"', "rmsprop"]],
    ];
    const eth = await Deno.readTextFile(join(ROOT, "config/eth/experiment_5.yaml"));
    cases.push(
      ["eth_arch.yaml", eth.replace('name: "ResNet50"', 'name: "ResNet99"'), [
        "encoder_architecture.name",
        '"ResNet18" | "ResNet34" | "ResNet50"',
      ]],
      ["eth_opt.yaml", eth.replace("name: Adam", "name: RMSprop"), [
        "pretraining.optimizer.name",
        '"Adam"',
        "RMSprop",
      ]],
    );
    for (const [file, text, fragments] of cases) {
      const path = await write(file, text);
      await assertThrowsMessage(
        async () => contrastiveSpecFromConfig((await loadConfig(path)).config),
        path,
        ...fragments,
      );
    }
    // Configs built in code skip the schema; the mapping names the key itself.
    const config = tinyConfig("tiny_plain_sgd");
    await assertThrowsMessage(
      () => encoderFromConfig({ ...config.model, architecture: "vgg16" as "resnet18" }),
      "model.architecture",
      "vgg16",
      "resnet18, resnet34, resnet50",
    );
    await assertThrowsMessage(
      () => encoderFromConfig({ ...config.model, stem: "tiny" as "cifar" }),
      "model.stem",
      "cifar, imagenet",
    );
    await assertThrowsMessage(
      () => optimizerFromConfig({ type: "rmsprop", lr: 0.1 } as unknown as OptimizerSection),
      "optimizer.type",
      "sgd, adam, adamw, lars",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("export-graphs CLI: a config to --out, parameter count printed", async () => {
  const dir = await Deno.makeTempDir({ prefix: "artifacts_cli_" });
  try {
    const path = join(dir, "tiny.yaml");
    await Deno.writeTextFile(path, TINY.tiny_plain_sgd);
    const out = join(dir, "graphs");
    assertEquals(await main(["export-graphs", path, "--out", out, "--no-checkpoint"]), 0);
    const files = [...Deno.readDirSync(join(out, "tiny_plain_sgd"))].map((e) => e.name).sort();
    assertEquals(files, [...GRAPH_FILES, "manifest.json"].sort());
    const lines = await exportConfig(path, out, { checkpoint: false });
    // Width 1/16 ResNet-18: conv weights (11,159,232 − 1,728)/256 + 1,728/16 = 43,692 (the stem
    // conv scales with w, the others with w²) and BN affine 9,600/16 = 600.
    assert(lines.some((l) => l.includes("encoder parameters (no head): 44,292")), lines.join("\n"));
    assertEquals(await main(["export-graphs", join(dir, "missing.yaml"), "--out", out]), 1);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** The manifest without the checkpoint size (the staleness check skips the large checkpoint). */
function withoutCheckpoint(manifest: ArtifactManifest): ArtifactManifest {
  const files = { ...manifest.files };
  delete files["checkpoint.safetensors"];
  return { ...manifest, files };
}

Deno.test("graphs/ holds a fresh export of the default models (re-run `deno task export-graphs` when this fails)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "artifacts_stale_" });
  try {
    for (const d of DEFAULT_EXPORTS) {
      const { config } = await loadConfig(d.config);
      const result = await writeArtifacts(config, dir, { checkpoint: false });
      const committed = join(ROOT, "graphs", config.experiment);
      for (const file of GRAPH_FILES) {
        const fresh = await Deno.readFile(join(result.dir, file));
        const old = await Deno.readFile(join(committed, file)).catch(() => null);
        assert(old !== null, `${committed}/${file} is missing`);
        assert(
          fresh.length === old.length && fresh.every((b, i) => b === old[i]),
          `${committed}/${file} is stale (${old.length} bytes committed, ${fresh.length} exported)`,
        );
      }
      const manifest = JSON.parse(await Deno.readTextFile(join(committed, "manifest.json")));
      assertEquals(
        withoutCheckpoint(manifest),
        withoutCheckpoint(result.manifest),
        `${committed}/manifest.json is stale`,
      );
      const expected = d.method === "ETH" ? 23_508_032 : 11_168_832;
      assertEquals(result.manifest.encoder_param_count, expected, `${d.method} encoder`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
