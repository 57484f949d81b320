/**
 * ResNet encoders and heads: parameter counts against PyTorch's, names and
 * flags, initialisation, SDCLR's two-branch build (shared conv weights,
 * per-branch BN, masked convs) and the errors for bad configs.
 */
import {
  assert,
  assertAllClose,
  assertClose,
  assertEquals,
  assertThrowsMessage,
} from "./assert.ts";
import { Graph, type Tensor } from "../src/onnx/mod.ts";
import { Session } from "../src/runtime/session.ts";
import type { HostTensor } from "../src/runtime/host_tensor.ts";
import {
  declareMasks,
  encoder,
  exposeBufferUpdates,
  type HeadConfig,
  headOutputDim,
  initParams,
  paramFeeds,
  ParamStore,
  projectionHead,
  type ResNetConfig,
  resnetFeatureDim,
  resnetParamCount,
} from "../src/nn/mod.ts";
import { Rng } from "../src/util/rng.ts";

Deno.test("ResNet parameter counts (no classifier) equal PyTorch's", () => {
  const counts: [ResNetConfig, number][] = [
    [{ arch: "resnet18", stem: "cifar" }, 11_168_832],
    [{ arch: "resnet18", stem: "imagenet" }, 11_176_512],
    [{ arch: "resnet34", stem: "imagenet" }, 21_284_672],
    [{ arch: "resnet50", stem: "imagenet" }, 23_508_032],
    [{ arch: "resnet50", stem: "cifar" }, 23_500_352],
  ];
  for (const [config, expected] of counts) {
    assertEquals(resnetParamCount(config), expected, `${config.arch} ${config.stem}`);
  }
  assertEquals(resnetFeatureDim({ arch: "resnet18", stem: "cifar" }), 512);
  assertEquals(resnetFeatureDim({ arch: "resnet50", stem: "imagenet" }), 2048);
  assertEquals(resnetFeatureDim({ arch: "resnet50", stem: "imagenet", width: 0.125 }), 256);
});

Deno.test("ResNet names follow torchvision's state_dict; flags mark BN and biases", () => {
  const graph = new Graph("names");
  const store = new ParamStore(graph);
  const x = graph.input("x", "float32", [2, 3, 32, 32]);
  const { output, updates } = encoder(store, x, {
    arch: "resnet50",
    stem: "imagenet",
    width: 0.125,
  }, {
    train: true,
  });
  assertEquals(output.shape, [2, 256]);
  const names = store.entries().map((e) => e.name);
  assertEquals(names.slice(0, 6), [
    "encoder.conv1.weight",
    "encoder.bn1.weight",
    "encoder.bn1.bias",
    "encoder.bn1.running_mean",
    "encoder.bn1.running_var",
    "encoder.layer1.0.conv1.weight",
  ]);
  for (
    const n of [
      "encoder.layer1.0.downsample.0.weight",
      "encoder.layer1.0.downsample.1.running_var",
      "encoder.layer4.2.conv3.weight",
      "encoder.layer4.2.bn3.bias",
    ]
  ) assert(names.includes(n), `missing ${n}`);
  assert(!names.includes("encoder.layer1.1.downsample.0.weight"), "only first blocks downsample");
  // Bottleneck v1.5: the stride sits on the 3x3 conv.
  const conv2 = graph.nodes.find((n) =>
    n.opType === "Conv" && n.inputs[1]?.name === "encoder.layer2.0.conv2.weight"
  )!;
  assertEquals(conv2.attrs.strides, [2, 2]);
  assertEquals(store.get("encoder.layer2.0.conv2.weight").shape, [16, 16, 3, 3]);
  assertEquals(updates.length, store.buffers().length);
  const conv = store.get("encoder.conv1.weight");
  assertEquals([conv.role, conv.noWeightDecay, conv.shape], ["weight", false, [8, 3, 7, 7]]);
  const bnBias = store.get("encoder.bn1.bias");
  assertEquals([bnBias.role, bnBias.noWeightDecay, bnBias.noLarsAdapt], ["bn_bias", true, true]);
});

