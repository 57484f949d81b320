/**
 * An SDCLR run end to end on a tiny long-tailed split: masks, dual BN, diagnostics, probes, groups.
 * The values are checked against what they must be (sparsity, group membership from the
 * reference split's counts, accuracies recomputed from per-class accuracies and test counts), so a
 * pipeline that mixes up splits, classes or groups fails here. (That pretraining beats the random
 * initialization is checked by quickstart_test.ts: at this size SDCLR does not reliably beat it.)
 */
import { assert, assertClose, assertEquals } from "./assert.ts";
import { classCounts } from "../src/data/mod.ts";
import { loadCifar } from "../src/data/cifar.ts";
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
  few_shot: { epochs: 2, milestones: [1], batch_size: 32, test_freq: 2 }
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
  assertEquals(log.data_counts, {
    pretrain: longTail.length,
    train: 60,
    val: 20,
    few_shot: 20,
    test: 1000,
  });
  assertEquals(log.evaluations[0].metric, "linear");
  const details = log.evaluations[0].details as unknown as EvaluationDetails;
  assertEquals(log.model_scores[0], details.linear.testAccuracy);

  // Accuracies agree with their per-class accuracies and the test set's class counts.
  const test = await loadCifar({ dataset: "cifar10", split: "test", dir: `${dir}/data` });
  const testCounts = classCounts(test.labels, 10);
  for (const probe of [details.linear, details.fewShot]) {
    const correct = probe.perClassAccuracy.reduce((sum, a, k) => sum + a * testCounts[k], 0);
    assertClose(correct / test.count, probe.testAccuracy, 1e-12, 0, "accuracy from per-class");
  }
  assertEquals(details.linear.counts, { train: 60, val: 20, test: 1000 });
  assertEquals(details.fewShot.counts, { train: 20, val: 20, test: 1000 });
  // Few-shot validated only after epoch 2 (test_freq 2), which is therefore kept.
  assertEquals(details.fewShot.epochs.map((e) => e.valAccuracy !== null), [false, true]);
  assertEquals(details.fewShot.bestEpoch, 2);

  // Groups from the counts of d_i.npy (class c has 12 − c images): 0–3 many, 4–6 medium, 7–9 few.
  assertEquals(details.groups.classes.map((g) => [g.name, g.classes]), [
    ["many", [0, 1, 2, 3]],
    ["medium", [4, 5, 6]],
    ["few", [7, 8, 9]],
  ]);
  for (
    const [report, probe] of [[details.groups.linear, details.linear], [
      details.groups.fewShot,
      details.fewShot,
    ]] as const
  ) {
    const expected = details.groups.classes.map((g) =>
      g.classes.reduce((sum, k) => sum + probe.perClassAccuracy[k], 0) / g.classes.length
    );
    report.groups.forEach((g, i) => assertClose(g.accuracy, expected[i], 1e-12, 0, g.name));
    const mean = expected.reduce((a, b) => a + b, 0) / 3;
    const std = Math.sqrt(expected.reduce((sum, a) => sum + (a - mean) ** 2, 0) / 3);
    assertClose(report.balancedness, std, 1e-12, 0, "balancedness: population std");
  }
  await Deno.remove(dir, { recursive: true });
});

interface ProbeDetails {
  testAccuracy: number;
  perClassAccuracy: number[];
  counts: { train: number; val: number; test: number };
  bestEpoch: number;
  epochs: { valAccuracy: number | null }[];
}

interface GroupReportDetails {
  groups: { name: string; accuracy: number }[];
  balancedness: number;
}

interface EvaluationDetails {
  linear: ProbeDetails;
  fewShot: ProbeDetails;
  groups: {
    classes: { name: string; classes: number[] }[];
    linear: GroupReportDetails;
    fewShot: GroupReportDetails;
  };
}
