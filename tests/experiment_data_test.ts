/**
 * The data of a run as its config names it: every split read (test_split too), nothing that is not
 * read, whole images where crops are random, the groups' class counts up front.
 */
import { assert, assertEquals } from "./assert.ts";
import { encodeInt64Npy } from "../src/data/npy.ts";
import { isFullImageSet } from "../src/data/full_images.ts";
import { parseConfigDocument } from "../src/config/mod.ts";
import { loadExperimentData } from "../src/train/experiment_data.ts";
import { makeImageNetStandin } from "../tools/make_imagenet_standin.ts";
import { miniCifarRunFolder } from "./mini_cifar.ts";

const TINY_MODEL = { architecture: "resnet18", width_multiplier: 0.0625 };

Deno.test("CIFAR: test_split indexes the official test set; unread sets are not loaded", async () => {
  const dir = await miniCifarRunFolder("experiment_data_");
  try {
    const write = (name: string, indices: number[]) =>
      Deno.writeFile(`${dir}/data/${name}`, encodeInt64Npy(indices));
    await write("pre.npy", [0, 1, 2, 3, 4, 5]);
    await write("test.npy", [10, 20, 30, 40]);
    await write("ref.npy", [0, 1, 2]);
    const { config } = parseConfigDocument({
      experiment: "d",
      data: {
        dataset: "cifar10",
        dir: `${dir}/data`,
        pretrain_split: "pre.npy",
        test_split: "test.npy",
      },
      model: TINY_MODEL,
      train: { epochs: 1 },
      evaluation: {
        linear: { protocol: "sdclr" },
        groups: { by: "rank", reference_split: "ref.npy", sizes: [4, 3, 3] },
      },
    }, "d.yaml");
    const data = await loadExperimentData(config);
    assertEquals([data.pretrain.count, data.train?.count, data.test?.count], [6, 2000, 4]);
    assertEquals([data.val, data.fewShot, data.trainFull], [null, null, null]);
    assert(data.test!.source.includes("test.npy"), data.test!.source);
    const expected = new Array(10).fill(0);
    for (const label of data.train!.labels.subarray(0, 3)) expected[label]++;
    assertEquals(data.groupCounts, expected);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("image folders: whole images for pretraining and the augmented probe, test_split into test/", async () => {
  const dir = await Deno.makeTempDir({ prefix: "experiment_data_" });
  try {
    await makeImageNetStandin(`${dir}/standin`);
    await Deno.mkdir(`${dir}/data`);
    await Deno.symlink(`${dir}/standin/train`, `${dir}/data/train`);
    await Deno.symlink(`${dir}/standin/val`, `${dir}/data/test`);
    const write = (name: string, indices: number[]) =>
      Deno.writeFile(`${dir}/data/${name}`, encodeInt64Npy(indices));
    await write("pre.npy", [0, 1, 2, 12, 13, 24]);
    await write("probe.npy", [3, 4, 15, 16, 27, 28, 39, 40]);
    await write("test.npy", [0, 3, 6, 9]);
    const document = (knn: unknown) => ({
      experiment: "f",
      data: {
        dataset: "imagefolder",
        dir: `${dir}/data`,
        image_size: 32,
        eval_resize: 36,
        full_image_max_side: 48,
        pretrain_split: "pre.npy",
        train_split: "probe.npy",
        test_split: "test.npy",
      },
      model: { ...TINY_MODEL, stem: "imagenet" },
      train: { epochs: 1 },
      evaluation: { linear: { protocol: "sdclr", augment: true }, knn },
    });
    const data = await loadExperimentData(parseConfigDocument(document(null), "f.yaml").config);
    assert(isFullImageSet(data.pretrain), "pretraining reads whole images");
    assertEquals(Array.from(data.pretrain.labels), [0, 0, 0, 1, 1, 2]);
    assert(data.pretrain.height <= 48 && data.pretrain.width <= 48, "bounded to 48 px");
    assertEquals([data.train, data.trainFull?.count, data.test?.count], [null, 8, 4]);
    assertEquals([data.test!.height, data.test!.width], [32, 32]);
    // kNN reads the probe set in the evaluation form as well.
    const both = await loadExperimentData(parseConfigDocument(document({ k: 3 }), "f.yaml").config);
    assertEquals([both.train?.count, both.train?.height, both.trainFull?.count], [8, 32, 8]);
    assertEquals(Array.from(both.train!.labels), Array.from(both.trainFull!.labels));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
