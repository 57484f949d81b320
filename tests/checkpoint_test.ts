/** safetensors writer/reader, checkpoints, and atomic writes. */
import { assert, assertEquals, assertThrowsMessage } from "./assert.ts";
import {
  type Checkpoint,
  CHECKPOINT_FORMAT_KEY,
  loadCheckpoint,
  optimizerStateKey,
  saveCheckpoint,
} from "../src/artifacts/checkpoint.ts";
import {
  decodeSafetensors,
  encodeSafetensors,
  readSafetensors,
  writeSafetensors,
} from "../src/artifacts/safetensors.ts";
import type { HostTensor } from "../src/runtime/host_tensor.ts";
import {
  writeFileAtomic,
  writeFileAtomicSync,
  writeTextAtomic,
  writeTextAtomicSync,
} from "../src/util/atomic.ts";
import { Rng } from "../src/util/rng.ts";

/** One tensor of every dtype, with awkward values (negative zero, extremes, a scalar, an empty tensor). */
function everyDtype(): Record<string, HostTensor> {
  return {
    "w.f32": {
      dtype: "float32",
      shape: [2, 3],
      data: Float32Array.from([1.5, -0, 3.4e38, -1e-45, Math.PI, -7]),
    },
    "w.f64": {
      dtype: "float64",
      shape: [3],
      data: Float64Array.from([Math.E, -Number.MAX_VALUE, 5e-324]),
    },
    "h.f16": {
      dtype: "float16",
      shape: [2, 2],
      data: Uint16Array.from([0x3c00, 0xc000, 0x7bff, 0x0001]),
    },
    "n.i64": {
      dtype: "int64",
      shape: [2],
      data: BigInt64Array.from([-(2n ** 63n), 2n ** 63n - 1n]),
    },
    "n.i32": { dtype: "int32", shape: [1, 3], data: Int32Array.from([-(2 ** 31), 0, 2 ** 31 - 1]) },
    "b.u8": { dtype: "uint8", shape: [4], data: Uint8Array.from([0, 1, 128, 255]) },
    "mask": { dtype: "bool", shape: [3], data: Uint8Array.from([1, 0, 1]) },
    "scalar": { dtype: "float32", shape: [], data: Float32Array.from([0.25]) },
    "empty": { dtype: "float64", shape: [0, 4], data: new Float64Array(0) },
  };
}

function assertSameTensors(
  actual: Record<string, HostTensor>,
  expected: Record<string, HostTensor>,
): void {
  assertEquals(Object.keys(actual).sort(), Object.keys(expected).sort(), "tensor names");
  for (const [name, e] of Object.entries(expected)) {
    const a = actual[name];
    assertEquals(a.dtype, e.dtype, `${name} dtype`);
    assertEquals(a.shape, e.shape, `${name} shape`);
    assert(
      a.data.constructor === e.data.constructor,
      `${name}: ${a.data.constructor.name} vs ${e.data.constructor.name}`,
    );
    const bytesA = new Uint8Array(a.data.buffer, a.data.byteOffset, a.data.byteLength);
    const bytesE = new Uint8Array(e.data.buffer, e.data.byteOffset, e.data.byteLength);
    assertEquals(Array.from(bytesA), Array.from(bytesE), `${name} bytes`);
  }
}

async function withTempDir(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "checkpoint_test_" });
  try {
    await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("safetensors bytes equal the reference writer's for a small file", () => {
  // Made by the reference package: safetensors.numpy.save({"a": float32 [1.0], "b": int64 [[1, 2]]}, metadata={"k": "v"}).
  const header =
    '{"__metadata__":{"k":"v"},"b":{"dtype":"I64","shape":[1,2],"data_offsets":[0,16]},' +
    '"a":{"dtype":"F32","shape":[1],"data_offsets":[16,20]}}       ';
  const expected = [
    0x90,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    ...new TextEncoder().encode(header),
    1,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    2,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0x80,
    0x3f,
  ];
  const bytes = encodeSafetensors(
    {
      a: { dtype: "float32", shape: [1], data: Float32Array.from([1]) },
      b: { dtype: "int64", shape: [1, 2], data: BigInt64Array.from([1n, 2n]) },
    },
    { k: "v" },
  );
  assertEquals(Array.from(bytes), expected);
});

Deno.test("safetensors round-trips every dtype, scalars, empty tensors and metadata", async () => {
  const tensors = everyDtype();
  const metadata = { note: "ünïcode ✓", empty: "" };
  const bytes = encodeSafetensors(tensors, metadata);
  const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  assertEquals(headerLength % 8, 0, "header padded to 8 bytes");
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLength)));
  // Layout: 8-byte types first, so every tensor is aligned to its element size.
  for (const name of Object.keys(tensors)) {
    const entry = header[name];
    const size = tensors[name].data.BYTES_PER_ELEMENT;
    assertEquals(entry.data_offsets[0] % size, 0, `${name} alignment`);
  }
  assertEquals(header["n.i64"].dtype, "I64");
  assertEquals(header.mask.dtype, "BOOL");
  assertEquals(header["h.f16"].dtype, "F16");
  const decoded = decodeSafetensors(bytes);
  assertSameTensors(decoded.tensors, tensors);
  assertEquals(decoded.metadata, metadata);

  await withTempDir(async (dir) => {
    const path = `${dir}/all.safetensors`;
    await writeSafetensors(path, tensors);
    const read = await readSafetensors(path);
    assertSameTensors(read.tensors, tensors);
    assertEquals(read.metadata, {});
  });
});

