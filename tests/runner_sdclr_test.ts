/** An SDCLR run end to end on a tiny long-tailed split: masks, dual BN, diagnostics, probes, groups. */
import { assert, assertClose, assertEquals } from "./assert.ts";
import { encodeInt64Npy } from "../src/data/npy.ts";
import { loadConfig } from "../src/config/mod.ts";
import { runExperiment } from "../src/train/runner.ts";
import { miniCifarIndicesByClass, miniCifarRunFolder } from "./mini_cifar.ts";

Deno.test("SDCLR run: masks at the prune fraction, rare-class loss share, linear and few-shot probes, groups", async () => {
  const dir = await miniCifarRunFolder("sdclr_run_");
  // A long-tailed pretraining split: class c gets 12 − c images (classes 0..9).
  const byClass = await miniCifarIndicesByClass();
  const longTail = byClass.flatMap((indices, c) => indices.slice(0, 12 - c));
  const write = (name: string, indices: number[]) =>
    Deno.writeFile(`${dir}/data/${name}`, encodeInt64Npy(indices));
  await write("d_i.npy", longTail);
  await write("train.npy", byClass.flatMap((indices) => indices.slice(20, 26)));
  await write("val.npy", byClass.flatMap((indices) => indices.slice(26, 28)));
  await write("s_b.npy", byClass.flatMap((indices) => indices.slice(0, 2)));
  await Deno.writeTextFile(
    `${dir}/config.yaml`,
    `
experiment: sdclr_tiny
seed: 10
device: cpu
data:
  dataset: cifar10
  dir: ${dir}/data
  pretrain_split: d_i.npy
  train_split: train.npy
  val_split: val.npy
  few_shot_split: s_b.npy
model: { architecture: resnet18, stem: cifar, width_multiplier: 0.0625, input_norm: imagenet }
head: { type: sdclr, output_dim: 16 }
method: { name: sdclr, prune_percent: 0.9 }
loss: { type: ntxent, temperature: 0.2 }
optimizer: { type: sgd, lr: 0.5, momentum: 0.9, weight_decay: 0.0001 }
lr_schedule: { type: warmup_cosine, warmup_epochs: 1 }
train: { epochs: 2, batch_size: 32, checkpoint_every_n_epochs: null }
augmentation: { recipe: sdclr }
evaluation:
  linear: { protocol: sdclr, epochs: 2, milestones: [1], batch_size: 32 }
  few_shot: { epochs: 2, milestones: [1], batch_size: 32 }
  groups: { by: rank, reference_split: d_i.npy, sizes: [4, 3, 3] }
output: { log_dir: ${dir}/logs, checkpoint_dir: ${dir}/checkpoints }
`,
  );
  const log = await runExperiment(await loadConfig(`${dir}/config.yaml`), {
    resume: false,
    session: { threads: 1 },
    progress: false,
  });
  assertEquals(log.status, "finished");
  assertEquals(log.average_training_loss_per_epoch.length, 2);
  for (const epoch of log.epochs) {
    const d = epoch.diagnostics as {
      sparsity: number;
      layerSparsity: Record<string, number>;
      rareClasses: { rareClasses: number[]; lossShare: number; sampleShare: number };
    };
    assertClose(d.sparsity, 0.9, 0, 1e-4, "mask sparsity");
    assertEquals(Object.keys(d.layerSparsity).length, 20, "20 conv layers in ResNet-18");
    assertEquals(d.rareClasses.rareClasses, [7, 8, 9], "the three smallest classes");
    assertClose(d.rareClasses.sampleShare, (5 + 4 + 3) / longTail.length, 1e-12);
    assert(
      d.rareClasses.lossShare > 0 && d.rareClasses.lossShare < 1,
      `loss share ${d.rareClasses.lossShare}`,
    );
  }
  assertEquals(log.model_scores.length, 1);
  assert(log.model_scores[0] >= 0 && log.model_scores[0] <= 1, `score ${log.model_scores[0]}`);
  const details = log.evaluations[0].details as {
    fewShot: { testAccuracy: number };
    groups: { linear: { groups: { name: string; accuracy: number }[]; balancedness: number } };
  };
  assert(
    details.fewShot.testAccuracy >= 0 && details.fewShot.testAccuracy <= 1,
    "few-shot accuracy",
  );
  assertEquals(details.groups.linear.groups.map((g) => g.name), ["many", "medium", "few"]);
  assert(Number.isFinite(details.groups.linear.balancedness), "balancedness");
  await Deno.remove(dir, { recursive: true });
});
