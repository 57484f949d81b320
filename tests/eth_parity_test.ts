/**
 * Small versions of the ETH isolation checks of issue 13, on golden values
 * from the independent torch pipeline (tools/eth_golden.py, which uses
 * tools/eth_torch_reference.py; fixture tests/fixtures/eth/golden.safetensors):
 *
 * - trajectory: three fused training steps of experiment 27's recipe (tiny
 *   ResNet-50, ImageNet stem, ETH projection, weighted NT-Xent, Adam with L2)
 *   from torch's initial weights on torchvision's augmented views of real
 *   CIFAR-10 images reproduce torch's per-step losses, BN running statistics
 *   and parameters;
 * - encoder: eval-mode features under the trained state (BN running
 *   statistics from those steps) equal torch's;
 * - probe: the ETH classifier's Adam (L2 weight decay) over a fixed batch
 *   order (last partial batch kept) ends at torch's weights.
 *
 * Float32 tolerances are scaled by torch's own float32 error against its
 * float64 run (metadata of the fixture).
 */
import { assert, assertEquals } from "./assert.ts";
import { readSafetensors } from "../src/artifacts/safetensors.ts";
import { loadConfig } from "../src/config/mod.ts";
import { GraphEncoder, LinearClassifier } from "../src/eval/mod.ts";
import {
  buildContrastiveStep,
  contrastiveSpecFromConfig,
  optimizerFromConfig,
} from "../src/methods/mod.ts";
import { createOptimizer } from "../src/optim/mod.ts";
import type { HostTensor } from "../src/runtime/host_tensor.ts";
import { Session } from "../src/runtime/session.ts";
import { StepRunner } from "../src/train/step_runner.ts";

const fixture = await readSafetensors(
  new URL("./fixtures/eth/golden.safetensors", import.meta.url).pathname,
);
const meta = fixture.metadata;
const model = JSON.parse(meta.model) as {
  width: number;
  head_out: number;
  batch: number;
  steps: number;
  lr: number;
};

function tensor(name: string): HostTensor {
  const t = fixture.tensors[name];
  if (!t) throw new Error(`fixture: no tensor ${name}`);
  return t;
}

/** Tensors `<prefix>:<name>` of the fixture by name. */
function group(prefix: string): Map<string, HostTensor> {
  const out = new Map<string, HostTensor>();
  for (const [name, t] of Object.entries(fixture.tensors)) {
    if (name.startsWith(`${prefix}:`)) out.set(name.slice(prefix.length + 1), t);
  }
  return out;
}

/** uint8 PIL views → float32 [0, 1] (ToTensor); our model normalizes inside. */
function unit(data: Uint8Array, offset: number, count: number): Float32Array {
  return Float32Array.from(data.subarray(offset, offset + count), (v) => v / 255);
}

/** Experiment 27's config at the fixture's size (tiny width, 16-d head, its batch and lr). */
async function tinyEth27() {
  const { config } = await loadConfig("config/eth/experiment_27.yaml", {
    set: [
      `model.width_multiplier=${model.width}`,
      `head.output_dim=${model.head_out}`,
      `train.batch_size=${model.batch}`,
      `optimizer.lr=${model.lr}`,
    ],
  });
  return config;
}

/** sqrt(Σ‖a − ref‖² / Σ‖ref − start‖²) over the parameters (the distance travelled as unit). */
function paramDistance(
  a: ReadonlyMap<string, HostTensor>,
  ref: ReadonlyMap<string, HostTensor>,
  start: ReadonlyMap<string, HostTensor>,
): number {
  let num = 0;
  let den = 0;
  for (const [name, r] of ref) {
    if (name.includes("running_")) continue;
    const x = a.get(name)!.data as Float32Array;
    const s = start.get(name)!.data as Float32Array;
    const rd = r.data as Float32Array;
    for (let i = 0; i < rd.length; i++) {
      num += (x[i] - rd[i]) ** 2;
      den += (rd[i] - s[i]) ** 2;
    }
  }
  return Math.sqrt(num / den);
}

/** max over BN buffers of kind `kind` of max|a − ref| / max|ref|. */
function bufferError(
  a: ReadonlyMap<string, HostTensor>,
  ref: ReadonlyMap<string, HostTensor>,
  kind: "running_mean" | "running_var",
): number {
  let worst = 0;
  for (const [name, r] of ref) {
    if (!name.endsWith(kind)) continue;
    const x = a.get(name)!.data as Float32Array;
    const rd = r.data as Float32Array;
    let diff = 0;
    let scale = 0;
    for (let i = 0; i < rd.length; i++) {
      diff = Math.max(diff, Math.abs(x[i] - rd[i]));
      scale = Math.max(scale, Math.abs(rd[i]));
    }
    worst = Math.max(worst, diff / scale);
  }
  return worst;
}

