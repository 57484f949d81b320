/**
 * The blocked-channel Conv lowering (src/onnx/nchwc.ts): the block size read
 * from ReorderInput's layout, which Convs are lowered (in Loop bodies too),
 * and a training step that computes what the plain Convs compute.
 */
import { assert, assertEquals } from "./assert.ts";
import onnxProto from "onnx-proto";
import { buildContrastiveStep, type ContrastiveSpec } from "../src/methods/contrastive.ts";
import { Graph, ops } from "../src/onnx/mod.ts";
import { NCHWC_DOMAIN } from "../src/onnx/nchwc.ts";
import { createSgd } from "../src/optim/mod.ts";
import { blockFromReorder, nchwcBlockSize } from "../src/runtime/nchwc_probe.ts";
import { sessionModelBytes } from "../src/runtime/session.ts";
import { buildMultiStep } from "../src/train/multi_step.ts";
import { twoStepsUnder } from "./step_variants.ts";

const { onnx } = onnxProto;

/** ReorderInput's output for [1, channels, 1, 2] holding c·2 + w, blocked by `block`. */
function blocked(channels: number, block: number): Float32Array {
  const out: number[] = [];
  for (let cb = 0; cb < channels / block; cb++) {
    for (let w = 0; w < 2; w++) {
      for (let lane = 0; lane < block; lane++) out.push((cb * block + lane) * 2 + w);
    }
  }
  return Float32Array.from(out);
}

Deno.test("the NCHWc block is read from ReorderInput's layout", () => {
  assertEquals(blockFromReorder(blocked(64, 8), 64), 8);
  assertEquals(blockFromReorder(blocked(64, 16), 64), 16);
  const plain = Float32Array.from({ length: 128 }, (_, i) => i);
  assertEquals(blockFromReorder(plain, 64), null);
  const wrong = blocked(64, 16);
  [wrong[5], wrong[6]] = [wrong[6], wrong[5]];
  assertEquals(blockFromReorder(wrong, 64), null);
});

Deno.test("this host's ORT has NCHWc kernels where the CPU has AVX2", async () => {
  const cpuinfo = await Deno.readTextFile("/proc/cpuinfo").catch(() => "");
  const block = await nchwcBlockSize();
  if (/\bavx2\b/.test(cpuinfo)) {
    assert(block === 8 || block === 16, `expected a block of 8 or 16, got ${block}`);
    assertEquals(block, /\bavx512f\b/.test(cpuinfo) ? 16 : 8);
  }
});

function decoded(bytes: Uint8Array) {
  return onnx.ModelProto.decode(bytes);
}

/** Nodes of the nchwc domain, counted in a graph and its Loop bodies. */
function nchwcNodes(graph: onnxProto.onnx.IGraphProto): { main: number; bodies: number } {
  let main = 0;
  let bodies = 0;
  for (const node of graph.node ?? []) {
    if (node.domain === NCHWC_DOMAIN) main++;
    for (const a of node.attribute ?? []) {
      if (a.g) {
        const inner = nchwcNodes(a.g);
        bodies += inner.main + inner.bodies;
      }
    }
  }
  return { main, bodies };
}

Deno.test("only float32 2-D group-1 Convs with block-multiple channels are lowered, on CPU only", async () => {
  const block = await nchwcBlockSize();
  if (block === null) return;
  const g = new Graph("lowering");
  const x = g.input("x", "float32", [2, 2 * block, 6, 6]);
  const w = g.input("w", "float32", [block, 2 * block, 3, 3]);
  const odd = g.input("odd", "float32", [block + 1, 2 * block, 1, 1]);
  const grouped = g.input("grouped", "float32", [2 * block, block, 3, 3]);
  g.output(ops.conv(x, w, null, { pads: [1, 1, 1, 1], strides: [2, 2] }), "a");
  g.output(ops.conv(x, odd, null), "b");
  g.output(ops.conv(x, grouped, null, { group: 2, pads: [1, 1, 1, 1] }), "c");
  const proto = decoded(await sessionModelBytes(g)).graph!;
  const lowered = (proto.node ?? []).filter((n) => n.domain === NCHWC_DOMAIN);
  assertEquals(lowered.map((n) => n.opType), ["ReorderInput", "Conv", "ReorderOutput"]);
  assertEquals((proto.node ?? []).filter((n) => n.opType === "Conv" && !n.domain).length, 2);
  assertEquals(nchwcNodes(decoded(await sessionModelBytes(g, { blockedConvs: false })).graph!), {
    main: 0,
    bodies: 0,
  });
  assertEquals(nchwcNodes(decoded(await sessionModelBytes(g, { device: "cuda" })).graph!), {
    main: 0,
    bodies: 0,
  });
});

function spec(): ContrastiveSpec {
  return {
    // Width 1/4: 16 to 128 channels, every conv but the stem qualifies at a block of 8 or 16.
    encoder: { arch: "resnet18", stem: "cifar", width: 1 / 4 },
    head: { kind: "simclr", hiddenDim: 32, outDim: 16 },
    loss: { type: "ntxent", temperature: 0.2 },
    method: { name: "simclr" },
    batchSize: 4,
    imageSize: 16,
  };
}

Deno.test("a ResNet-18 step on blocked Convs computes what plain Convs compute (float32 tolerance)", async () => {
  const block = await nchwcBlockSize();
  if (block === null) return;
  const step = buildContrastiveStep(
    spec(),
    createSgd({ kind: "sgd", momentum: 0.9, weightDecay: 1e-4 }),
  );
  const lowered = nchwcNodes(decoded(await sessionModelBytes(step.graph)).graph!);
  assert(lowered.main >= 3 * 16, `expected the encoder's convs lowered, got ${lowered.main} nodes`);
  const multi = buildMultiStep(step.graph, step.layout, 2);
  const inLoop = nchwcNodes(decoded(await sessionModelBytes(multi.graph)).graph!);
  assertEquals(inLoop.bodies, lowered.main, "the Loop body is lowered as the single step");

  const { losses: [plain, fast], relative } = await twoStepsUnder(step, [
    { blockedConvs: false },
    { blockedConvs: true },
  ]);
  // Another summation order alone (2 threads instead of 1) moves the second loss by 7e-6 and the
  // state by 2e-5 here (BatchNorm over 4 images amplifies rounding); the blocked kernels by 2e-5
  // and 7e-5. A wrong weight layout or padding moves them by O(1).
  for (const [i, tolerance] of [[0, 1e-5], [1, 2e-4]]) {
    assert(
      Math.abs(plain[i] - fast[i]) <= tolerance * Math.abs(plain[i]),
      `loss ${i}: ${plain[i]} vs ${fast[i]}`,
    );
  }
  // Relative L2 distance over every parameter and state after two steps.
  assert(relative < 1e-3, `parameters and state differ by ${relative} (relative L2)`);
});
