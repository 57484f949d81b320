/**
 * Graph optimizers run through ONNX Runtime (float64 and float32) against
 * (a) plain-TypeScript implementations below and (b) torch.optim golden
 * values from tools/optim_golden.py.
 */
import { assert, assertEquals, assertThrowsMessage } from "./assert.ts";
import { type DType, Graph, type Tensor } from "../src/onnx/mod.ts";
import {
  createOptimizer,
  type GraphOptimizer,
  OPTIMIZER_KINDS,
  type OptimizerConfig,
  parseOptimizerName,
} from "../src/optim/mod.ts";
import { Session } from "../src/runtime/session.ts";
import { type HostTensor, toNumbers } from "../src/runtime/host_tensor.ts";
import { Rng } from "../src/util/rng.ts";

interface ParamSpec {
  name: string;
  shape: number[];
  isBnOrBias: boolean;
  values: number[];
}

/** Values after one step: parameters and state per parameter and slot. */
interface StepValues {
  params: Record<string, number[]>;
  state: Record<string, Record<string, number[]>>;
}

interface GoldenCase {
  name: string;
  config: OptimizerConfig;
  lrs: number[];
  steps: StepValues[];
}

interface Golden {
  params: ParamSpec[];
  grads: Record<string, number[]>[];
  cases: GoldenCase[];
}

const golden: Golden = JSON.parse(
  await Deno.readTextFile(new URL("./fixtures/optim/golden.json", import.meta.url)),
);

function host(dtype: DType, values: number[], shape: number[]): HostTensor {
  return dtype === "float64"
    ? { dtype, shape, data: Float64Array.from(values) }
    : { dtype, shape, data: Float32Array.from(values) };
}

/** Runs `steps` optimizer steps through one ORT session of the update graph. */
async function runGraphSteps(
  optimizer: GraphOptimizer,
  specs: ParamSpec[],
  grads: Record<string, number[]>[],
  lrs: number[],
  dtype: DType,
): Promise<StepValues[]> {
  const graph = new Graph("optimizer_step");
  const scalars: Record<string, Tensor> = {};
  for (const name of optimizer.scalarInputs) scalars[name] = graph.input(name, dtype, []);
  for (const spec of specs) {
    const param = graph.input(spec.name, dtype, spec.shape);
    const grad = graph.input(`${spec.name}.grad`, dtype, spec.shape);
    const state = optimizer.stateSlots.map((slot) =>
      graph.input(`${spec.name}.${slot}`, dtype, spec.shape)
    );
    const updated = optimizer.update(param, grad, state, scalars, {
      name: spec.name,
      isBnOrBias: spec.isBnOrBias,
    });
    graph.output(updated.param, `${spec.name}.new`);
    updated.state.forEach((t, k) => graph.output(t, `${spec.name}.${optimizer.stateSlots[k]}.new`));
  }
  const session = await Session.create(graph);
  const params = Object.fromEntries(specs.map((s) => [s.name, s.values]));
  const state = Object.fromEntries(
    specs.map((
      s,
    ) => [
      s.name,
      Object.fromEntries(optimizer.stateSlots.map((slot) => [slot, s.values.map(() => 0)])),
    ]),
  );
  const results: StepValues[] = [];
  try {
    for (let step = 0; step < lrs.length; step++) {
      const feeds: Record<string, HostTensor> = {};
      const scalarValues: Record<string, number> = { lr: lrs[step], step: step + 1 };
      for (const name of optimizer.scalarInputs) {
        feeds[name] = host(dtype, [scalarValues[name]], []);
      }
      for (const s of specs) {
        feeds[s.name] = host(dtype, params[s.name], s.shape);
        feeds[`${s.name}.grad`] = host(dtype, grads[step][s.name], s.shape);
        for (const slot of optimizer.stateSlots) {
          feeds[`${s.name}.${slot}`] = host(dtype, state[s.name][slot], s.shape);
        }
      }
      const out = await session.run(feeds);
      for (const s of specs) {
        params[s.name] = toNumbers(out[`${s.name}.new`]);
        for (const slot of optimizer.stateSlots) {
          state[s.name][slot] = toNumbers(out[`${s.name}.${slot}.new`]);
        }
      }
      results.push(structuredClone({ params, state }));
    }
  } finally {
    await session.release();
  }
  return results;
}

