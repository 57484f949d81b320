/**
 * Data provenance: file checksums and decoded-array fingerprints agree with
 * the independent torch pipeline's (tools/eth_torch_reference.py `provenance`,
 * numpy + hashlib) on the bundled CIFAR-10 subset, known fingerprints are
 * named, and any change of a pixel or a label changes the fingerprint.
 */
import { assert, assertEquals } from "./assert.ts";
import { loadCifar } from "../src/data/cifar.ts";
import {
  datasetFingerprint,
  fileChecksums,
  KNOWN_TRAIN_FINGERPRINTS,
} from "../src/data/provenance.ts";
import { loadConfig } from "../src/config/mod.ts";
import {
  describeProvenance,
  experimentProvenance,
  loadExperimentData,
} from "../src/train/experiment_data.ts";
import { miniCifarRunFolder } from "./mini_cifar.ts";

const MINI = "data/cifar10-mini";
// /usr/bin/python3 -c "import sys; sys.path.insert(0, 'tools'); import eth_torch_reference as r;
//   print(r.provenance('data/cifar10-mini', 'Cifar10'))"
const TORCH = {
  files: {
    "data_batch_1.bin": "f6cf018ed1eaea11bdf41e3cd20057141759693de87822d811d177d0f8b63e02",
    "test_batch.bin": "b7a3bc83282a1eb1ebb65036a70feb09b10fa415c07f88228f9a318e129c561d",
  },
  train: "22e5e69da9167cc9c585e861f8e8ecb137aeb07200e059ae5adc0ac9a436b51a",
  test: "73cea5d1824fccd39e0ac43af0692d53204b030df1119efa93152f604fc51535",
};

Deno.test("provenance: checksums and fingerprints equal the torch pipeline's", async () => {
  const train = await loadCifar({ dataset: "cifar10", split: "train", dir: MINI });
  const test = await loadCifar({ dataset: "cifar10", split: "test", dir: MINI });
  assertEquals(datasetFingerprint(train), { count: 2000, sha256: TORCH.train });
  assertEquals(datasetFingerprint(test), { count: 1000, sha256: TORCH.test });
  assertEquals(
    await fileChecksums([`${MINI}/data_batch_1.bin`, `${MINI}/test_batch.bin`]),
    TORCH.files,
  );
  assert(KNOWN_TRAIN_FINGERPRINTS[TORCH.train].startsWith("data/cifar10-mini"));
});

Deno.test("provenance: one pixel or one label changes the fingerprint", async () => {
  const train = await loadCifar({ dataset: "cifar10", split: "train", dir: MINI });
  const base = datasetFingerprint(train).sha256;
  const pixel = { ...train, images: train.images.slice() };
  pixel.images[12345] ^= 1;
  const label = { ...train, labels: train.labels.slice() };
  label.labels[7] = (label.labels[7] + 1) % 10;
  assert(datasetFingerprint(pixel).sha256 !== base);
  assert(datasetFingerprint(label).sha256 !== base);
});

Deno.test("provenance: a run's data is named, with the files it read", async () => {
  const dir = await miniCifarRunFolder("provenance_");
  const { config } = await loadConfig("config/eth/experiment_27.yaml", { dataDir: `${dir}/data` });
  const provenance = await experimentProvenance(config, await loadExperimentData(config));
  assertEquals(provenance.files, TORCH.files);
  assertEquals(provenance.full?.sha256, TORCH.train);
  assertEquals(provenance.test?.sha256, TORCH.test);
  const line = describeProvenance(provenance);
  assert(line.startsWith(`data: ${dir}/data: data/cifar10-mini: the first 2,000 records`), line);
  // In its bundled folder, the folder is said once.
  const bundled = describeProvenance({ ...provenance, dir: "data/cifar10-mini" });
  assert(bundled.startsWith("data: data/cifar10-mini: the first 2,000 records of the"), bundled);
  await Deno.remove(dir, { recursive: true });
});
