/**
 * NumPy `.npy` files (format versions 1, 2 and 3): a reader for numeric arrays and an int64 writer
 * whose files `np.load` reads, as SDCLR's split files are.
 */

import { readFileBytes } from "./files.ts";
import { writeFileAtomic } from "../util/atomic.ts";

/** A numeric array read from a `.npy` file, values in native byte order. */
export interface NpyArray {
  /** The descr of the header, e.g. "<i8". */
  descr: string;
  shape: number[];
  fortranOrder: boolean;
  data:
    | Uint8Array
    | Int8Array
    | Uint16Array
    | Int16Array
    | Uint32Array
    | Int32Array
    | BigInt64Array
    | BigUint64Array
    | Float32Array
    | Float64Array;
}

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

type HeaderValue = string | boolean | number | HeaderValue[] | null | {
  [key: string]: HeaderValue;
};

/** Parses the Python literal of an .npy header: dicts, tuples, strings, ints, True/False/None. */
function parseHeaderLiteral(text: string, source: string): HeaderValue {
  let pos = 0;
  const fail = (what: string): never => {
    throw new Error(`${source}: bad .npy header (${what} at column ${pos}): ${text.trim()}`);
  };
  const skip = () => {
    while (pos < text.length && /\s/.test(text[pos])) pos++;
  };
  const value = (): HeaderValue => {
    skip();
    const ch = text[pos];
    if (ch === "{" || ch === "(" || ch === "[") {
      const close = ch === "{" ? "}" : ch === "(" ? ")" : "]";
      pos++;
      const items: HeaderValue[] = [];
      const dict: { [key: string]: HeaderValue } = {};
      while (true) {
        skip();
        if (text[pos] === close) {
          pos++;
          break;
        }
        const item = value();
        if (ch === "{") {
          skip();
          if (text[pos++] !== ":") fail("expected ':'");
          if (typeof item !== "string") fail("dict key is not a string");
          dict[item as string] = value();
        } else {
          items.push(item);
        }
        skip();
        if (text[pos] === ",") pos++;
        else if (text[pos] !== close) fail(`expected ',' or '${close}'`);
      }
      return ch === "{" ? dict : items;
    }
    if (ch === "'" || ch === '"') {
      const end = text.indexOf(ch, pos + 1);
      if (end < 0) fail("unterminated string");
      const str = text.slice(pos + 1, end);
      pos = end + 1;
      return str;
    }
    const word = /^[A-Za-z_]+|^-?\d+L?/.exec(text.slice(pos))?.[0];
    if (!word) return fail("unexpected character");
    pos += word.length;
    if (word === "True") return true;
    if (word === "False") return false;
    if (word === "None") return null;
    if (/^-?\d+L?$/.test(word)) return Number(word.replace("L", ""));
    return fail(`unknown word ${word}`);
  };
  const result = value();
  skip();
  if (pos !== text.length) fail("trailing characters");
  return result;
}