Deno.test("safetensors writer rejects bad tensors with the name and what was expected", async () => {
  await assertThrowsMessage(
    () => encodeSafetensors({ x: { dtype: "float32", shape: [2, 2], data: new Float32Array(3) } }),
    "tensor x",
    "expected 4",
  );
  await assertThrowsMessage(
    () => encodeSafetensors({ x: { dtype: "float64", shape: [1], data: new Float32Array(1) } }),
    "tensor x",
    "Float64Array",
  );
  await assertThrowsMessage(
    () =>
      encodeSafetensors({ __metadata__: { dtype: "uint8", shape: [0], data: new Uint8Array(0) } }),
    "invalid tensor name",
  );
});

function sampleCheckpoint(step: number): Checkpoint {
  const rng = new Rng(3, "checkpoint");
  const weights = Float32Array.from({ length: 12 }, () => rng.normal() + step);
  return {
    tensors: {
      "conv1.weight": { dtype: "float32", shape: [2, 2, 3], data: weights },
      "bn1.running_mean": {
        dtype: "float32",
        shape: [2],
        data: Float32Array.from([0.1 * step, -0.2]),
      },
      "bn1.num_batches_tracked": {
        dtype: "int64",
        shape: [],
        data: BigInt64Array.from([BigInt(step)]),
      },
      [optimizerStateKey("conv1.weight", "exp_avg")]: {
        dtype: "float32",
        shape: [2, 2, 3],
        data: weights.map((v) => v / 10),
      },
    },
    meta: {
      step,
      epoch: Math.floor(step / 10),
      rng: rng.state(),
      configHash: "9f2c61e0",
      mu: [0.6, null, -1.5e-7],
      nested: { lr: 1e-3, done: false, label: 'a"b' },
    },
  };
}

Deno.test("checkpoints round-trip tensors and JSON metadata", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/ckpt.safetensors`;
    const checkpoint = sampleCheckpoint(7);
    await saveCheckpoint(path, checkpoint);
    const loaded = await loadCheckpoint(path);
    assertSameTensors(loaded.tensors, checkpoint.tensors);
    assertEquals(loaded.meta, checkpoint.meta);
    assertEquals(optimizerStateKey("fc.bias", "momentum"), "fc.bias.momentum");
    assert("conv1.weight.exp_avg" in loaded.tensors, "optimizer state stored under <param>.<slot>");
    // The file is plain safetensors: metadata values are JSON strings.
    const raw = await readSafetensors(path);
    assertEquals(raw.metadata.step, "7");
    assertEquals(raw.metadata[CHECKPOINT_FORMAT_KEY], "1");
    assertEquals(JSON.parse(raw.metadata.rng), checkpoint.meta.rng);
  });
});

async function dirEntries(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) names.push(entry.name);
  return names.sort();
}

Deno.test("a failed checkpoint save leaves the old file intact and no temporary file", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/ckpt.safetensors`;
    const old = sampleCheckpoint(1);
    await saveCheckpoint(path, old);
    const oldBytes = await Deno.readFile(path);

    // Failure after the new data is fully written and synced, just before the rename.
    let sawTemp = false;
    await assertThrowsMessage(
      () =>
        saveCheckpoint(path, sampleCheckpoint(2), {
          beforeRename: async (temp) => {
            sawTemp = true;
            assert(temp.startsWith(dir) && temp !== path, `temp file ${temp} beside the target`);
            const pending = await loadCheckpoint(temp);
            assertEquals(pending.meta.step, 2, "temp file holds the whole new checkpoint");
            assertEquals(
              Array.from(await Deno.readFile(path)),
              Array.from(oldBytes),
              "target untouched before the rename",
            );
            throw new Error("simulated crash");
          },
        }),
      path,
      "simulated crash",
    );
    assert(sawTemp, "hook ran");
    assertEquals(Array.from(await Deno.readFile(path)), Array.from(oldBytes));
    assertEquals((await loadCheckpoint(path)).meta.step, 1);
    assertEquals(await dirEntries(dir), ["ckpt.safetensors"]);

    // Failure while building the data (metadata that JSON cannot hold).
    await assertThrowsMessage(
      () => saveCheckpoint(path, { tensors: old.tensors, meta: { seed: 1n } }),
      path,
      "meta.seed",
    );
    await assertThrowsMessage(
      () => saveCheckpoint(path, { tensors: old.tensors, meta: { [CHECKPOINT_FORMAT_KEY]: 2 } }),
      "reserved",
    );
    assertEquals(Array.from(await Deno.readFile(path)), Array.from(oldBytes));
    assertEquals(await dirEntries(dir), ["ckpt.safetensors"]);

    // A successful save replaces it.
    await saveCheckpoint(path, sampleCheckpoint(3));
    assertEquals((await loadCheckpoint(path)).meta.step, 3);
    assertEquals(await dirEntries(dir), ["ckpt.safetensors"]);
  });
});

