/**
 * The ImageNet-100-LT config of config/sdclr/ end to end on a tiny stand-in (four classes of JPEGs
 * of different sizes, the six SDCLR list files): pretraining crops from whole images, both SDCLR
 * probes with RandomResizedCrop + flip, validation every test_freq epochs on top-5, groups by count
 * from the long-tail list. Shrunk to CI size with overrides only: ResNet-18 at 1/16 width instead
 * of ResNet-50 (the ImageNet stem kept; the data path and probes do not depend on depth), 32-px
 * crops, one epoch, two probe epochs.
 */
import { assert, assertEquals } from "./assert.ts";
import { loadConfig } from "../src/config/mod.ts";
import { runExperiment } from "../src/train/runner.ts";
import { makeImageNetStandin } from "../tools/make_imagenet_standin.ts";
import { exists } from "../src/data/files.ts";

interface ProbeDetails {
  augmentation: string;
  selectOn: string;
  testFreq: number;
  testAccuracy: number;
  testTop5Accuracy: number;
  bestEpoch: number;
  epochs: { epoch: number; valAccuracy: number | null; valTop5Accuracy: number | null }[];
  counts: { train: number; val: number; test: number };
}

Deno.test("ImageNet-100-LT config on a stand-in: whole-image crops, both probes, top-5 selection, groups", async () => {
  const dir = await Deno.makeTempDir({ prefix: "imagenet_standin_" });
  try {
    const counts = await makeImageNetStandin(`${dir}/data`);
    assertEquals(counts.longTail, [10, 6, 3, 2]);
    const loaded = await loadConfig("config/sdclr/sdclr_imagenet100_LT.yaml", {
      dataDir: `${dir}/data`,
      epochs: 1,
      set: [
        "model.architecture=resnet18",
        "model.width_multiplier=0.0625",
        "data.image_size=32",
        "data.eval_resize=36",
        "data.num_classes=4",
        "train.batch_size=8",
        "evaluation.linear.epochs=2",
        "evaluation.linear.batch_size=16",
        "evaluation.few_shot.epochs=2",
        "evaluation.few_shot.test_freq=2",
        "evaluation.groups.many_above=5",
        "evaluation.groups.few_below=3",
        `output.log_dir=${dir}/logs`,
        `output.checkpoint_dir=${dir}/checkpoints`,
      ],
    });
    const log = await runExperiment(loaded, {
      resume: false,
      session: { threads: 1 },
      progress: false,
    });
    assertEquals(log.status, "finished");
    assertEquals(log.data_counts, { pretrain: 21, train: 36, val: 12, few_shot: 8, test: 12 });
    // 21 whole images in batches of 8: 8, 8, 5.
    assertEquals(log.average_training_loss_per_epoch.length, 1);
    assert(Number.isFinite(log.average_training_loss_per_epoch[0]), "finite loss");
    assert(
      log.notes.some((n) => n.includes("whole images") && n.includes("at most 320 px")),
      log.notes.join("\n"),
    );
    const details = log.evaluations[0].details as unknown as {
      linear: ProbeDetails;
      fewShot: ProbeDetails;
      groups: {
        classes: { name: string; classes: number[] }[];
        linear: { groups: { name: string; accuracy: number | null }[] };
      };
    };
    for (
      const [probe, train, testFreq] of [[details.linear, 36, 2], [details.fewShot, 8, 2]] as const
    ) {
      // train_imagenet.py: RandomResizedCrop(224) + flip, validation top-5 picks the model.
      assertEquals(probe.augmentation, "random_resized_crop_flip");
      assertEquals([probe.selectOn, probe.testFreq], ["top5", testFreq]);
      assertEquals(probe.counts, { train, val: 12, test: 12 });
      assertEquals(probe.epochs.map((e) => e.valTop5Accuracy !== null), [false, true]);
      assertEquals(probe.bestEpoch, 2);
      // Four classes: every label is in the top five.
      assertEquals(probe.testTop5Accuracy, 1);
    }
    // Groups by count of the long-tail list: 10 and 6 images > 5 (many), 3 medium, 2 < 3 (few).
    assertEquals(details.groups.classes.map((g) => [g.name, g.classes]), [
      ["many", [0, 1]],
      ["medium", [2]],
      ["few", [3]],
    ]);
    assert(details.groups.linear.groups.every((g) => g.accuracy !== null), "every group scored");
    // Decoded once: whole images for crops, the evaluation transform for val/test.
    const lists = `${dir}/data/splits/imagenet-100`;
    for (
      const cache of [
        "imageNet_100_LT_train.txt.full.cache",
        "ImageNet_100_train.txt.full.cache",
        "imageNet_100_sub_balance_train_0.01.txt.full.cache",
        "ImageNet_100_val.txt.cache",
        "ImageNet_100_test.txt.cache",
      ]
    ) {
      assert(await exists(`${lists}/${cache}`), `${cache} written`);
    }
    assert(!(await exists(`${lists}/ImageNet_100_train.txt.cache`)), "no unread form decoded");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
