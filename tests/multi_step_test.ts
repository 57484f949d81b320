/**
 * Several fused steps per run through an ONNX Loop (src/train/multi_step.ts):
 * K steps in one run give the losses and parameters of K single steps, bit for
 * bit (what lets the runner group steps freely and still resume exactly), for a
 * small MLP with Adam (per-step lr and step count) and a tiny ResNet-18
 * contrastive step with SGD momentum and the ETH weighted loss (per-step μ).
 */
import { assert, assertEquals, assertThrowsMessage } from "./assert.ts";
import { buildContrastiveStep, type ContrastiveSpec } from "../src/methods/contrastive.ts";
import { initParams } from "../src/nn/mod.ts";
import { Graph, ops } from "../src/onnx/mod.ts";
import { createAdam, createSgd } from "../src/optim/mod.ts";
import type { HostTensor } from "../src/runtime/host_tensor.ts";
import { Session } from "../src/runtime/session.ts";
import { buildFusedStep, type FusedStepLayout } from "../src/train/fused_step.ts";
import { buildMultiStep, MultiStepRunner, stackedName } from "../src/train/multi_step.ts";
import { StepRunner } from "../src/train/step_runner.ts";
import { Rng } from "../src/util/rng.ts";
import { normal } from "./random_tensors.ts";

/** max |a − b| over max |b|, per carried value; returns the worst. */
function worstRelative(
  a: Map<string, HostTensor>,
  b: Map<string, HostTensor>,
  names: string[],
): number {
  let worst = 0;
  for (const name of names) {
    const x = a.get(name)!.data as Float32Array;
    const y = b.get(name)!.data as Float32Array;
    assertEquals(x.length, y.length, name);
    let err = 0;
    let scale = 0;
    for (let i = 0; i < y.length; i++) {
      err = Math.max(err, Math.abs(x[i] - y[i]));
      scale = Math.max(scale, Math.abs(y[i]));
    }
    worst = Math.max(worst, scale > 0 ? err / scale : err);
  }
  return worst;
}

/** A 2-layer MLP regression step: inputs x [8, 6], target [8, 3]; Adam. */
function mlpStep(): { graph: Graph; layout: FusedStepLayout; initial: Map<string, HostTensor> } {
  const graph = new Graph("mlp_step");
  const x = graph.input("x", "float32", [8, 6]);
  const target = graph.input("target", "float32", [8, 3]);
  const w1 = graph.input("w1", "float32", [5, 6]);
  const b1 = graph.input("b1", "float32", [5]);
  const w2 = graph.input("w2", "float32", [3, 5]);
  const h = ops.relu(ops.gemm(x, w1, b1, { transB: true }));
  const diff = ops.sub(ops.gemm(h, w2, null, { transB: true }), target);
  const loss = ops.reduceMean(ops.mul(diff, diff), undefined, false);
  const meta = (name: string, isBnOrBias = false) => ({ name, isBnOrBias });
  const layout = buildFusedStep({
    graph,
    loss,
    params: [
      { tensor: w1, meta: meta("w1") },
      { tensor: b1, meta: meta("b1", true) },
      { tensor: w2, meta: meta("w2") },
    ],
    buffers: [],
    optimizer: createAdam({ kind: "adam", betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.01 }),
    extraOutputs: { prediction_error: diff },
  });
  const rng = new Rng(7, "mlp");
  const initial = new Map<string, HostTensor>([
    ["w1", normal(rng.fork("w1"), [5, 6], 0.5)],
    ["b1", normal(rng.fork("b1"), [5], 0.1)],
    ["w2", normal(rng.fork("w2"), [3, 5], 0.5)],
  ]);
  return { graph, layout, initial };
}