Deno.test("initParams follows torchvision's init, deterministic per name", () => {
  const graph = new Graph("init");
  const store = new ParamStore(graph);
  const x = graph.input("x", "float32", [2, 3, 8, 8]);
  const feats =
    encoder(store, x, { arch: "resnet18", stem: "cifar", width: 0.25 }, { train: false }).output;
  projectionHead(store, feats, { kind: "projection", outDim: 128 }, { train: false });
  projectionHead(
    store,
    feats,
    { kind: "linear", classes: 10, weightStd: 0.01 },
    { train: false },
    "classifier",
  );
  const values = initParams(store.entries(), new Rng(7, "init"));
  const stats = (name: string) => {
    const d = values.get(name)!.data as Float32Array;
    const mean = d.reduce((a, b) => a + b, 0) / d.length;
    const std = Math.sqrt(d.reduce((a, b) => a + (b - mean) ** 2, 0) / d.length);
    return { mean, std, count: d.length, max: d.reduce((a, b) => Math.max(a, Math.abs(b)), 0) };
  };
  // kaiming_normal_(fan_out, relu): std = √(2 / (128·3·3)).
  const conv = stats("encoder.layer4.1.conv2.weight");
  assertClose(conv.std, Math.sqrt(2 / (128 * 9)), 0.01, 0, "conv std");
  assert(Math.abs(conv.mean) < 5 * conv.std / Math.sqrt(conv.count), `conv mean ${conv.mean}`);
  // Linear(128, 128): uniform(±1/√128) for weight and bias.
  const fc = stats("head.fc1.weight");
  assert(fc.max <= 1 / Math.sqrt(128) && fc.max > 0.99 / Math.sqrt(128), `fc max ${fc.max}`);
  assertClose(fc.std, 1 / Math.sqrt(3 * 128), 0.02, 0, "fc std");
  assert(stats("head.fc1.bias").max <= 1 / Math.sqrt(128), "fc bias bound");
  assertClose(stats("classifier.fc.weight").std, 0.01, 0.05, 0, "classifier std");
  assertEquals(stats("classifier.fc.bias").max, 0);
  assertAllClose(values.get("encoder.bn1.weight")!.data as Float32Array, new Array(16).fill(1));
  assertAllClose(values.get("encoder.bn1.bias")!.data as Float32Array, new Array(16).fill(0));
  assertAllClose(
    values.get("encoder.bn1.running_var")!.data as Float32Array,
    new Array(16).fill(1),
  );
  // The same seed and name give the same values whatever else is declared.
  const alone = initParams([store.get("encoder.layer4.1.conv2.weight")], new Rng(7, "init"));
  assertEquals(
    Array.from((alone.get("encoder.layer4.1.conv2.weight")!.data as Float32Array).slice(0, 5)),
    Array.from((values.get("encoder.layer4.1.conv2.weight")!.data as Float32Array).slice(0, 5)),
  );
  const other = initParams([store.get("encoder.layer4.1.conv2.weight")], new Rng(8, "init"));
  assert(
    other.get("encoder.layer4.1.conv2.weight")!.data[0] !==
      values.get("encoder.layer4.1.conv2.weight")!.data[0],
    "another seed gives other values",
  );
});

const TINY: ResNetConfig = { arch: "resnet18", stem: "cifar", width: 1 / 16 };

/** Runs a graph with parameter values and an input, returns the named outputs. */
async function run(
  graph: Graph,
  store: ParamStore,
  values: Map<string, HostTensor>,
  extra: Record<string, HostTensor>,
) {
  const session = await Session.create(graph);
  const result = await session.run({ ...paramFeeds(store, values), ...extra });
  await session.release();
  return result;
}

