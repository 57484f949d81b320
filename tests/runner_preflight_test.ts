/**
 * What a config asks for is settled before the first step: the evaluation runs once on a few
 * images (so it fails in the first seconds, with nothing written), a last batch of one image is
 * dropped and said once, and a run with only the few-shot probe (or kNN) logs which accuracy its
 * `model_scores` are.
 */
import { assert, assertEquals, assertThrowsMessage } from "./assert.ts";
import { encodeInt64Npy } from "../src/data/npy.ts";
import { loadConfig } from "../src/config/mod.ts";
import { runExperiment } from "../src/train/runner.ts";
import { exists } from "../src/data/files.ts";
import { printRunSummary } from "../src/cli/run.ts";
import { miniCifarRunFolder } from "./mini_cifar.ts";

async function tinyRun(dir: string, evaluation: string, extraData = ""): Promise<string> {
  await Deno.writeFile(
    `${dir}/data/p65.npy`,
    encodeInt64Npy(Array.from({ length: 65 }, (_, i) => i)),
  );
  await Deno.writeFile(
    `${dir}/data/t.npy`,
    encodeInt64Npy(Array.from({ length: 40 }, (_, i) => 100 + i)),
  );
  await Deno.writeFile(
    `${dir}/data/v.npy`,
    encodeInt64Npy(Array.from({ length: 20 }, (_, i) => 200 + i)),
  );
  const path = `${dir}/config.yaml`;
  await Deno.writeTextFile(
    path,
    `
experiment: preflight
seed: 1
device: cpu
data: { dataset: cifar10, dir: ${dir}/data, pretrain_split: p65.npy${extraData} }
model: { architecture: resnet18, stem: cifar, width_multiplier: 0.0625, input_norm: imagenet }
head: { type: simclr, output_dim: 16 }
train: { epochs: 1, batch_size: 64, checkpoint_every_n_epochs: null }
evaluation: ${evaluation}
output: { log_dir: ${dir}/logs, checkpoint_dir: ${dir}/checkpoints }
`,
  );
  return path;
}

Deno.test("an evaluation that would fail after pretraining fails before the first step, writing nothing", async () => {
  const dir = await miniCifarRunFolder("preflight_");
  try {
    const loaded = await loadConfig(await tinyRun(dir, "{ knn: { k: 5 }, linear: null }"));
    let trained = false;
    await assertThrowsMessage(
      () =>
        runExperiment(loaded, {
          resume: false,
          session: { threads: 1 },
          progress: false,
          stopAfterSteps: 1,
          evaluator: {
            due: () => true,
            run: () => {
              trained = true;
              return Promise.reject(new Error("not reached"));
            },
            check: () => Promise.reject(new Error("evaluation.knn: broken on purpose")),
          },
        }),
      "evaluation.knn: broken on purpose",
    );
    assert(!trained, "nothing evaluated");
    assert(!(await exists(`${dir}/logs/preflight.json`)), "no log written");
    assert(
      !(await exists(`${dir}/checkpoints/preflight/last.safetensors`)),
      "no checkpoint written",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a last batch of one image is dropped and said once; few-shot alone scores the run", async () => {
  const dir = await miniCifarRunFolder("preflight_");
  try {
    await Deno.writeFile(
      `${dir}/data/s.npy`,
      encodeInt64Npy(Array.from({ length: 20 }, (_, i) => 300 + i)),
    );
    const loaded = await loadConfig(
      await tinyRun(
        dir,
        "{ linear: null, few_shot: { epochs: 1, milestones: [1], batch_size: 16 } }",
        ", val_split: v.npy, few_shot_split: s.npy",
      ),
    );
    const log = await runExperiment(loaded, {
      resume: false,
      session: { threads: 1 },
      progress: false,
    });
    assertEquals(log.status, "finished");
    assertEquals(log.notes.length, 1);
    assert(
      log.notes[0].includes(
        "65 pretraining images in batches of 64 leave a last batch of one image",
      ),
    );
    const details = log.evaluations[0].details as { fewShot: { testAccuracy: number } };
    assertEquals(log.evaluations[0].metric, "few_shot");
    assertEquals(log.model_scores, [details.fewShot.testAccuracy]);
    const printed: string[] = [];
    const original = console.log;
    console.log = (...args: unknown[]) => printed.push(args.join(" "));
    try {
      printRunSummary(loaded, log);
    } finally {
      console.log = original;
    }
    assert(
      printed.some((line) =>
        line.startsWith("few-shot test accuracy (no linear probe configured) per evaluation:")
      ),
      printed.join("\n"),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