const TYPES: Record<string, { size: number; make: (buffer: ArrayBuffer) => NpyArray["data"] }> = {
  u1: { size: 1, make: (b) => new Uint8Array(b) },
  b1: { size: 1, make: (b) => new Uint8Array(b) },
  i1: { size: 1, make: (b) => new Int8Array(b) },
  u2: { size: 2, make: (b) => new Uint16Array(b) },
  i2: { size: 2, make: (b) => new Int16Array(b) },
  u4: { size: 4, make: (b) => new Uint32Array(b) },
  i4: { size: 4, make: (b) => new Int32Array(b) },
  u8: { size: 8, make: (b) => new BigUint64Array(b) },
  i8: { size: 8, make: (b) => new BigInt64Array(b) },
  f4: { size: 4, make: (b) => new Float32Array(b) },
  f8: { size: 8, make: (b) => new Float64Array(b) },
};

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Parses `.npy` bytes; `source` names the file in errors. */
export function parseNpy(bytes: Uint8Array, source: string): NpyArray {
  if (bytes.length < 10 || MAGIC.some((b, i) => bytes[i] !== b)) {
    throw new Error(`${source}: not a .npy file (no \\x93NUMPY magic)`);
  }
  const major = bytes[6];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (major < 1 || major > 3) {
    throw new Error(`${source}: unsupported .npy format version ${major}.${bytes[7]}`);
  }
  const headerLength = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const headerStart = major === 1 ? 10 : 12;
  const dataStart = headerStart + headerLength;
  if (dataStart > bytes.length) {
    throw new Error(`${source}: .npy header runs past the end of the file`);
  }
  const headerText = new TextDecoder(major === 3 ? "utf-8" : "latin1").decode(
    bytes.subarray(headerStart, dataStart),
  );
  const header = parseHeaderLiteral(headerText, source);
  if (typeof header !== "object" || header === null || Array.isArray(header)) {
    throw new Error(`${source}: .npy header is not a dict: ${headerText.trim()}`);
  }
  const { descr, fortran_order: fortranOrder, shape } = header as Record<string, HeaderValue>;
  if (typeof descr !== "string" || typeof fortranOrder !== "boolean" || !Array.isArray(shape)) {
    throw new Error(
      `${source}: .npy header needs descr, fortran_order and shape: ${headerText.trim()}`,
    );
  }
  if (!shape.every((d) => typeof d === "number" && d >= 0)) {
    throw new Error(`${source}: bad shape in .npy header: ${headerText.trim()}`);
  }
  const order = descr[0];
  const type = TYPES[descr.slice(1)];
  if (!"<>|=".includes(order) || !type) {
    throw new Error(
      `${source}: unsupported .npy dtype '${descr}' (expected e.g. '<i8', '<i4', '|u1', '<f4')`,
    );
  }
  const count = (shape as number[]).reduce((a, b) => a * b, 1);
  const byteLength = count * type.size;
  if (bytes.length - dataStart !== byteLength) {
    throw new Error(
      `${source}: .npy data holds ${bytes.length - dataStart} bytes, shape (${
        shape.join(", ")
      }) of ${descr} needs ${byteLength}`,
    );
  }
  const copy = bytes.slice(dataStart, dataStart + byteLength);
  const swap = type.size > 1 && (order === ">") === LITTLE_ENDIAN_HOST;
  if (swap) {
    for (let i = 0; i < byteLength; i += type.size) copy.subarray(i, i + type.size).reverse();
  }
  return { descr, shape: shape as number[], fortranOrder, data: type.make(copy.buffer) };
}

/** Reads a `.npy` file. */
export async function readNpy(path: string): Promise<NpyArray> {
  return parseNpy(await readFileBytes(path, ".npy file"), path);
}

/**
 * Reads a 1-d integer `.npy` index list (SDCLR splits are int64). With `limit`, every index must be
 * in [0, limit): the Error names the file, the position and the bad index.
 */
export async function readIndexNpy(path: string, limit?: number): Promise<Int32Array> {
  const array = await readNpy(path);
  if (array.shape.length !== 1) {
    throw new Error(`${path}: expected a 1-d index list, found shape (${array.shape.join(", ")})`);
  }
  if (!/^[<>|=][iu][1248]$/.test(array.descr)) {
    throw new Error(`${path}: expected an integer index list, found dtype '${array.descr}'`);
  }
  const out = new Int32Array(array.data.length);
  for (let i = 0; i < out.length; i++) {
    const value = Number(array.data[i]);
    const max = limit ?? 2 ** 31;
    if (!(value >= 0 && value < max)) {
      throw new Error(
        `${path}: index ${value} at position ${i} is out of range [0, ${max})` +
          (limit === undefined ? "" : ` for a data set of ${limit} images`),
      );
    }
    out[i] = value;
  }
  return out;
}

/** `.npy` bytes (format 1.0, header padded to 64 bytes) holding `values` as little-endian int64. */
export function encodeInt64Npy(
  values: ArrayLike<number>,
  shape: number[] = [values.length],
): Uint8Array {
  const count = shape.reduce((a, b) => a * b, 1);
  if (count !== values.length) {
    throw new Error(`encodeInt64Npy: shape (${shape}) for ${values.length} values`);
  }
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(", ")})`;
  let header = `{'descr': '<i8', 'fortran_order': False, 'shape': ${shapeText}, }`;
  const total = 10 + header.length + 1;
  header += " ".repeat((64 - (total % 64)) % 64) + "\n";
  const out = new Uint8Array(10 + header.length + 8 * count);
  out.set(MAGIC);
  out[6] = 1;
  out[7] = 0;
  const view = new DataView(out.buffer);
  view.setUint16(8, header.length, true);
  out.set(new TextEncoder().encode(header), 10);
  for (let i = 0; i < count; i++) {
    const value = values[i];
    if (!Number.isSafeInteger(value)) {
      throw new Error(`encodeInt64Npy: value ${value} at ${i} is not an integer`);
    }
    view.setBigInt64(10 + header.length + 8 * i, BigInt(value), true);
  }
  return out;
}

/** Writes `values` as an int64 `.npy` file (atomically). */
export async function writeInt64Npy(path: string, values: ArrayLike<number>): Promise<void> {
  await writeFileAtomic(path, encodeInt64Npy(values));
}