Deno.test("loading a missing, truncated or corrupt checkpoint names the file and the fault", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/ckpt.safetensors`;
    await saveCheckpoint(path, sampleCheckpoint(4));
    const bytes = await Deno.readFile(path);
    const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    const corrupt = `${dir}/corrupt.safetensors`;
    const expectFault = async (data: Uint8Array, ...fragments: string[]) => {
      await Deno.writeFile(corrupt, data);
      await assertThrowsMessage(() => loadCheckpoint(corrupt), corrupt, ...fragments);
    };
    await assertThrowsMessage(
      () => loadCheckpoint(`${dir}/nope.safetensors`),
      `${dir}/nope.safetensors`,
      "not found",
    );
    await expectFault(new Uint8Array(0), "truncated");
    await expectFault(bytes.slice(0, 5), "truncated");
    await expectFault(bytes.slice(0, 8 + headerLength - 10), "truncated", "header");
    await expectFault(bytes.slice(0, bytes.length - 3), "truncated", "data bytes");
    await expectFault(Uint8Array.from([...bytes, 0, 0, 0]), "bad header", "data bytes");

    const garbled = bytes.slice();
    garbled[8] = "[".charCodeAt(0);
    await expectFault(garbled, "bad header", "JSON");

    const huge = bytes.slice();
    new DataView(huge.buffer).setBigUint64(0, 1n << 40n, true);
    await expectFault(huge, "bad header", "header length");

    const rewrite = (edit: (header: Record<string, Record<string, unknown>>) => void) => {
      const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLength)));
      edit(header);
      const json = new TextEncoder().encode(JSON.stringify(header));
      const out = new Uint8Array(8 + json.length + bytes.length - 8 - headerLength);
      new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
      out.set(json, 8);
      out.set(bytes.subarray(8 + headerLength), 8 + json.length);
      return out;
    };
    // The rebuilt file itself is valid: only the edits make it fail.
    await Deno.writeFile(corrupt, rewrite(() => {}));
    assertEquals((await loadCheckpoint(corrupt)).meta.step, 4);
    await expectFault(
      rewrite((h) => (h["conv1.weight"].dtype = "Q4")),
      "bad header",
      "conv1.weight",
      "Q4",
    );
    await expectFault(
      rewrite((h) => (h["conv1.weight"].shape = [2, 2, 2])),
      "bad header",
      "conv1.weight",
      "needs 32 bytes",
    );
    await expectFault(
      rewrite((h) => (h["bn1.running_mean"].data_offsets = [1, 9])),
      "bad header",
      "gap or overlap",
    );
    await expectFault(
      rewrite((h) => (h.__metadata__.step = "{oops")),
      "bad header",
      "__metadata__.step",
    );

    // A valid safetensors file that is not a checkpoint.
    await writeSafetensors(corrupt, {
      x: { dtype: "uint8", shape: [1], data: Uint8Array.from([1]) },
    });
    await assertThrowsMessage(
      () => loadCheckpoint(corrupt),
      corrupt,
      CHECKPOINT_FORMAT_KEY,
      "missing",
    );
  });
});

Deno.test("atomic text and sync writes replace files whole; a failed write keeps the old file", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/log.json`;
    await writeTextAtomic(path, '{"epoch": 1}');
    assertEquals(await Deno.readTextFile(path), '{"epoch": 1}');
    writeTextAtomicSync(path, '{"epoch": 2}');
    assertEquals(await Deno.readTextFile(path), '{"epoch": 2}');
    writeFileAtomicSync(path, Uint8Array.from([1, 2, 3]));
    assertEquals(Array.from(await Deno.readFile(path)), [1, 2, 3]);
    await assertThrowsMessage(
      () =>
        writeFileAtomic(path, Uint8Array.from([9]), {
          beforeRename: () => Promise.reject(new Error("disk full")),
        }),
      path,
      "disk full",
    );
    assertEquals(Array.from(await Deno.readFile(path)), [1, 2, 3]);
    // A directory that does not exist: the error names the target.
    await assertThrowsMessage(
      () => writeTextAtomic(`${dir}/missing/x.json`, "{}"),
      `${dir}/missing/x.json`,
    );
    await assertThrowsMessage(
      () => writeTextAtomicSync(`${dir}/missing/y.json`, "{}"),
      `${dir}/missing/y.json`,
    );
    assertEquals(await dirEntries(dir), ["log.json"]);
  });
});