Deno.test("SDCLR build: shared conv weights, per-branch BN, masked convs", async () => {
  const graph = new Graph("sdclr");
  const store = new ParamStore(graph, { bnBranches: 2 });
  const x1 = graph.input("x1", "float32", [4, 3, 8, 8]);
  const x2 = graph.input("x2", "float32", [4, 3, 8, 8]);
  const dense = encoder(store, x1, TINY, { train: true, branch: 0 });
  const masks = declareMasks(store, "encoder.");
  const pruned = encoder(store, x2, TINY, { train: true, branch: 1, masks });
  const headConfig: HeadConfig = { kind: "sdclr", outDim: 16 };
  const h1 = projectionHead(store, dense.output, headConfig, { train: true, branch: 0 });
  const h2 = projectionHead(store, pruned.output, headConfig, { train: true, branch: 1 });
  graph.output(h1.output, "z1");
  graph.output(h2.output, "z2");
  graph.output(dense.output, "f1");
  graph.output(pruned.output, "f2");
  const updateNames = exposeBufferUpdates(graph, [
    ...dense.updates,
    ...pruned.updates,
    ...h1.updates,
    ...h2.updates,
  ]);
  assertEquals(updateNames.length, store.buffers().length);

  const convs = store.convWeights("encoder.");
  assertEquals(Object.keys(masks).length, convs.length);
  assertEquals(
    store.count("encoder."),
    resnetParamCount(TINY) +
      store.params("encoder.").filter((p) => p.name.includes("bn_list.1")).reduce(
        (n, p) => n + p.shape[0],
        0,
      ),
  );
  assert(store.has("head.bn3.bn_list.1.running_var"), "head BN is dual");
  assertEquals(store.params("head.fc").map((p) => p.name), [
    "head.fc1.weight",
    "head.fc1.bias",
    "head.fc2.weight",
    "head.fc3.weight",
  ]);

  // Same BN values on both branches and all-ones masks: the branches agree.
  const values = initParams(store.entries(), new Rng(3, "init"));
  for (const [name, v] of values) {
    if (name.includes("bn_list.1")) {
      values.set(name, values.get(name.replace("bn_list.1", "bn_list.0"))!);
    }
    if (name.endsWith(".weight") && name.includes("bn_list.0")) {
      const rng = new Rng(4, name);
      (v.data as Float32Array).forEach((_, i, a) => (a[i] = rng.uniformIn(0.5, 1.5)));
    }
  }
  const imageRng = new Rng(5, "image");
  const image: HostTensor = {
    dtype: "float32",
    shape: [4, 3, 8, 8],
    data: Float32Array.from({ length: 4 * 3 * 8 * 8 }, () => imageRng.normal()),
  };
  const ones: Record<string, HostTensor> = {};
  for (const c of convs) {
    ones[`${c.name}.mask`] = {
      dtype: "float32",
      shape: [...c.shape],
      data: new Float32Array(c.tensor.size).fill(1),
    };
  }
  const same = await run(graph, store, values, { x1: image, x2: image, ...ones });
  assertAllClose(
    same.f2.data as Float32Array,
    same.f1.data as Float32Array,
    1e-6,
    1e-7,
    "features",
  );
  assertAllClose(
    same.z2.data as Float32Array,
    same.z1.data as Float32Array,
    1e-6,
    1e-7,
    "projections",
  );

  // A random 0/1 mask: the pruned branch equals the dense branch on weights w ⊙ m.
  const rng = new Rng(6, "mask");
  const masked = new Map(values);
  const maskFeeds: Record<string, HostTensor> = {};
  for (const c of convs) {
    const m = new Float32Array(c.tensor.size).map(() => (rng.bernoulli(0.5) ? 1 : 0));
    maskFeeds[`${c.name}.mask`] = { dtype: "float32", shape: [...c.shape], data: m };
    const w = values.get(c.name)!.data as Float32Array;
    masked.set(c.name, { dtype: "float32", shape: [...c.shape], data: w.map((v, i) => v * m[i]) });
  }
  const pr = await run(graph, store, values, { x1: image, x2: image, ...maskFeeds });
  const dn = await run(graph, store, masked, { x1: image, x2: image, ...ones });
  assertAllClose(
    pr.f2.data as Float32Array,
    dn.f1.data as Float32Array,
    1e-5,
    1e-6,
    "masked features",
  );
  assert(
    Math.abs((pr.f2.data as Float32Array)[0] - (pr.f1.data as Float32Array)[0]) > 1e-4,
    "the mask changes the features",
  );
});

Deno.test("bad configs and misuse raise errors naming the key", async () => {
  const graph = new Graph("bad");
  const store = new ParamStore(graph);
  const x = graph.input("x", "float32", [2, 3, 8, 8]);
  await assertThrowsMessage(
    () => encoder(store, x, { arch: "resnet101" as "resnet18", stem: "cifar" }, { train: true }),
    "encoder.arch",
    '"resnet101"',
    "resnet18, resnet34, resnet50",
  );
  await assertThrowsMessage(
    () => resnetParamCount({ arch: "resnet18", stem: "tiny" as "cifar" }),
    "encoder.stem",
    '"tiny"',
    "cifar, imagenet",
  );
  await assertThrowsMessage(
    () => resnetFeatureDim({ ...TINY, width: 0.3 }),
    "encoder.width",
    "0.3",
  );
  await assertThrowsMessage(
    () => headOutputDim({ kind: "mlp" } as unknown as HeadConfig, 512),
    "head.kind",
    '"mlp"',
    "projection, simclr, sdclr, identity, linear",
  );
  await assertThrowsMessage(
    () => headOutputDim({ kind: "linear" } as HeadConfig, 512),
    "head.classes",
    "positive integer",
  );
  const f = graph.input("f", "float32", [2, 32]);
  assertEquals(headOutputDim({ kind: "identity" }, 32), 32);
  assert(
    projectionHead(store, f, { kind: "identity" }, { train: true }).output === f,
    "identity head returns x",
  );
  const stray: Record<string, Tensor> = { "encoder.conv9.weight": f };
  await assertThrowsMessage(
    () => encoder(store, x, TINY, { train: false, masks: stray }),
    "masks encoder.conv9.weight match no conv weight",
  );
  const twice = new ParamStore(new Graph("twice"));
  const x2 = twice.graph.input("x", "float32", [2, 3, 8, 8]);
  const a = encoder(twice, x2, TINY, { train: true });
  const b = encoder(twice, x2, TINY, { train: true });
  await assertThrowsMessage(
    () => exposeBufferUpdates(twice.graph, [...a.updates, ...b.updates]),
    "buffer encoder.bn1.running_mean is updated twice",
  );
  await assertThrowsMessage(
    () => paramFeeds(twice, new Map()),
    "paramFeeds: no value for encoder.conv1.weight [4, 3, 3, 3]",
  );
  await assertThrowsMessage(
    () =>
      twice.declare("encoder.conv1.weight", [4, 3, 5, 5], "weight", { kind: "constant", value: 0 }),
    "parameter encoder.conv1.weight: declared again as weight [4, 3, 5, 5]",
  );
});
