/**
 * Test helper: two training steps of one step graph in sessions built with
 * different options (a lowering on or off), from the same start and views,
 * to check that a rewrite of what ORT runs changes only the rounding.
 */
import type { ContrastiveStep } from "../src/methods/contrastive.ts";
import { initParams } from "../src/nn/mod.ts";
import type { HostTensor } from "../src/runtime/host_tensor.ts";
import { Session, type SessionOptions } from "../src/runtime/session.ts";
import { StepRunner } from "../src/train/step_runner.ts";
import { Rng } from "../src/util/rng.ts";
import { normal } from "./random_tensors.ts";

/** What {@link twoStepsUnder} found. */
export interface StepVariantsResult {
  /** The two steps' losses under each variant. */
  losses: [number[], number[]];
  /** Relative L2 distance of every carried value (parameters, state) after the two steps. */
  relative: number;
}

/**
 * Runs two SGD steps (lr 0.1) of `step`, whose views are [4, 3, 16, 16], once
 * in a session with `variants[0]` and once with `variants[1]` (one thread each).
 */
export async function twoStepsUnder(
  step: ContrastiveStep,
  variants: [SessionOptions, SessionOptions],
): Promise<StepVariantsResult> {
  const initial = initParams(step.store.entries(), new Rng(3, "init"));
  const rng = new Rng(4, "views");
  const batches = [0, 1].map((i) => ({
    [step.inputs.view1]: normal(rng.fork(`a${i}`), [4, 3, 16, 16]),
    [step.inputs.view2]: normal(rng.fork(`b${i}`), [4, 3, 16, 16]),
  }));
  const results: { losses: number[]; values: Map<string, HostTensor> }[] = [];
  for (const options of variants) {
    const session = await Session.create(step.graph, { threads: 1, ...options });
    const values = new Map(initial);
    const runner = new StepRunner(session, step.layout, values);
    const losses = [];
    for (const batch of batches) losses.push((await runner.step(batch, { lr: 0.1 })).loss);
    results.push({ losses, values });
    await session.release();
  }
  let diff = 0;
  let norm = 0;
  for (const c of step.layout.carried) {
    const a = results[0].values.get(c.input)!.data as Float32Array;
    const b = results[1].values.get(c.input)!.data as Float32Array;
    for (let i = 0; i < a.length; i++) {
      diff += (a[i] - b[i]) ** 2;
      norm += a[i] ** 2;
    }
  }
  return { losses: [results[0].losses, results[1].losses], relative: Math.sqrt(diff / norm) };
}
