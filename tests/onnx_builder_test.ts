import { assert, assertAllClose, assertEquals, assertThrowsMessage } from "./assert.ts";
import {
  decodeModel,
  encodeModel,
  Graph,
  IR_VERSION,
  loadModel,
  ops,
  OPSET,
  saveModel,
} from "../src/onnx/mod.ts";
import { Session } from "../src/runtime/session.ts";
import { f32 } from "../src/runtime/host_tensor.ts";
import { checkCudaProvider } from "../src/runtime/providers.ts";
import onnxProto from "onnx-proto";

function smallGraph(): Graph {
  const g = new Graph("small");
  const x = g.input("x", "float32", ["batch", 3, 8, 8]);
  const w = g.input("w", "float32", [4, 3, 3, 3]);
  const y = g.scope(
    "block",
    () => ops.relu(ops.conv(x, w, null, { pads: [1, 1, 1, 1], strides: [2, 2] })),
  );
  g.output(ops.reduceMean(y, [1, 2, 3], false), "score");
  return g;
}

Deno.test("shapes are inferred at build time, symbolic batch kept", () => {
  const g = smallGraph();
  const score = g.outputs[0];
  assertEquals(score.shape, ["batch"]);
  const conv = g.nodes.find((n) => n.opType === "Conv")!;
  assertEquals(conv.outputs[0].shape, ["batch", 4, 4, 4]);
  assertEquals(conv.name, "block/conv");
});

Deno.test("bad graphs give one clear error naming op and shapes", async () => {
  const g = new Graph("bad");
  const a = g.input("a", "float32", [2, 3]);
  const b = g.input("b", "float32", [4, 5]);
  await assertThrowsMessage(
    () => ops.matmul(a, b),
    "MatMul",
    "inner dims 3 and 4",
    "a[2, 3]",
    "b[4, 5]",
  );
  await assertThrowsMessage(() => ops.add(a, b), "Add", "do not broadcast", "[2, 3]", "[4, 5]");
  await assertThrowsMessage(() => g.op("FancyOp", [a]), "unknown op FancyOp");
  const x = g.input("x", "float32", [1, 3, 8, 8]);
  const w = g.input("w", "float32", [4, 2, 3, 3]);
  await assertThrowsMessage(
    () => ops.conv(x, w, null),
    "Conv",
    "input channels 3 != weight channels 2",
  );
  await assertThrowsMessage(() => ops.reshape(a, [4, 2]), "Reshape", "cannot reshape [2, 3]");
  await assertThrowsMessage(() => g.input("a", "float32", [1]), "tensor name a is already used");
});

Deno.test("export targets opset 17 / IR 8 and round-trips through bytes", async () => {
  const g = smallGraph();
  const bytes = encodeModel(g);
  const model = onnxProto.onnx.ModelProto.decode(bytes);
  assertEquals(Number(model.irVersion), IR_VERSION);
  assertEquals(IR_VERSION, 8);
  assertEquals(Number(model.opsetImport[0].version), OPSET);
  assertEquals(OPSET, 17);
  const back = decodeModel(bytes);
  assertEquals(back.nodes.map((n) => n.opType), g.nodes.map((n) => n.opType));
  assertEquals(back.outputs[0].shape, ["batch"]);

  const feeds = {
    x: f32(Array.from({ length: 2 * 3 * 64 }, (_, i) => Math.sin(i)), [2, 3, 8, 8]),
    w: f32(Array.from({ length: 108 }, (_, i) => Math.cos(i)), [4, 3, 3, 3]),
  };
  const s1 = await Session.create(g);
  const s2 = await Session.create(back);
  const r1 = await s1.run(feeds);
  const r2 = await s2.run(feeds);
  assertEquals(r1.score.shape, [2]);
  assertAllClose(r2.score.data as Float32Array, r1.score.data as Float32Array, 0, 0);
});

Deno.test("saved models load back; a missing file is one clear error", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/small.onnx`;
  const g = smallGraph();
  g.output(ops.neg(g.stopGradient(g.outputs[0])), "score_constant");
  const size = await saveModel(g, path);
  assert(size > 100, `file size ${size}`);
  const back = await loadModel(path);
  assert(back.nodes.some((n) => n.stopGradient), "stopGradient marker survives a round trip");
  await assertThrowsMessage(
    () => loadModel(`${dir}/missing.onnx`),
    "model file not found",
    "missing.onnx",
  );
  await Deno.writeFile(`${dir}/junk.onnx`, new Uint8Array([1, 2, 3, 255, 255]));
  await assertThrowsMessage(() => loadModel(`${dir}/junk.onnx`), "junk.onnx");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("an unknown op in a loaded model names the op", async () => {
  const model = onnxProto.onnx.ModelProto.create({
    irVersion: 8,
    opsetImport: [{ domain: "", version: 17 }],
    graph: {
      name: "g",
      node: [{ opType: "NotAnOp", input: ["x"], output: ["y"], name: "mystery" }],
      input: [{
        name: "x",
        type: { tensorType: { elemType: 1, shape: { dim: [{ dimValue: 2 }] } } },
      }],
      output: [{
        name: "y",
        type: { tensorType: { elemType: 1, shape: { dim: [{ dimValue: 2 }] } } },
      }],
    },
  });
  const bytes = onnxProto.onnx.ModelProto.encode(model).finish();
  await assertThrowsMessage(
    () => decodeModel(bytes, "mystery.onnx"),
    "unknown op NotAnOp",
    "mystery",
  );
});

Deno.test("--device cuda without the provider names the missing file", async () => {
  let providerPresent = true;
  try {
    checkCudaProvider();
  } catch {
    providerPresent = false;
  }
  if (providerPresent) return; // a GPU host with the provider installed: nothing to check here
  await assertThrowsMessage(
    () => Session.create(smallGraph(), { device: "cuda" }),
    "libonnxruntime_providers_",
    "deno task setup-cuda",
  );
});