// ---- Plain-TypeScript references (float64), written from the torch docs. ----

function norm(x: number[]): number {
  return Math.sqrt(x.reduce((s, v) => s + v * v, 0));
}

/** One step of `config` on one parameter; mutates `state`, returns the new parameter. */
function referenceStep(
  config: OptimizerConfig,
  p: number[],
  grad: number[],
  state: Record<string, number[]>,
  lr: number,
  step: number,
  isBnOrBias: boolean,
): number[] {
  switch (config.kind) {
    case "sgd": {
      const g = grad.map((v, i) => v + config.weightDecay * p[i]);
      if (config.momentum === 0) return p.map((v, i) => v - lr * g[i]);
      const buf = state.momentum.map((b, i) => config.momentum * b + g[i]);
      state.momentum = buf;
      const d = config.nesterov ? g.map((v, i) => v + config.momentum * buf[i]) : buf;
      return p.map((v, i) => v - lr * d[i]);
    }
    case "adam":
    case "adamw": {
      const [b1, b2] = config.betas;
      const decayed = config.kind === "adamw" ? p.map((v) => v * (1 - lr * config.weightDecay)) : p;
      const g = config.kind === "adam" ? grad.map((v, i) => v + config.weightDecay * p[i]) : grad;
      state.exp_avg = state.exp_avg.map((m, i) => b1 * m + (1 - b1) * g[i]);
      state.exp_avg_sq = state.exp_avg_sq.map((v, i) => b2 * v + (1 - b2) * g[i] * g[i]);
      const c1 = 1 - b1 ** step;
      const c2 = 1 - b2 ** step;
      return decayed.map((v, i) =>
        v -
        (lr / c1) * state.exp_avg[i] / (Math.sqrt(state.exp_avg_sq[i]) / Math.sqrt(c2) + config.eps)
      );
    }
    case "lars": {
      let g = grad;
      if (!((config.excludeBnAndBias ?? true) && isBnOrBias)) {
        const d = grad.map((v, i) => v + config.weightDecay * p[i]);
        const pn = norm(p);
        const dn = norm(d);
        const trust = pn > 0 && dn > 0 ? config.trustCoefficient * pn / dn : 1;
        g = d.map((v) => v * trust);
      }
      if (config.momentum === 0) return p.map((v, i) => v - lr * g[i]);
      state.momentum = state.momentum.map((b, i) => config.momentum * b + g[i]);
      return p.map((v, i) => v - lr * state.momentum[i]);
    }
  }
}

function runReferenceSteps(
  config: OptimizerConfig,
  slots: readonly string[],
  specs: ParamSpec[],
  grads: Record<string, number[]>[],
  lrs: number[],
): StepValues[] {
  const params = Object.fromEntries(specs.map((s) => [s.name, s.values]));
  const state = Object.fromEntries(
    specs.map((
      s,
    ) => [s.name, Object.fromEntries(slots.map((slot) => [slot, s.values.map(() => 0)]))]),
  );
  return lrs.map((lr, step) => {
    for (const s of specs) {
      params[s.name] = referenceStep(
        config,
        params[s.name],
        grads[step][s.name],
        state[s.name],
        lr,
        step + 1,
        s.isBnOrBias,
      );
    }
    return structuredClone({ params, state });
  });
}

/**
 * Largest error of `actual` vs `expected` over all steps, tensors and slots,
 * as |a − e| / (|e| + floor·max|e over the tensor|): elementwise relative,
 * with a floor relative to the tensor's scale for entries near zero.
 */
function maxError(
  actual: StepValues[],
  expected: StepValues[],
  floor: number,
): { error: number; where: string } {
  let worst = { error: 0, where: "" };
  const visit = (a: number[], e: number[], where: string) => {
    assertEquals(a.length, e.length, where);
    const scale = Math.max(...e.map(Math.abs));
    for (let i = 0; i < e.length; i++) {
      const error = Math.abs(a[i] - e[i]) / (Math.abs(e[i]) + floor * scale);
      if (!(error <= worst.error)) {
        worst = { error: Number.isNaN(error) ? Infinity : error, where: `${where}[${i}]` };
      }
    }
  };
  expected.forEach((exp, step) => {
    for (const [name, values] of Object.entries(exp.params)) {
      visit(actual[step].params[name], values, `step ${step + 1} ${name}`);
    }
    for (const [name, slots] of Object.entries(exp.state)) {
      assertEquals(
        Object.keys(actual[step].state[name]).sort(),
        Object.keys(slots).sort(),
        `state slots of ${name}`,
      );
      for (const [slot, values] of Object.entries(slots)) {
        visit(actual[step].state[name][slot], values, `step ${step + 1} ${name}.${slot}`);
      }
    }
  });
  return worst;
}

