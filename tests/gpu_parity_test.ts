/**
 * CPU/CUDA parity, run on a GPU host (ignored, with the reason printed, where
 * the CUDA provider cannot be used):
 * - ResNet-18 (cifar stem) SimCLR step from one checkpoint: the loss of the
 *   first step and of the step after the update agree within 1e-3 relative
 *   between CPU and CUDA, with TF32 off, and so do the updated parameters;
 * - the float16 mixed-precision step on CUDA tracks the float32 losses;
 * - K steps through the ONNX Loop on CUDA equal K single steps on CUDA.
 *
 * TF32: onnxruntime-node 1.29.0 passes no CUDA provider option but the
 * device id (see src/runtime/session_options.ts), so `use_tf32 = 0` cannot
 * be set through the session; NVIDIA_TF32_OVERRIDE=0, which cuBLAS and cuDNN
 * read when they start, turns TF32 off for the whole process instead. This
 * file sets it before any CUDA session exists.
 *
 *   deno task setup-cuda && deno test -A tests/gpu_parity_test.ts
 */
import { assert, assertEquals, scaledError } from "./assert.ts";
import { readSafetensors, writeSafetensors } from "../src/artifacts/safetensors.ts";
import { buildContrastiveStep, type ContrastiveSpec } from "../src/methods/contrastive.ts";
import { initParams } from "../src/nn/mod.ts";
import { createSgd } from "../src/optim/mod.ts";
import { cudaUnavailableReason } from "../src/runtime/device.ts";
import type { HostTensor } from "../src/runtime/host_tensor.ts";
import { type Device, Session } from "../src/runtime/session.ts";
import {
  buildMixedPrecisionContrastiveStep,
  GRADS_FINITE,
  lossScaleValues,
} from "../src/train/mixed_precision.ts";
import { buildMultiStep, MultiStepRunner } from "../src/train/multi_step.ts";
import { StepRunner } from "../src/train/step_runner.ts";
import { Rng } from "../src/util/rng.ts";

if (Deno.env.get("NVIDIA_TF32_OVERRIDE") === undefined) Deno.env.set("NVIDIA_TF32_OVERRIDE", "0");
const unavailable = await cudaUnavailableReason();
if (unavailable) console.log(`gpu_parity_test: ignored, CUDA cannot be used here: ${unavailable}`);
const ignore = unavailable !== undefined;

const SGD = { kind: "sgd", momentum: 0.9, weightDecay: 1e-4 } as const;

function spec(width: number, batchSize: number, imageSize: number): ContrastiveSpec {
  return {
    encoder: { arch: "resnet18", stem: "cifar", width },
    head: { kind: "simclr", outDim: 128 },
    loss: { type: "ntxent", temperature: 0.2 },
    method: { name: "simclr" },
    batchSize,
    imageSize,
  };
}

/** Two views of one random batch (view 2 = view 1 + N(0, 0.5²)). */
function views(seed: number, shape: number[]): Record<string, HostTensor> {
  const rng = new Rng(seed, "views");
  const size = shape.reduce((a, b) => a * b, 1);
  const view1 = new Float32Array(size);
  rng.fork("view1").fillNormal(view1, 0, 1);
  const view2 = new Float32Array(size);
  rng.fork("noise").fillNormal(view2, 0, 0.5);
  for (let i = 0; i < size; i++) view2[i] += view1[i];
  return {
    view1: { dtype: "float32", shape, data: view1 },
    view2: { dtype: "float32", shape, data: view2 },
  };
}

Deno.test({
  name:
    "gpu parity: one ResNet-18 SimCLR step from one checkpoint gives the same loss on CPU and CUDA",
  ignore,
  fn: async () => {
    const step = buildContrastiveStep(spec(1, 32, 32), createSgd(SGD));
    const dir = await Deno.makeTempDir({ prefix: "gpu_parity_" });
    const checkpoint = `${dir}/init.safetensors`;
    await writeSafetensors(
      checkpoint,
      Object.fromEntries(initParams(step.store.entries(), new Rng(5, "init"))),
    );
    const batch = views(9, [32, 3, 32, 32]);

    const run = async (device: Device) => {
      const values = new Map(Object.entries((await readSafetensors(checkpoint)).tensors));
      const session = await Session.create(step.graph, { device });
      const runner = new StepRunner(session, step.layout, values);
      const first = await runner.step(batch, { lr: 0.05 });
      const second = await runner.step(batch, { lr: 0.05 });
      await session.release();
      return { losses: [first.loss, second.loss], values };
    };
    const cpu = await run("cpu");
    const cuda = await run("cuda");
    await Deno.remove(dir, { recursive: true });
    console.log(`losses cpu ${cpu.losses.join(", ")}; cuda ${cuda.losses.join(", ")}`);
    cpu.losses.forEach((loss, i) => {
      const rel = Math.abs(cuda.losses[i] - loss) / Math.abs(loss);
      assert(
        rel <= 1e-3,
        `step ${i + 1}: CUDA loss ${cuda.losses[i]} vs CPU ${loss} (relative ${rel})`,
      );
    });
    let worst = { name: "", error: 0 };
    for (const p of step.params) {
      const error = scaledError(
        cuda.values.get(p.tensor.name)!.data as Float32Array,
        cpu.values.get(p.tensor.name)!.data as Float32Array,
      );
      if (error > worst.error) worst = { name: p.tensor.name, error };
    }
    console.log(`parameters after 2 steps: worst scaled difference ${worst.error} (${worst.name})`);
    assert(
      worst.error <= 1e-3,
      `parameter ${worst.name} differs by ${worst.error} (scaled) between CPU and CUDA`,
    );
  },
});

