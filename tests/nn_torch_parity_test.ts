/**
 * Forward parity of the nn builders with PyTorch: tiny-width ResNet-18
 * (CIFAR stem, in-model normalisation) and ResNet-50 (ImageNet stem, 32x32
 * input), the SimCLR/SDCLR/ETH heads, in train-mode and eval-mode BN, with
 * the new running statistics, and gradients of Σ(output ⊙ W) w.r.t. every
 * parameter (skipped while the autodiff lacks a rule for an op the models
 * use). Golden values: tools/nn_golden.py (float64
 * torch on float32 weights), tests/fixtures/nn/golden.safetensors.
 */
import { assert, assertEquals, maxAbs } from "./assert.ts";
import { GRAD_RULES, gradients } from "../src/autodiff/mod.ts";
import { Graph, ops, type Tensor } from "../src/onnx/mod.ts";
import { Session } from "../src/runtime/session.ts";
import type { HostTensor } from "../src/runtime/host_tensor.ts";
import {
  type Built,
  encoder,
  exposeBufferUpdates,
  type HeadConfig,
  paramFeeds,
  ParamStore,
  projectionHead,
  type ResNetConfig,
} from "../src/nn/mod.ts";

const FIXTURE = new URL("./fixtures/nn/golden.safetensors", import.meta.url);

/** Torch's own float32 error against the float64 reference, per quantity. */
interface TorchF32Error {
  output_eval: number;
  output_train: number;
  new: number;
  grad: Record<string, number>;
}

/** One case: an encoder or a head, the case holding its parameters, whether train mode was recorded. */
interface FixtureCase {
  encoder?: ResNetConfig;
  head?: HeadConfig;
  params: string;
  train: boolean;
  torch_f32_error: TorchF32Error;
}

interface Fixture {
  tensors: Map<string, HostTensor>;
  cases: Record<string, FixtureCase>;
  gradFloor: number;
}

/** Reads a float32-only safetensors file. */
async function readFixture(): Promise<Fixture> {
  const bytes = await Deno.readFile(FIXTURE);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = Number(view.getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLength)));
  const start = 8 + headerLength;
  const tensors = new Map<string, HostTensor>();
  for (const [name, info] of Object.entries(header)) {
    if (name === "__metadata__") continue;
    const { dtype, shape, data_offsets: [begin, end] } = info as {
      dtype: string;
      shape: number[];
      data_offsets: [number, number];
    };
    assertEquals(dtype, "F32", `fixture tensor ${name}`);
    const data = new Float32Array(bytes.slice(start + begin, start + end).buffer);
    tensors.set(name, { dtype: "float32", shape, data });
  }
  return {
    tensors,
    cases: JSON.parse(header.__metadata__.cases),
    gradFloor: Number(header.__metadata__.grad_floor),
  };
}

const fixture = await readFixture();

function get(name: string): HostTensor {
  const t = fixture.tensors.get(name);
  if (!t) throw new Error(`fixture lacks ${name}`);
  return t;
}

/** The values of a case stored as `<case>:<kind>:<name>`, keyed by `<name>`. */
function named(caseName: string, kind: string): Map<string, HostTensor> {
  const prefix = `${caseName}:${kind}:`;
  const out = new Map<string, HostTensor>();
  for (const [k, v] of fixture.tensors) {
    if (k.startsWith(prefix)) out.set(k.slice(prefix.length), v);
  }
  return out;
}

/** max |a − b| / max(max |b|, floor): the error relative to the reference's scale (as tools/nn_golden.py). */
function scaledError(actual: ArrayLike<number>, expected: ArrayLike<number>, floor = 0): number {
  assertEquals(actual.length, expected.length, "length");
  let err = 0;
  for (let i = 0; i < expected.length; i++) err = Math.max(err, Math.abs(actual[i] - expected[i]));
  return err / Math.max(maxAbs(expected), floor);
}

/**
 * Allowed scaled error: 1e-4, or 4x torch's own float32 error where float32
 * itself is ill-conditioned (ResNet-50 at 32x32, batch 4: the last stage's
 * train-mode BN normalises 4 values per channel).
 */
function tolerance(torchF32Error: number): number {
  return Math.max(1e-4, 4 * torchF32Error);
}