Deno.test("multi-step: 4 MLP steps with Adam in one Loop run equal 4 single steps", async () => {
  const { graph, layout, initial } = mlpStep();
  const k = 4;
  const multi = buildMultiStep(graph, layout, k);
  assertEquals(multi.layout.stacked.map((s) => s.name), [stackedName("x"), stackedName("target")]);
  assertEquals(multi.layout.scalars.map((s) => s.source), ["lr", "step"]);
  const rng = new Rng(3, "batches");
  const batches = Array.from({ length: k }, (_, i) => ({
    x: normal(rng.fork(`x${i}`), [8, 6]),
    target: normal(rng.fork(`t${i}`), [8, 3]),
  }));
  const scalars = Array.from({ length: k }, (_, i) => ({ lr: 0.05 / (i + 1), step: i + 1 }));

  const single = await Session.create(graph, { threads: 1 });
  const singleValues = new Map(initial);
  const singleRunner = new StepRunner(single, layout, singleValues);
  const singleLosses: number[] = [];
  const singleErrors: number[] = [];
  for (let i = 0; i < k; i++) {
    const r = await singleRunner.step(batches[i], scalars[i]);
    singleLosses.push(r.loss);
    singleErrors.push(...(r.extras.prediction_error.data as Float32Array));
  }

  const looped = await Session.create(multi.graph, { threads: 1 });
  const loopValues = new Map(initial);
  const result = await new MultiStepRunner(looped, multi.layout, loopValues).run(batches, scalars);
  assertEquals(result.losses, singleLosses, "losses");
  assert(singleLosses[3] < singleLosses[0], `the MLP should learn: losses ${singleLosses}`);
  assertEquals(result.extras.prediction_error.shape, [k, 8, 3]);
  assertEquals([...result.extras.prediction_error.data as Float32Array], singleErrors);
  const carried = layout.carried.map((c) => c.input);
  assertEquals(carried.length, 9, "3 params + 2 Adam slots each");
  const worst = worstRelative(loopValues, singleValues, carried);
  assert(worst === 0, `final parameters and state differ by ${worst} (relative)`);
  await single.release();
  await looped.release();
});

function tinySpec(): ContrastiveSpec {
  return {
    encoder: { arch: "resnet18", stem: "cifar", width: 1 / 16 },
    head: { kind: "simclr", hiddenDim: 32, outDim: 16 },
    loss: {
      type: "weighted_ntxent",
      temperature: 0.2,
      sigma: 0.5,
      lowerBound: -1,
      upperBound: 1,
      normalization: "negatives_constant_total_weight",
    },
    method: { name: "simclr" },
    batchSize: 4,
    imageSize: 8,
  };
}

Deno.test("multi-step: one graph runs any number of steps; runs of 3, 1 and 2 equal 6 single steps", async () => {
  const { graph, layout, initial } = mlpStep();
  const multi = buildMultiStep(graph, layout, 3);
  const rng = new Rng(9, "batches");
  const batches = Array.from({ length: 6 }, (_, i) => ({
    x: normal(rng.fork(`x${i}`), [8, 6]),
    target: normal(rng.fork(`t${i}`), [8, 3]),
  }));
  const scalars = batches.map((_, i) => ({ lr: 0.03, step: i + 1 }));
  const single = await Session.create(graph, { threads: 1 });
  const singleValues = new Map(initial);
  const singleRunner = new StepRunner(single, layout, singleValues);
  const singleLosses: number[] = [];
  for (let i = 0; i < 6; i++) {
    singleLosses.push((await singleRunner.step(batches[i], scalars[i])).loss);
  }

  const looped = await Session.create(multi.graph, { threads: 1 });
  const loopValues = new Map(initial);
  const runner = new MultiStepRunner(looped, multi.layout, loopValues);
  const losses: number[] = [];
  for (const [from, to] of [[0, 3], [3, 4], [4, 6]]) {
    const result = await runner.run(batches.slice(from, to), scalars.slice(from, to));
    assertEquals(result.extras.prediction_error.shape, [to - from, 8, 3]);
    losses.push(...result.losses);
  }
  assertEquals(losses, singleLosses, "losses");
  const worst = worstRelative(loopValues, singleValues, layout.carried.map((c) => c.input));
  assert(worst === 0, `final parameters and state differ by ${worst} (relative)`);
  // How the steps are grouped into runs changes nothing, bit for bit (what exact resume needs).
  const regrouped = new Map(initial);
  const again = new MultiStepRunner(looped, multi.layout, regrouped);
  const regroupedLosses: number[] = [];
  for (const [from, to] of [[0, 2], [2, 5], [5, 6]]) {
    regroupedLosses.push(
      ...(await again.run(batches.slice(from, to), scalars.slice(from, to))).losses,
    );
  }
  assertEquals(regroupedLosses, losses);
  for (const c of layout.carried) {
    assertEquals([...regrouped.get(c.input)!.data], [...loopValues.get(c.input)!.data], c.input);
  }
  await single.release();
  await looped.release();
});