Deno.test({
  name: "gpu parity: float16 mixed precision on CUDA tracks the float32 losses over 20 steps",
  ignore,
  fn: async () => {
    const tiny = spec(1 / 8, 16, 16);
    const batch = views(1, [16, 3, 16, 16]);
    const scaling = { kind: "dynamic", initialScale: 1024, growthInterval: 1000 } as const;
    const fp32 = buildContrastiveStep(tiny, createSgd(SGD));
    const amp = buildMixedPrecisionContrastiveStep(tiny, createSgd(SGD), {
      compute: "float16",
      lossScaling: scaling,
    });
    const curve = async (step: typeof fp32, extra: Map<string, HostTensor>) => {
      const values = new Map([...initParams(fp32.store.entries(), new Rng(21, "init")), ...extra]);
      const session = await Session.create(step.graph, { device: "cuda" });
      const runner = new StepRunner(session, step.layout, values);
      const losses: number[] = [];
      for (let i = 0; i < 20; i++) {
        const r = await runner.step(batch, { lr: 1e-4 });
        losses.push(r.loss);
        if (r.extras[GRADS_FINITE]) {
          assertEquals(Number(r.extras[GRADS_FINITE].data[0]), 1, `step ${i} overflowed`);
        }
      }
      await session.release();
      return losses;
    };
    const reference = await curve(fp32, new Map());
    const mixed = await curve(amp, lossScaleValues(scaling));
    console.log(`float32 ${reference.map((l) => l.toFixed(4)).join(" ")}`);
    console.log(`float16 ${mixed.map((l) => l.toFixed(4)).join(" ")}`);
    const rel = reference.map((l, i) => Math.abs(mixed[i] - l) / l);
    assert(Math.max(...rel) <= 0.02, `worst per-step relative difference ${Math.max(...rel)} > 2%`);
    assert(rel[19] <= 0.05, `final loss ${mixed[19]} vs ${reference[19]}`);
    assert(
      reference[19] < 0.5 * reference[0],
      `float32 must learn: ${reference[0]} → ${reference[19]}`,
    );
  },
});

Deno.test({
  name: "gpu parity: 4 steps through the Loop on CUDA equal 4 single steps on CUDA",
  ignore,
  fn: async () => {
    const step = buildContrastiveStep(spec(1 / 4, 32, 32), createSgd(SGD));
    const initial = initParams(step.store.entries(), new Rng(3, "init"));
    const batches = [0, 1, 2, 3].map((i) => views(20 + i, [32, 3, 32, 32]));
    const scalars = [0.1, 0.08, 0.06, 0.04].map((lr) => ({ lr }));
    const single = await Session.create(step.graph, { device: "cuda" });
    const singleRunner = new StepRunner(single, step.layout, new Map(initial));
    const losses: number[] = [];
    for (let i = 0; i < 4; i++) losses.push((await singleRunner.step(batches[i], scalars[i])).loss);
    await single.release();
    const multi = buildMultiStep(step.graph, step.layout, 4);
    const looped = await Session.create(multi.graph, { device: "cuda" });
    const result = await new MultiStepRunner(looped, multi.layout, new Map(initial)).run(
      batches,
      scalars,
    );
    await looped.release();
    console.log(`single ${losses.join(", ")}; loop ${result.losses.join(", ")}`);
    // cuDNN may pick other algorithms in the two sessions: equal up to float32 rounding.
    losses.forEach((l, i) => {
      const rel = Math.abs(result.losses[i] - l) / l;
      assert(rel <= 1e-4, `step ${i + 1}: loop ${result.losses[i]} vs single ${l}`);
    });
  },
});