async function runCase(
  caseName: string,
  train: boolean,
  part: (store: ParamStore, x: Tensor, train: boolean) => Built,
): Promise<{ worst: number; store: ParamStore }> {
  const input = get(`${caseName}:input`);
  const graph = new Graph(`${caseName}_${train ? "train" : "eval"}`);
  const store = new ParamStore(graph);
  const x = graph.input("x", "float32", input.shape);
  const built = part(store, x, train);
  graph.output(built.output, "output");
  exposeBufferUpdates(graph, built.updates);
  assertEquals(
    built.updates.length,
    train ? store.buffers().length : 0,
    "one update per buffer in train mode",
  );

  const params = named(fixture.cases[caseName].params, "param");
  assertEquals(
    store.entries().map((e) => e.name).sort(),
    [...params.keys()].sort(),
    `${caseName}: parameter and buffer names match torch's state_dict`,
  );
  const session = await Session.create(graph);
  const result = await session.run({ ...paramFeeds(store, params), x: input });
  await session.release();

  const expected = get(`${caseName}:output_${train ? "train" : "eval"}`);
  assertEquals(result.output.shape, expected.shape, `${caseName} output shape`);
  const yardstick = fixture.cases[caseName].torch_f32_error;
  let worst = scaledError(result.output.data as Float32Array, expected.data as Float32Array);
  const allowed = tolerance(train ? yardstick.output_train : yardstick.output_eval);
  assert(
    worst <= allowed,
    `${caseName} ${train ? "train" : "eval"} output: scaled error ${worst} > ${allowed}`,
  );
  if (train) {
    for (const [name, value] of named(caseName, "new")) {
      const err = scaledError(
        result[`${name}_new`].data as Float32Array,
        value.data as Float32Array,
      );
      assert(err <= tolerance(yardstick.new), `${caseName} ${name}_new: scaled error ${err}`);
      worst = Math.max(worst, err);
    }
  }
  return { worst, store };
}

for (const [caseName, spec] of Object.entries(fixture.cases)) {
  for (const train of spec.train ? [false, true] : [false]) {
    Deno.test(`nn parity with torch: ${caseName} ${train ? "train" : "eval"}-mode BN`, async () => {
      const { worst } = await runCase(
        caseName,
        train,
        (store, x, train) =>
          spec.encoder
            ? encoder(store, x, spec.encoder, { train })
            : projectionHead(store, x, spec.head!, { train }),
      );
      const torchError = spec.torch_f32_error[train ? "output_train" : "output_eval"];
      console.log(
        `  ${caseName} ${train ? "train" : "eval"}: max scaled error ${worst.toExponential(2)} ` +
          `(torch float32: ${torchError.toExponential(2)})`,
      );
    });
  }
}

// Gradient parity: d/dθ Σ(output ⊙ W) for every parameter, in train mode.
const GRAD_OPS = [
  "Conv",
  "MaxPool",
  "Gemm",
  "Relu",
  "ReduceMean",
  "Reshape",
  "Add",
  "Sub",
  "Mul",
  "Div",
  "Sqrt",
];
const missingRules = GRAD_OPS.filter((op) => !GRAD_RULES[op]);

for (const [caseName, spec] of Object.entries(fixture.cases)) {
  if (!spec.train) continue;
  Deno.test({
    name: `nn gradient parity with torch: ${caseName}`,
    ignore: missingRules.length > 0,
    fn: async () => {
      const input = get(`${caseName}:input`);
      const graph = new Graph(`${caseName}_grad`);
      const store = new ParamStore(graph);
      const x = graph.input("x", "float32", input.shape);
      const built = spec.encoder
        ? encoder(store, x, spec.encoder, { train: true })
        : projectionHead(store, x, spec.head!, { train: true });
      const weights = get(`${caseName}:grad_weights`);
      const w = graph.constant(weights.data as Float32Array, "float32", weights.shape);
      const loss = ops.reduceSum(ops.mul(built.output, w), undefined, false);
      graph.output(loss, "loss");
      const params = store.params();
      const grads = gradients(loss, params.map((p) => p.tensor));
      for (const p of params) graph.output(grads.get(p.tensor)!, `${p.name}_grad`);

      const session = await Session.create(graph);
      const result = await session.run({
        ...paramFeeds(store, named(spec.params, "param")),
        x: input,
      });
      await session.release();

      const expected = named(caseName, "grad");
      assertEquals([...expected.keys()].sort(), params.map((p) => p.name).sort(), "gradient names");
      const floor = fixture.gradFloor *
        Math.max(...[...expected.values()].map((g) => maxAbs(g.data as Float32Array)));
      let worst = 0;
      let worstName = "";
      let worstTorch = 0;
      for (const p of params) {
        const ref = expected.get(p.name)!;
        const err = scaledError(
          result[`${p.name}_grad`].data as Float32Array,
          ref.data as Float32Array,
          floor,
        );
        const allowed = tolerance(spec.torch_f32_error.grad[p.name]);
        assert(
          err <= allowed,
          `${caseName} gradient of ${p.name}: scaled error ${err} > ${allowed}`,
        );
        if (err > worst) {
          [worst, worstName, worstTorch] = [err, p.name, spec.torch_f32_error.grad[p.name]];
        }
      }
      console.log(
        `  ${caseName}: ${params.length} gradients, max scaled error ${
          worst.toExponential(2)
        } at ${worstName} ` +
          `(torch float32 there: ${worstTorch.toExponential(2)})`,
      );
    },
  });
}