const TOLERANCE: Record<"float64" | "float32", number> = { float64: 1e-6, float32: 1e-5 };
/**
 * Entries far below their tensor's largest magnitude are judged against that
 * scale: float32 rounding of O(1) terms leaves ~1e-7 absolute error, which is
 * a large relative error on an entry that cancels to near zero.
 */
const FLOOR: Record<"float64" | "float32", number> = { float64: 1e-6, float32: 1e-2 };

for (const dtype of ["float64", "float32"] as const) {
  Deno.test(`optimizers match torch.optim golden values (${dtype}, 3 steps)`, async () => {
    const report: string[] = [];
    for (const c of golden.cases) {
      const optimizer = createOptimizer(c.config);
      const actual = await runGraphSteps(optimizer, golden.params, golden.grads, c.lrs, dtype);
      const { error, where } = maxError(actual, c.steps, FLOOR[dtype]);
      report.push(`${c.name} ${error.toExponential(2)}`);
      assert(
        error <= TOLERANCE[dtype],
        `${c.name} (${dtype}): error ${error} at ${where} > ${TOLERANCE[dtype]}`,
      );
      // The golden run has parameters that actually moved: the test can fail.
      const moved = c.steps[2].params.w.some((v, i) =>
        Math.abs(v - golden.params[0].values[i]) > 1e-3
      );
      assert(moved, `${c.name}: golden parameters did not move`);
    }
    console.log(`max error vs torch (${dtype}): ${report.join(", ")}`);
  });
}

const RANDOM_CONFIGS: OptimizerConfig[] = [
  { kind: "sgd", momentum: 0, weightDecay: 1e-4 },
  { kind: "sgd", momentum: 0.9, weightDecay: 1e-4 },
  { kind: "sgd", momentum: 0.5, weightDecay: 0, nesterov: true },
  { kind: "adam", betas: [0.9, 0.999], eps: 1e-8, weightDecay: 1e-6 },
  { kind: "adamw", betas: [0.9, 0.95], eps: 1e-8, weightDecay: 0.05 },
  { kind: "lars", momentum: 0.9, weightDecay: 1e-6, trustCoefficient: 0.001 },
  { kind: "lars", momentum: 0, weightDecay: 1e-4, trustCoefficient: 0.02, excludeBnAndBias: false },
];

Deno.test("optimizers match the plain-TypeScript reference over 6 random steps (float64, float32)", async () => {
  const rng = new Rng(7, "optim_test");
  const specs: ParamSpec[] = [
    { name: "conv.weight", shape: [4, 2, 3, 3], isBnOrBias: false, values: [] },
    { name: "bn.weight", shape: [4], isBnOrBias: true, values: [] },
    { name: "fc.bias", shape: [3], isBnOrBias: true, values: [] },
  ];
  const size = (shape: number[]) => shape.reduce((a, b) => a * b, 1);
  for (const s of specs) s.values = Array.from({ length: size(s.shape) }, () => rng.normal());
  const grads = Array.from(
    { length: 6 },
    () =>
      Object.fromEntries(
        specs.map((s) => [s.name, Array.from({ length: size(s.shape) }, () => 0.1 * rng.normal())]),
      ),
  );
  const lrs = [0.05, 0.1, 0.1, 0.08, 0.05, 0.02];
  for (const config of RANDOM_CONFIGS) {
    const optimizer = createOptimizer(config);
    const expected = runReferenceSteps(config, optimizer.stateSlots, specs, grads, lrs);
    for (const dtype of ["float64", "float32"] as const) {
      const actual = await runGraphSteps(optimizer, specs, grads, lrs, dtype);
      const { error, where } = maxError(actual, expected, FLOOR[dtype]);
      const label = `${JSON.stringify(config)} ${dtype}`;
      assert(error <= TOLERANCE[dtype], `${label}: error ${error} at ${where}`);
    }
  }
});

