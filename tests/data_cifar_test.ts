import assert from "node:assert/strict";
import { gzipSync } from "node:zlib";
import {
  CIFAR100_COARSE_CLASSES,
  CIFAR100_FINE_CLASSES,
  classCounts,
  loadCifar,
  parseCifarBinary,
  parseCifarPickle,
  unpickle,
} from "../src/data/mod.ts";

const FIXTURES = "tests/fixtures/data";
function assertEquals(actual: unknown, expected: unknown, message?: string): void {
  assert.deepStrictEqual(actual, expected, message ?? "values differ");
}

/** An assert.throws/rejects matcher: the message contains `text`. */
function including(text: string): { message: RegExp } {
  return { message: new RegExp(text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")) };
}

/** The pixel pattern of tools/make_data_fixtures.py: value of image i, channel c, row y, column x. */
function pattern(i: number, c: number, y: number, x: number): number {
  return (i * 37 + c * 101 + y * 7 + x * 13) % 256;
}

function patternImages(from: number, count: number): Uint8Array {
  const out = new Uint8Array(count * 3072);
  for (let i = 0; i < count; i++) {
    for (let c = 0; c < 3; c++) {
      for (let y = 0; y < 32; y++) {
        for (let x = 0; x < 32; x++) {
          out[i * 3072 + c * 1024 + y * 32 + x] = pattern(from + i, c, y, x);
        }
      }
    }
  }
  return out;
}

/** Binary CIFAR records: label byte(s) then the pattern pixels. */
function binaryRecords(labels: number[][], from = 0): Uint8Array {
  const record = labels[0].length + 3072;
  const out = new Uint8Array(labels.length * record);
  const pixels = patternImages(from, labels.length);
  labels.forEach((label, i) => {
    out.set(label, i * record);
    out.set(pixels.subarray(i * 3072, (i + 1) * 3072), i * record + label.length);
  });
  return out;
}

Deno.test("CIFAR-10 binary records parse into CHW images and labels", () => {
  const { images, labels } = parseCifarBinary(binaryRecords([[3], [0], [9]]), "cifar10", "mem.bin");
  assertEquals(Array.from(labels), [3, 0, 9]);
  assertEquals(images, patternImages(0, 3));
  // image 1, green plane, row 2, column 5
  assertEquals(images[1 * 3072 + 1024 + 2 * 32 + 5], pattern(1, 1, 2, 5));
});

Deno.test("CIFAR-100 binary records: coarse byte then fine byte", () => {
  const bytes = binaryRecords([[19, 99], [4, 0]]);
  assertEquals(Array.from(parseCifarBinary(bytes, "cifar100", "train.bin").labels), [99, 0]);
  assertEquals(Array.from(parseCifarBinary(bytes, "cifar100", "train.bin", "coarse").labels), [
    19,
    4,
  ]);
});

Deno.test("a truncated .bin is refused naming the file and the record size", () => {
  const bytes = binaryRecords([[1], [2]]).subarray(0, 3073 + 100);
  assert.throws(() => parseCifarBinary(bytes, "cifar10", "data/data_batch_1.bin"), {
    message:
      "data/data_batch_1.bin: 3173 bytes is not a whole number of 3073-byte cifar10 records " +
      "(1 records + 100 bytes): truncated or not a cifar10 binary file",
  });
});

Deno.test("a label out of range names the file and record", () => {
  assert.throws(
    () => parseCifarBinary(binaryRecords([[1], [10]]), "cifar10", "x.bin"),
    including("x.bin: record 1 has label 10, expected 0..9"),
  );
});

Deno.test("loadCifar reads the binary layout, .bin.gz too, with class names from batches.meta.txt", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const folder = `${dir}/cifar-10-batches-bin`;
    await Deno.mkdir(folder);
    await Deno.writeFile(`${folder}/data_batch_1.bin`, binaryRecords([[1], [2]], 0));
    await Deno.writeFile(`${folder}/data_batch_2.bin.gz`, gzipSync(binaryRecords([[7]], 2)));
    await Deno.writeFile(`${folder}/test_batch.bin`, binaryRecords([[5]], 9));
    await Deno.writeTextFile(`${folder}/batches.meta.txt`, "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n\n");
    const train = await loadCifar({ dataset: "cifar10", split: "train", dir });
    assertEquals(train.count, 3);
    assertEquals(Array.from(train.labels), [1, 2, 7]);
    assertEquals(train.images, patternImages(0, 3));
    assertEquals(train.classes, ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"]);
    const test = await loadCifar({ dataset: "cifar10", split: "test", dir: folder });
    assertEquals(Array.from(test.labels), [5]);
    assertEquals(test.images, patternImages(9, 1));

    await Deno.writeFile(`${folder}/data_batch_4.bin`, binaryRecords([[1]]));
    await assert.rejects(
      () => loadCifar({ dataset: "cifar10", split: "train", dir }),
      including("data_batch_3.bin is missing but"),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadCifar says where it looked when nothing is there", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await assert.rejects(
      () => loadCifar({ dataset: "cifar100", split: "train", dir }),
      (error: Error) => {
        assert.match(error.message, including(`${dir}/cifar-100-binary (binary)`).message);
        assert.match(error.message, including(`${dir}/cifar-100-python (python)`).message);
        assert.match(error.message, including("data fetch cifar100 --dir").message);
        return true;
      },
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("python batches as the official files pickle them (Python 2, protocol 2)", async () => {
  const train = await loadCifar({ dataset: "cifar10", split: "train", dir: FIXTURES });
  assertEquals(train.count, 5);
  assertEquals(Array.from(train.labels), [3, 9, 0, 1, 7]);
  assertEquals(train.images, patternImages(0, 5));
  assertEquals(train.classes[9], "truck");
  const test = await loadCifar({
    dataset: "cifar10",
    split: "test",
    dir: FIXTURES,
    format: "python",
  });
  assertEquals(Array.from(test.labels), [5, 2]);
  assertEquals(test.images, patternImages(5, 2));

  const fine = await loadCifar({ dataset: "cifar100", split: "train", dir: FIXTURES });
  assertEquals(Array.from(fine.labels), [99, 0, 42]);
  assertEquals(fine.classes.length, 100);
  assertEquals(fine.classes[42], "fine_42");
  assertEquals(fine.images, patternImages(0, 3));
  const coarse = await loadCifar({
    dataset: "cifar100",
    split: "test",
    dir: FIXTURES,
    labelKind: "coarse",
  });
  assertEquals(Array.from(coarse.labels), [17]);
  assertEquals(coarse.classes[17], "coarse_17");
  assertEquals(coarse.images, patternImages(3, 1));
});

Deno.test("python batches pickled by Python 3 with protocols 2, 4 and 5", async () => {
  for (const protocol of [2, 4, 5]) {
    const path = `${FIXTURES}/pickle/cifar10_py3_protocol${protocol}.pkl`;
    const { images, labels } = parseCifarPickle(await Deno.readFile(path), "cifar10", path);
    assertEquals(Array.from(labels), [3, 9, 0], path);
    assertEquals(images, patternImages(0, 3), path);
  }
});

Deno.test("corrupt or hostile pickles are refused with the file and byte offset", async () => {
  const path = `${FIXTURES}/cifar-10-batches-py/data_batch_2`;
  const bytes = await Deno.readFile(path);
  assert.throws(
    () => parseCifarPickle(bytes.subarray(0, 3000), "cifar10", path),
    including(
      `${path}: corrupt or unsupported pickle at byte 211: needs 6144 more bytes, file ends at 3000 (truncated?)`,
    ),
  );
  const garbage = bytes.slice();
  garbage[5] = 0xff;
  assert.throws(
    () => parseCifarPickle(garbage, "cifar10", "g.pkl"),
    including("g.pkl: corrupt or unsupported pickle at byte 5: unsupported opcode 0xff"),
  );
  // os.system('x') as protocol 0 would pickle it: GLOBAL + REDUCE of an unknown callable.
  const evil = new TextEncoder().encode("cos\nsystem\n(S'echo hi'\ntR.");
  assert.throws(() => unpickle(evil, "evil.pkl"), including("evil.pkl"));
  const evilBinary = new Uint8Array([
    ...[0x80, 0x02],
    ...new TextEncoder().encode("cos\nsystem\nU\x02hi"),
    ...[0x85, 0x52, 0x2e], // TUPLE1 REDUCE STOP
  ]);
  assert.throws(() => unpickle(evilBinary, "evil2.pkl"), including("refusing to call os.system"));
  assert.throws(
    () => parseCifarPickle(new Uint8Array([0x80, 0x02, 0x7d, 0x2e]), "cifar10", "empty.pkl"),
    including("empty.pkl: key 'data' missing"),
  );
});

Deno.test("CIFAR-100 name lists have 100 fine and 20 coarse classes", () => {
  assertEquals(CIFAR100_FINE_CLASSES.length, 100);
  assertEquals(new Set(CIFAR100_FINE_CLASSES).size, 100);
  assertEquals(CIFAR100_COARSE_CLASSES.length, 20);
  assertEquals([...CIFAR100_FINE_CLASSES].sort(), [...CIFAR100_FINE_CLASSES]);
});

Deno.test("the bundled data/cifar10-mini holds 2,000 train and 1,000 test records", async () => {
  const train = await loadCifar({ dataset: "cifar10", split: "train", dir: "data/cifar10-mini" });
  assertEquals(train.count, 2000);
  assertEquals(classCounts(train.labels, 10), [202, 191, 203, 195, 214, 183, 207, 199, 203, 203]);
  assertEquals(Array.from(train.labels.subarray(0, 3)), [6, 9, 9]);
  assertEquals(Array.from(train.images.subarray(0, 4)), [61, 48, 56, 81]);
  assertEquals(train.images.reduce((sum, v) => sum + v, 0), 742407008);
  const test = await loadCifar({ dataset: "cifar10", split: "test", dir: "data/cifar10-mini" });
  assertEquals(test.count, 1000);
  assertEquals(classCounts(test.labels, 10), [103, 89, 100, 103, 90, 86, 112, 102, 106, 109]);
  assertEquals(test.classes[0], "airplane");
});

const fullDir = Deno.env.get("CIFAR10_DIR") ?? "/tmp/cifar10-full";
const haveFull = await Deno.stat(`${fullDir}/cifar-10-batches-bin/data_batch_5.bin`).then(
  () => true,
  () => false,
);
if (!haveFull) {
  console.log(
    `data_cifar_test: skipping the full CIFAR-10 test: no ${fullDir}/cifar-10-batches-bin ` +
      `(build it with /usr/bin/python3 shared/datasets/make-cifar10-bin.py DIR and set CIFAR10_DIR=DIR)`,
  );
}

Deno.test({
  name: "the full CIFAR-10 (CIFAR10_DIR) has 50,000/10,000 records, 5,000/1,000 per class",
  ignore: !haveFull,
  fn: async () => {
    const train = await loadCifar({ dataset: "cifar10", split: "train", dir: fullDir });
    assertEquals(train.count, 50000);
    assertEquals(classCounts(train.labels, 10), new Array(10).fill(5000));
    const test = await loadCifar({ dataset: "cifar10", split: "test", dir: fullDir });
    assertEquals(test.count, 10000);
    assertEquals(classCounts(test.labels, 10), new Array(10).fill(1000));
    // The bundled subset is the first 2,000 records of the full set.
    const mini = await loadCifar({ dataset: "cifar10", split: "train", dir: "data/cifar10-mini" });
    assertEquals(train.images.subarray(0, mini.images.length), mini.images);
    assertEquals(train.labels.subarray(0, 2000), mini.labels);
  },
});
