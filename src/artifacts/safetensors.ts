/**
 * The safetensors file format (as written by the reference `safetensors`
 * package): an 8-byte little-endian header length N, N bytes of JSON header
 * padded with spaces to a multiple of 8, then the tensor data, contiguous and
 * in the order of the header's `data_offsets` (relative to the data start).
 *
 * Header: `{"name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}, ...,
 * "__metadata__": {"key": "string value"}}`. Tensors are laid out in the
 * reference writer's order (dtype rank descending, then name), so the bytes
 * equal the reference's and every tensor's data is aligned to its element size.
 */
import { allocHost, bytesPerElement, type DType } from "../onnx/dtype.ts";
import type { HostTensor } from "../runtime/host_tensor.ts";
import { type AtomicWriteOptions, writeFileAtomic } from "../util/atomic.ts";

/** safetensors dtype code of each dtype the toolkit stores. */
export const SAFETENSORS_DTYPE: Record<DType, string> = {
  float64: "F64",
  float32: "F32",
  float16: "F16",
  int64: "I64",
  int32: "I32",
  uint8: "U8",
  bool: "BOOL",
};

/** Rank of each dtype in the reference implementation's `Dtype` enum (its layout sorts by it). */
const REFERENCE_DTYPE_RANK: Record<DType, number> = {
  bool: 0,
  uint8: 1,
  float16: 2,
  int32: 3,
  float32: 4,
  float64: 5,
  int64: 6,
};

const DTYPE_OF_CODE: Record<string, DType> = Object.fromEntries(
  Object.entries(SAFETENSORS_DTYPE).map(([dtype, code]) => [code, dtype as DType]),
);

/** Key of the metadata map in the header. */
export const METADATA_KEY = "__metadata__";

/** Largest header the reader accepts (the reference implementation's limit). */
const MAX_HEADER_BYTES = 100_000_000;

/** Contents of a safetensors file. */
export interface SafetensorsContent {
  tensors: Record<string, HostTensor>;
  /** The `__metadata__` string map (empty when the file has none). */
  metadata: Record<string, string>;
}

interface HeaderEntry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

function elementCount(shape: number[]): number {
  return shape.reduce((n, d) => n * d, 1);
}

function checkTensor(name: string, t: HostTensor): void {
  if (name === "" || name === METADATA_KEY) {
    throw new Error(`safetensors: invalid tensor name ${JSON.stringify(name)}`);
  }
  if (!(t.dtype in SAFETENSORS_DTYPE)) {
    throw new Error(
      `safetensors: tensor ${name} has dtype ${t.dtype}, expected one of ${
        Object.keys(SAFETENSORS_DTYPE).join(", ")
      }`,
    );
  }
  if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new Error(
      `safetensors: tensor ${name} has shape [${
        t.shape.join(", ")
      }], expected non-negative integers`,
    );
  }
  const count = elementCount(t.shape);
  const expected = allocHost(t.dtype, 0).constructor;
  if (t.data.length !== count || t.data.constructor !== expected) {
    throw new Error(
      `safetensors: tensor ${name} (${t.dtype} [${
        t.shape.join(", ")
      }]) holds ${t.data.length} values in a ${t.data.constructor.name}, expected ${count} in a ${expected.name}`,
    );
  }
}

/** Serializes tensors and string metadata to safetensors bytes. */
export function encodeSafetensors(
  tensors: Record<string, HostTensor>,
  metadata: Record<string, string> = {},
): Uint8Array {
  for (const [key, value] of Object.entries(metadata)) {
    if (typeof value !== "string") {
      throw new Error(`safetensors: metadata ${key} must be a string, got ${typeof value}`);
    }
  }
  const names = Object.keys(tensors);
  for (const name of names) checkTensor(name, tensors[name]);
  const rank = (name: string) => REFERENCE_DTYPE_RANK[tensors[name].dtype];
  names.sort((a, b) => rank(b) - rank(a) || (a < b ? -1 : a > b ? 1 : 0));

  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header[METADATA_KEY] = metadata;
  let offset = 0;
  for (const name of names) {
    const t = tensors[name];
    const end = offset + t.data.byteLength;
    header[name] = {
      dtype: SAFETENSORS_DTYPE[t.dtype],
      shape: t.shape,
      data_offsets: [offset, end],
    };
    offset = end;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const headerLength = Math.ceil(json.length / 8) * 8;

  const bytes = new Uint8Array(8 + headerLength + offset);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(headerLength), true);
  bytes.set(json, 8);
  bytes.fill(0x20, 8 + json.length, 8 + headerLength);
  let position = 8 + headerLength;
  for (const name of names) {
    const data = tensors[name].data;
    bytes.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), position);
    position += data.byteLength;
  }
  return bytes;
}

function fail(source: string, what: string): never {
  throw new Error(`safetensors file ${source}: ${what}`);
}