Deno.test("LARS leaves BN/bias parameters unadapted only when excludeBnAndBias is on", async () => {
  const spec: ParamSpec = { name: "bn.bias", shape: [2], isBnOrBias: true, values: [3, 4] };
  const grads = [{ "bn.bias": [0.6, 0.8] }];
  const base = { kind: "lars", momentum: 0.9, weightDecay: 0, trustCoefficient: 0.01 } as const;
  const [excluded] = await runGraphSteps(createOptimizer(base), [spec], grads, [1], "float64");
  const [adapted] = await runGraphSteps(
    createOptimizer({ ...base, excludeBnAndBias: false }),
    [spec],
    grads,
    [1],
    "float64",
  );
  // Excluded: plain SGD step p − lr·g. Adapted: trust = 0.01·5/1 = 0.05, p − 0.05·g.
  assertEquals(excluded.params["bn.bias"], [3 - 0.6, 4 - 0.8]);
  const expected = [3 - 0.05 * 0.6, 4 - 0.05 * 0.8];
  adapted.params["bn.bias"].forEach((v, i) =>
    assert(Math.abs(v - expected[i]) < 1e-15, `adapted ${v} vs ${expected[i]}`)
  );
});

Deno.test("Adam takes step as an int64 scalar input too (cast to the parameter dtype)", async () => {
  const graph = new Graph("adam_int_step");
  const optimizer = createOptimizer({
    kind: "adam",
    betas: [0.9, 0.999],
    eps: 1e-8,
    weightDecay: 0,
  });
  const p = graph.input("p", "float32", [2]);
  const g = graph.input("g", "float32", [2]);
  const state = optimizer.stateSlots.map((s) => graph.input(s, "float32", [2]));
  const scalars = { lr: graph.input("lr", "float32", []), step: graph.input("step", "int64", []) };
  graph.output(
    optimizer.update(p, g, state, scalars, { name: "p", isBnOrBias: false }).param,
    "p_new",
  );
  const session = await Session.create(graph);
  const out = await session.run({
    p: host("float32", [1, -1], [2]),
    g: host("float32", [0.5, -2], [2]),
    exp_avg: host("float32", [0, 0], [2]),
    exp_avg_sq: host("float32", [0, 0], [2]),
    lr: host("float32", [0.1], []),
    step: { dtype: "int64", shape: [], data: BigInt64Array.from([1n]) },
  });
  await session.release();
  // First Adam step moves every entry by lr·sign(g) (up to eps).
  const moved = toNumbers(out.p_new);
  assert(Math.abs(moved[0] - 0.9) < 1e-6 && Math.abs(moved[1] + 0.9) < 1e-6, `got ${moved}`);
});

Deno.test("optimizer names and configs are validated with the key and allowed values", async () => {
  assertEquals(parseOptimizerName("Adam"), "adam");
  assertEquals(parseOptimizerName(" lars "), "lars");
  assertEquals([...OPTIMIZER_KINDS], ["sgd", "adam", "adamw", "lars"]);
  await assertThrowsMessage(
    () => parseOptimizerName("rmsprop", "train.optimizer"),
    "train.optimizer",
    "rmsprop",
    "sgd, adam, adamw, lars",
  );
  await assertThrowsMessage(() => parseOptimizerName(3), "optimizer", "3", "expected one of");
  await assertThrowsMessage(
    () => createOptimizer({ kind: "nadam" } as unknown as OptimizerConfig, "cfg.opt"),
    "cfg.opt.kind",
    "nadam",
    "sgd, adam, adamw, lars",
  );
  await assertThrowsMessage(
    () => createOptimizer({ kind: "sgd", momentum: 0.9, weightDecay: 0, dampening: 0.1 }),
    "optimizer.dampening",
    "only 0",
  );
  await assertThrowsMessage(
    () => createOptimizer({ kind: "sgd", momentum: 0, weightDecay: 0, nesterov: true }),
    "optimizer.nesterov",
  );
  await assertThrowsMessage(
    () => createOptimizer({ kind: "sgd", momentum: 1.5, weightDecay: 0 }),
    "optimizer.momentum",
    "1.5",
  );
  await assertThrowsMessage(
    () => createOptimizer({ kind: "adam", betas: [0.9, 1], eps: 1e-8, weightDecay: 0 }),
    "optimizer.betas[1]",
    "[0, 1)",
  );
  await assertThrowsMessage(
    () => createOptimizer({ kind: "adamw", betas: [0.9, 0.999], eps: -1, weightDecay: 0 }),
    "optimizer.eps",
    "-1",
  );
  await assertThrowsMessage(
    () =>
      createOptimizer({ kind: "lars", momentum: 0.9, weightDecay: -1e-6, trustCoefficient: 0.001 }),
    "optimizer.weightDecay",
  );
  await assertThrowsMessage(
    () => createOptimizer({ kind: "lars", momentum: 0.9, weightDecay: 0, trustCoefficient: 0 }),
    "optimizer.trustCoefficient",
  );
});