Deno.test("ETH trajectory parity with torch: 3 steps of experiment 27 on real CIFAR-10 views", async () => {
  const config = await tinyEth27();
  const spec = contrastiveSpecFromConfig(config);
  const plan = optimizerFromConfig(config.optimizer);
  assertEquals(plan.optimizer, { kind: "adam", betas: [0.9, 0.999], eps: 1e-8, weightDecay: 1e-6 });
  const step = buildContrastiveStep(spec, createOptimizer(plan.optimizer));
  const initial = group("initial");
  const values = new Map(initial);
  const session = await Session.create(step.graph, { threads: 1 });
  const runner = new StepRunner(session, step.layout, values);
  const loss64 = tensor("loss64").data as Float32Array;
  const loss32 = tensor("loss32").data as Float32Array;
  const n = model.batch * 3 * 32 * 32;
  try {
    for (let k = 0; k < model.steps; k++) {
      const views = tensor(`views:${k}`).data as Uint8Array;
      const shape = [model.batch, 3, 32, 32];
      const result = await runner.step(
        {
          [step.inputs.view1]: { dtype: "float32", shape, data: unit(views, 0, n) },
          [step.inputs.view2]: { dtype: "float32", shape, data: unit(views, n, n) },
        },
        { lr: plan.lr, step: k + 1, mu: 0.6 },
      );
      const tolerance = Math.max(4 * Math.abs(loss32[k] - loss64[k]), 2e-5 * loss64[k]);
      assert(
        Math.abs(result.loss - loss64[k]) <= tolerance,
        `step ${k}: loss ${result.loss}, torch ${loss64[k]} (float32 torch ${loss32[k]})`,
      );
      if (k === 0) {
        // After one step the BN statistics are a forward-only function of the initial state.
        const step1 = group("step1_64");
        for (const kind of ["running_mean", "running_var"] as const) {
          const e = bufferError(values, step1, kind);
          assert(e < 1e-4, `step 1 ${kind}: relative error ${e}`);
        }
        const d = paramDistance(values, step1, initial);
        assert(d < 0.02, `step 1 parameters: distance ${d} of the update`);
      }
    }
  } finally {
    await session.release();
  }
  const final = group("final64");
  const yard = Number(meta.final32_param_dist);
  const d = paramDistance(values, final, initial);
  assert(d <= Math.max(3 * yard, 0.02), `final parameters: distance ${d} (torch float32 ${yard})`);
  const varYard = Number(meta.final32_running_var_rel);
  const e = bufferError(values, final, "running_var");
  assert(e <= Math.max(5 * varYard, 1e-4), `final running_var: ${e} (torch float32 ${varYard})`);
});

Deno.test("ETH encoder parity with torch: eval-mode features under trained BN statistics", async () => {
  const config = await tinyEth27();
  const spec = contrastiveSpecFromConfig(config);
  const encoder = await GraphEncoder.create(spec, group("final64"), { threads: 1 });
  try {
    const images = tensor("eval_images");
    const x = Float32Array.from(images.data as Uint8Array, (v) => v / 255);
    const ours = await encoder.features({ dtype: "float32", shape: images.shape, data: x });
    const torch = tensor("eval64").data as Float32Array;
    assertEquals(ours.length, torch.length);
    let diff = 0;
    let scale = 0;
    for (let i = 0; i < torch.length; i++) {
      diff = Math.max(diff, Math.abs(ours[i] - torch[i]));
      scale = Math.max(scale, Math.abs(torch[i]));
    }
    const yard = Number(meta.eval32_rel);
    assert(
      diff / scale <= Math.max(10 * yard, 1e-5),
      `features: ${diff / scale} (torch f32 ${yard})`,
    );
  } finally {
    await encoder.release();
  }
});

Deno.test("ETH probe parity with torch: Adam with L2 over a fixed batch order", async () => {
  const x = tensor("probe_features");
  const [count, dim] = x.shape as number[];
  const labels = Array.from(tensor("probe_labels").data as Float32Array);
  const order = tensor("probe_order").data as Float32Array;
  const classifier = await LinearClassifier.create(
    {
      dim,
      classes: 10,
      weight: Float32Array.from(tensor("probe_weight0").data as Float32Array),
      bias: Float32Array.from(tensor("probe_bias0").data as Float32Array),
    },
    { kind: "adam", betas: [0.9, 0.999], eps: 1e-8, weightDecay: 1e-2 },
    { threads: 1 },
  );
  const features = x.data as Float32Array;
  const expectedLoss = tensor("probe_loss64").data as Float32Array;
  try {
    let k = 0;
    for (let epoch = 0; epoch < 4; epoch++) {
      for (let start = 0; start < count; start += 40) {
        const rows = Array.from(
          order.subarray(epoch * count + start, epoch * count + Math.min(start + 40, count)),
        );
        const batch = new Float32Array(rows.length * dim);
        rows.forEach((r, i) => batch.set(features.subarray(r * dim, (r + 1) * dim), i * dim));
        const loss = await classifier.step(batch, rows.map((r) => labels[r]), 1e-3);
        assert(Math.abs(loss - expectedLoss[k]) < 1e-5 * expectedLoss[k], `step ${k}: ${loss}`);
        k++;
      }
    }
    const w = classifier.snapshot();
    const expected = tensor("probe_weight64").data as Float32Array;
    let diff = 0;
    let scale = 0;
    expected.forEach((v, i) => {
      diff = Math.max(diff, Math.abs(w.weight[i] - v));
      scale = Math.max(scale, Math.abs(v));
    });
    assert(diff / scale < 1e-5, `probe weights: relative error ${diff / scale}`);
  } finally {
    await classifier.release();
  }
});