function parseEntry(source: string, name: string, raw: unknown): HeaderEntry {
  const entry = raw as Partial<HeaderEntry> | null;
  if (typeof entry !== "object" || entry === null || Array.isArray(entry)) {
    fail(source, `bad header: entry ${name} is not an object`);
  }
  if (typeof entry.dtype !== "string" || !(entry.dtype in DTYPE_OF_CODE)) {
    fail(
      source,
      `bad header: tensor ${name} has dtype ${JSON.stringify(entry.dtype)}, expected one of ${
        Object.keys(DTYPE_OF_CODE).join(", ")
      }`,
    );
  }
  if (!Array.isArray(entry.shape) || !entry.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    fail(
      source,
      `bad header: tensor ${name} has shape ${
        JSON.stringify(entry.shape)
      }, expected non-negative integers`,
    );
  }
  const offsets = entry.data_offsets;
  if (
    !Array.isArray(offsets) || offsets.length !== 2 ||
    !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) || offsets[1] < offsets[0]
  ) {
    fail(
      source,
      `bad header: tensor ${name} has data_offsets ${
        JSON.stringify(offsets)
      }, expected [begin, end] with 0 <= begin <= end`,
    );
  }
  const bytes = elementCount(entry.shape) * bytesPerElement(DTYPE_OF_CODE[entry.dtype]);
  if (offsets[1] - offsets[0] !== bytes) {
    fail(
      source,
      `bad header: tensor ${name} (${entry.dtype} ${
        JSON.stringify(entry.shape)
      }) needs ${bytes} bytes, data_offsets ${JSON.stringify(offsets)} span ${
        offsets[1] - offsets[0]
      }`,
    );
  }
  return entry as HeaderEntry;
}

/**
 * Parses safetensors bytes; `source` (a file name) goes into every error.
 * Errors say whether the file is truncated or its header is bad.
 */
export function decodeSafetensors(bytes: Uint8Array, source = "<bytes>"): SafetensorsContent {
  if (bytes.length < 8) {
    fail(source, `truncated: ${bytes.length} bytes, shorter than the 8-byte header length`);
  }
  const headerLength = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  if (headerLength > BigInt(MAX_HEADER_BYTES)) {
    fail(
      source,
      `bad header: header length ${headerLength} exceeds ${MAX_HEADER_BYTES} bytes (not a safetensors file?)`,
    );
  }
  const dataStart = 8 + Number(headerLength);
  if (dataStart > bytes.length) {
    fail(
      source,
      `truncated: header of ${headerLength} bytes announced, ${bytes.length - 8} bytes follow`,
    );
  }
  let header: unknown;
  try {
    header = JSON.parse(
      new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, dataStart)),
    );
  } catch (error) {
    fail(source, `bad header: not valid UTF-8 JSON (${(error as Error).message})`);
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) {
    fail(source, "bad header: expected a JSON object");
  }

  const metadata: Record<string, string> = {};
  const entries: [string, HeaderEntry][] = [];
  for (const [name, raw] of Object.entries(header)) {
    if (name === METADATA_KEY) {
      if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
        fail(source, `bad header: ${METADATA_KEY} is not an object`);
      }
      for (const [key, value] of Object.entries(raw)) {
        if (typeof value !== "string") {
          fail(source, `bad header: ${METADATA_KEY}.${key} is not a string`);
        }
        metadata[key] = value;
      }
    } else {
      entries.push([name, parseEntry(source, name, raw)]);
    }
  }

  // The data must be covered exactly: no gaps, no overlaps, nothing after.
  const dataLength = bytes.length - dataStart;
  const byOffset = [...entries].sort((a, b) => a[1].data_offsets[0] - b[1].data_offsets[0]);
  let expectedBegin = 0;
  for (const [name, entry] of byOffset) {
    const [begin, end] = entry.data_offsets;
    if (begin !== expectedBegin) {
      fail(
        source,
        `bad header: tensor ${name} starts at byte ${begin} of the data, expected ${expectedBegin} (gap or overlap)`,
      );
    }
    expectedBegin = end;
  }
  if (expectedBegin > dataLength) {
    fail(
      source,
      `truncated: the header describes ${expectedBegin} data bytes, the file has ${dataLength}`,
    );
  }
  if (expectedBegin < dataLength) {
    fail(
      source,
      `bad header: the header describes ${expectedBegin} data bytes, the file has ${dataLength}`,
    );
  }

  const tensors: Record<string, HostTensor> = {};
  for (const [name, entry] of entries) {
    const dtype = DTYPE_OF_CODE[entry.dtype];
    const [begin, end] = entry.data_offsets;
    // A copy: aligned, and independent of the file buffer.
    const raw = bytes.slice(dataStart + begin, dataStart + end);
    const data = allocHost(dtype, elementCount(entry.shape));
    new Uint8Array(data.buffer).set(raw);
    tensors[name] = { dtype, shape: [...entry.shape], data };
  }
  return { tensors, metadata };
}

/** Writes a safetensors file atomically (temp file + fsync + rename). */
export async function writeSafetensors(
  path: string,
  tensors: Record<string, HostTensor>,
  metadata: Record<string, string> = {},
  options: AtomicWriteOptions = {},
): Promise<void> {
  await writeFileAtomic(path, encodeSafetensors(tensors, metadata), options);
}

/** Reads a safetensors file; errors name the file. */
export async function readSafetensors(path: string): Promise<SafetensorsContent> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new Error(`safetensors file ${path}: not found`);
    }
    throw new Error(`safetensors file ${path}: cannot read (${(error as Error).message})`);
  }
  return decodeSafetensors(bytes, path);
}
