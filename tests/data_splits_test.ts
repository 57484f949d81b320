import assert from "node:assert/strict";
import {
  classCounts,
  encodeInt64Npy,
  longTailCounts,
  makeLongTailSplit,
  makeLtCommand,
  makeTrainValSplit,
  parseNpy,
  readIndexNpy,
  readLabelsFile,
  readNpy,
} from "../src/data/mod.ts";

const SPLITS = "tests/fixtures/data/splits";
const LABELS = `${SPLITS}/cifar10_train_labels.u8`;

function assertEquals(actual: unknown, expected: unknown, message?: string): void {
  assert.deepStrictEqual(actual, expected, message ?? "values differ");
}

function including(text: string): { message: RegExp } {
  return { message: new RegExp(text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")) };
}

/** A .npy file of format `major` with a given header text and data bytes. */
function npyBytes(major: number, header: string, data: Uint8Array): Uint8Array {
  const headerBytes = new TextEncoder().encode(header + "\n");
  const prefix = major === 1 ? 10 : 12;
  const out = new Uint8Array(prefix + headerBytes.length + data.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, major, 0]);
  const view = new DataView(out.buffer);
  if (major === 1) view.setUint16(8, headerBytes.length, true);
  else view.setUint32(8, headerBytes.length, true);
  out.set(headerBytes, prefix);
  out.set(data, prefix + headerBytes.length);
  return out;
}

Deno.test("SDCLR's split1_D_i.npy has 4500, 2697, ..., 45 images per class", async () => {
  const labels = await readLabelsFile(LABELS);
  assertEquals(labels.length, 50000);
  const indices = await readIndexNpy(`${SPLITS}/split1_D_i.npy`, labels.length);
  assertEquals(indices.length, 11165);
  assertEquals(Array.from(indices.subarray(0, 3)), [44968, 38312, 17959]);
  const counts = classCounts(Array.from(indices, (i) => labels[i]), 10);
  assertEquals(counts, [348, 969, 125, 208, 1617, 75, 4500, 581, 2697, 45]);
  assertEquals([...counts].sort((a, b) => b - a), longTailCounts(4500, 10, 100));
});

Deno.test(".npy header: versions 1, 2, 3, dtypes and byte orders", () => {
  const le = new Uint8Array(new BigInt64Array([5n, -2n]).buffer);
  const v1 = parseNpy(
    npyBytes(1, "{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }", le),
    "a.npy",
  );
  assertEquals(v1.descr, "<i8");
  assertEquals(Array.from(v1.data as BigInt64Array), [5n, -2n]);
  const v2 = parseNpy(
    npyBytes(
      2,
      "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 1), }",
      new Uint8Array([1, 0, 0, 0, 255, 255, 255, 255]),
    ),
    "b.npy",
  );
  assertEquals(v2.shape, [2, 1]);
  assertEquals(Array.from(v2.data as Int32Array), [1, -1]);
  const v3 = parseNpy(
    npyBytes(
      3,
      '{"descr": "|u1", "fortran_order": True, "shape": (3,)}',
      new Uint8Array([7, 8, 9]),
    ),
    "c.npy",
  );
  assertEquals(v3.fortranOrder, true);
  assertEquals(Array.from(v3.data as Uint8Array), [7, 8, 9]);
  const big = parseNpy(
    npyBytes(
      1,
      "{'descr': '>i8', 'fortran_order': False, 'shape': (1,), }",
      new Uint8Array([0, 0, 0, 0, 0, 0, 1, 2]),
    ),
    "d.npy",
  );
  assertEquals(Array.from(big.data as BigInt64Array), [258n]);
  const scalar = parseNpy(
    npyBytes(
      1,
      "{'descr': '<f8', 'fortran_order': False, 'shape': (), }",
      new Uint8Array(new Float64Array([2.5]).buffer),
    ),
    "e.npy",
  );
  assertEquals(Array.from(scalar.data as Float64Array), [2.5]);

  assert.throws(() => parseNpy(new Uint8Array(20), "z.npy"), including("z.npy: not a .npy file"));
  assert.throws(
    () =>
      parseNpy(
        npyBytes(
          1,
          "{'descr': '<c16', 'fortran_order': False, 'shape': (1,), }",
          new Uint8Array(16),
        ),
        "f.npy",
      ),
    including("f.npy: unsupported .npy dtype '<c16'"),
  );
  assert.throws(
    () =>
      parseNpy(
        npyBytes(1, "{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }", le),
        "g.npy",
      ),
    including("g.npy: .npy data holds 16 bytes, shape (3) of <i8 needs 24"),
  );
});

Deno.test("the int64 .npy writer round-trips and aligns its header to 64 bytes", async () => {
  const values = [0, 49999, 123, 2 ** 40];
  const bytes = encodeInt64Npy(values);
  assertEquals((10 + new DataView(bytes.buffer).getUint16(8, true)) % 64, 0);
  const header = new TextDecoder().decode(
    bytes.subarray(10, 10 + new DataView(bytes.buffer).getUint16(8, true)),
  );
  assert.match(header, /^\{'descr': '<i8', 'fortran_order': False, 'shape': \(4,\), \} *\n$/);
  const array = parseNpy(bytes, "mem");
  assertEquals(Array.from(array.data as BigInt64Array, Number), values);

  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeFile(`${dir}/idx.npy`, encodeInt64Npy([3, 50000, 1]));
    await assert.rejects(
      () => readIndexNpy(`${dir}/idx.npy`, 50000),
      {
        message:
          `${dir}/idx.npy: index 50000 at position 1 is out of range [0, 50000) for a data set of 50000 images`,
      },
    );
    assertEquals(Array.from((await readNpy(`${dir}/idx.npy`)).shape), [3]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("long-tail counts follow floor(n_max · r^(i/(C−1))) (SPEC §B sizes)", () => {
  assertEquals(longTailCounts(4500, 10, 100), [4500, 2697, 1617, 969, 581, 348, 208, 125, 75, 45]);
  const cifar100 = longTailCounts(450, 100, 100);
  assertEquals(cifar100.reduce((a, b) => a + b, 0), 9754);
  assertEquals(cifar100.slice(0, 3), [450, 429, 410]);
  assertEquals(cifar100.at(-1), 4);
});

Deno.test("makeLongTailSplit: D_i, D_b and S_b relate as in SDCLR's files", async () => {
  const labels = await readLabelsFile(LABELS);
  const { pool, val, train } = makeTrainValSplit({
    labels,
    classes: 10,
    trainPerClass: 4500,
    valPerClass: 500,
    seed: 0,
  });
  assertEquals(classCounts(Array.from(val, (i) => labels[i]), 10), new Array(10).fill(500));
  assertEquals(train.length, 45000);
  assertEquals(pool.length, 45000);
  const split = makeLongTailSplit({ labels, classes: 10, imbalance: 100, seed: 3, pool });
  assertEquals(split.longTail.length, 11165);
  assertEquals(split.balanced.length, 11160);
  assertEquals(split.fewShot.length, 450);
  assertEquals(split.balancedPerClass, 1116);
  assertEquals(split.fewShotPerClass, 45);
  const countsOf = (indices: Int32Array) => classCounts(Array.from(indices, (i) => labels[i]), 10);
  assertEquals(countsOf(split.longTail), split.counts);
  assertEquals(split.counts[split.classOrder[0]], 4500);
  assertEquals(split.counts[split.classOrder[9]], 45);
  assertEquals(countsOf(split.balanced), new Array(10).fill(1116));
  assertEquals(countsOf(split.fewShot), new Array(10).fill(45));
  const longTail = new Set(split.longTail);
  const balanced = new Set(split.balanced);
  const valSet = new Set(val);
  assert(split.fewShot.every((i) => longTail.has(i) && balanced.has(i)));
  assertEquals(split.balanced.filter((i) => longTail.has(i)).length, 5699); // as in SDCLR's files
  assert(split.longTail.every((i) => !valSet.has(i)));
  // Files list classes in label order.
  const labelSequence = Array.from(split.longTail, (i) => labels[i]);
  assert(labelSequence.every((label, k) => k === 0 || label >= labelSequence[k - 1]));

  const again = makeLongTailSplit({ labels, classes: 10, imbalance: 100, seed: 3, pool });
  assertEquals(again.longTail, split.longTail);
  const other = makeLongTailSplit({ labels, classes: 10, imbalance: 100, seed: 4, pool });
  assert.notDeepStrictEqual(Array.from(other.classOrder), Array.from(split.classOrder));
  assert.throws(
    () => makeLongTailSplit({ labels, classes: 10, imbalance: 100, seed: 3, pool, nMax: 4600 }),
    including("n_max 4600 but class 0 has only 4500 images in the pool"),
  );
});

Deno.test("makeLtCommand writes np.load-able int64 files named as SDCLR's", async () => {
  const out = await Deno.makeTempDir();
  try {
    const result = await makeLtCommand([
      "--dataset",
      "cifar10",
      "--imbalance",
      "100",
      "--seed",
      "2",
      "--out",
      out,
      "--labels",
      LABELS,
    ]);
    const names = result.files.map((f) => f.slice(out.length + 1));
    assertEquals(names, [
      "trainIdxList.npy",
      "valIdxList.npy",
      "split2_D_i.npy",
      "split2_D_b.npy",
      "split2_S_b.npy",
    ]);
    assertEquals(result.sizes, { longTail: 11165, balanced: 11160, fewShot: 450 });
    const longTail = await readNpy(`${out}/split2_D_i.npy`);
    assertEquals(longTail.descr, "<i8");
    assertEquals(longTail.shape, [11165]);
    const labels = await readLabelsFile(LABELS);
    const counts = classCounts(
      Array.from(longTail.data as BigInt64Array, (i) => labels[Number(i)]),
      10,
    );
    assertEquals(counts, result.counts);

    await assert.rejects(
      () =>
        makeLtCommand([
          "--dataset",
          "cifar10",
          "--imbalance",
          "100",
          "--seed",
          "x",
          "--out",
          out,
          "--labels",
          LABELS,
        ]),
      { message: "data make-lt: --seed must be an integer, got 'x'" },
    );
    await assert.rejects(
      () => makeLtCommand(["--dataset", "svhn", "--imbalance", "100", "--seed", "1", "--out", out]),
      { message: "data make-lt: --dataset must be cifar10 or cifar100, got 'svhn'" },
    );
    // The 2,000-image bundled subset cannot hold a 4,500-per-class pool: clear error, nothing written.
    const empty = `${out}/none`;
    await assert.rejects(
      () =>
        makeLtCommand([
          "--dataset",
          "cifar10",
          "--imbalance",
          "100",
          "--seed",
          "1",
          "--out",
          empty,
          "--data-dir",
          "data/cifar10-mini",
        ]),
      including("train/val split: class 0 has 202 images, need 4500 + 500"),
    );
    assertEquals(await Deno.stat(empty).then(() => true, () => false), false);
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});