Deno.test("multi-step: 3 tiny ResNet-18 contrastive steps through a Loop equal 3 single steps", async () => {
  const step = buildContrastiveStep(
    tinySpec(),
    createSgd({ kind: "sgd", momentum: 0.9, weightDecay: 1e-4 }),
  );
  const k = 3;
  const multi = buildMultiStep(step.graph, step.layout, k);
  const initial = initParams(step.store.entries(), new Rng(11, "init"));
  const rng = new Rng(5, "views");
  const batches = Array.from({ length: k }, (_, i) => ({
    [step.inputs.view1]: normal(rng.fork(`a${i}`), [4, 3, 8, 8]),
    [step.inputs.view2]: normal(rng.fork(`b${i}`), [4, 3, 8, 8]),
  }));
  const mu = step.inputs.mu!;
  const scalars = [0.3, 0.2, 0.1].map((lr, i) => ({ lr, [mu]: [0, 0.5, -0.5][i] }));

  const single = await Session.create(step.graph, { threads: 1 });
  const singleValues = new Map(initial);
  const singleRunner = new StepRunner(single, step.layout, singleValues);
  const singleLosses: number[] = [];
  for (let i = 0; i < k; i++) {
    singleLosses.push((await singleRunner.step(batches[i], scalars[i])).loss);
  }

  const looped = await Session.create(multi.graph, { threads: 1 });
  const loopValues = new Map(initial);
  const result = await new MultiStepRunner(looped, multi.layout, loopValues).run(batches, scalars);
  assertEquals(result.losses, singleLosses, "losses");
  assert(new Set(singleLosses).size === k, `steps must differ: ${singleLosses}`);
  assertEquals(result.extras.per_anchor_loss.shape, [k, 8]);
  const worst = worstRelative(loopValues, singleValues, step.layout.carried.map((c) => c.input));
  assert(
    worst === 0,
    `final parameters, BN statistics and momenta differ by ${worst} (relative)`,
  );
  await single.release();
  await looped.release();
});

Deno.test("multi-step: bad arguments name what is wrong", async () => {
  const { graph, layout, initial } = mlpStep();
  await assertThrowsMessage(
    () => buildMultiStep(graph, layout, 0),
    "steps must be an integer >= 1, got 0",
  );
  await assertThrowsMessage(
    () => buildMultiStep(graph, layout, 2, { shared: ["labels"] }),
    "shared input labels is not an input of mlp_step",
  );
  await assertThrowsMessage(
    () => buildMultiStep(graph, layout, 2, { shared: ["lr"] }),
    "lr is carried or a per-step scalar",
  );
  const multi = buildMultiStep(graph, layout, 2, { shared: ["target"] });
  assertEquals(multi.layout.shared, ["target"]);
  const session = await Session.create(multi.graph, { threads: 1 });
  const runner = new MultiStepRunner(session, multi.layout, new Map(initial));
  const x = normal(new Rng(1), [8, 6]);
  await assertThrowsMessage(
    () => runner.run([{ x }, { x }, { x }], [1, 2, 3].map((step) => ({ lr: 0.1, step }))),
    "expected 1 to 2 batches and as many scalar sets, got 3 and 3",
  );
  await assertThrowsMessage(
    () => runner.run([{ x }], [{ lr: 0.1, step: 1 }, { lr: 0.1, step: 2 }]),
    "expected 1 to 2 batches and as many scalar sets, got 1 and 2",
  );
  await assertThrowsMessage(
    () => runner.run([{ x }, { x }], [{ lr: 0.1, step: 1 }, { lr: 0.1 }]),
    "step 1 has no scalar step",
  );
  await assertThrowsMessage(
    () => runner.run([{ x }, { x }], [{ lr: 0.1, step: 1 }, { lr: 0.1, step: 2 }]),
    "missing shared input target",
  );
  const ok = await runner.run([{ x }, { x }], [{ lr: 0.1, step: 1 }, { lr: 0.1, step: 2 }], {
    target: normal(new Rng(2), [8, 3]),
  });
  assertEquals(ok.losses.length, 2);
  assert(ok.losses[1] < ok.losses[0], `same batch twice: the loss should drop, got ${ok.losses}`);
  await assertThrowsMessage(
    () => new MultiStepRunner(session, multi.layout, new Map([["w1", initial.get("w1")!]])),
    "no initial value for param b1",
  );
  await session.release();
});