Deno.test("update rejects mismatched gradients, state and missing scalars", async () => {
  const graph = new Graph("bad_update");
  const sgd = createOptimizer({ kind: "sgd", momentum: 0.9, weightDecay: 0 });
  const p = graph.input("p", "float32", [2, 3]);
  const lr = graph.input("lr", "float32", []);
  const buf = graph.input("buf", "float32", [2, 3]);
  const meta = { name: "layer.weight", isBnOrBias: false };
  await assertThrowsMessage(
    () => sgd.update(p, graph.input("g_bad", "float32", [3, 2]), [buf], { lr }, meta),
    "layer.weight",
    "g_bad",
    "[2, 3]",
  );
  const g = graph.input("g", "float32", [2, 3]);
  await assertThrowsMessage(
    () => sgd.update(p, g, [], { lr }, meta),
    "0 state tensors",
    "momentum",
  );
  await assertThrowsMessage(() => sgd.update(p, g, [buf], {}, meta), 'missing scalar input "lr"');
  await assertThrowsMessage(
    () => sgd.update(p, g, [graph.input("buf64", "float64", [2, 3])], { lr }, meta),
    "state momentum",
    "float64",
  );
});

Deno.test("per-step scalar factors are built once per graph, not once per parameter", async () => {
  /** Node counts by op type of an update graph over `count` parameters of mixed ranks. */
  const counts = (optimizer: GraphOptimizer, count: number) => {
    const graph = new Graph("scalar_sharing");
    const scalars: Record<string, Tensor> = {};
    for (const name of optimizer.scalarInputs) scalars[name] = graph.input(name, "float32", []);
    for (let i = 0; i < count; i++) {
      const shape = [[4, 3, 3, 3], [4], [8, 4], [4, 3, 1, 1]][i % 4];
      const param = graph.input(`p${i}`, "float32", shape);
      const grad = graph.input(`g${i}`, "float32", shape);
      const state = optimizer.stateSlots.map((s) => graph.input(`p${i}.${s}`, "float32", shape));
      const updated = optimizer.update(param, grad, state, scalars, {
        name: `p${i}`,
        isBnOrBias: shape.length === 1,
      });
      graph.output(updated.param, `p${i}_new`);
    }
    const byType = new Map<string, number>();
    for (const n of graph.nodes) byType.set(n.opType, (byType.get(n.opType) ?? 0) + 1);
    return { byType, graph };
  };
  const adam = createOptimizer({
    kind: "adamw",
    betas: [0.9, 0.999],
    eps: 1e-8,
    weightDecay: 0.01,
  });
  const few = counts(adam, 4).byType;
  const many = counts(adam, 40).byType;
  // Two bias corrections and one cast of lr and of step per graph, whatever the parameter count.
  assertEquals([many.get("Pow"), many.get("Cast")], [2, few.get("Cast")]);
  assertEquals(few.get("Pow"), 2);
  // One Reshape per rank ≥ 2 for each shared factor (step size, √(1 − β2^t), decay): ranks 4 and 2.
  assertEquals(many.get("Reshape"), 6);
  const sgd = createOptimizer({ kind: "sgd", momentum: 0.9, weightDecay: 1e-4 });
  assertEquals(counts(sgd, 40).byType.get("Reshape"), 2, "lr reshaped once for rank 4, once for 2");

  // One optimizer updating two graphs keeps each graph's factors in that graph.
  const first = counts(adam, 2).graph;
  const second = counts(adam, 2).graph;
  for (const graph of [first, second]) {
    for (const node of graph.nodes) {
      for (const t of node.inputs) {
        assert(!t || t.graph === graph, `${node.name} reads ${t?.name} of another graph`);
      }
    }
    const session = await Session.create(graph);
    await session.release();
  }
});
