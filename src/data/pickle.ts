/**
 * A minimal unpickler for the CIFAR python batches: dicts, lists, ints, strings, bytes and numpy
 * arrays, as Python 2's cPickle (the official files) and Python 3 (protocols 2–5) write them.
 *
 * It builds only what these files need: numpy arrays (`numpy.core.multiarray._reconstruct` +
 * BUILD, or `numpy.core.numeric._frombuffer`), dtypes, and `_codecs.encode` (Python 3's protocol-2
 * form of bytes). Any other class or opcode is refused with an Error naming it, the byte offset
 * and the file: nothing in a pickle is ever executed.
 */

/** A numpy array from a pickle; `data` holds the raw bytes in C (or Fortran) order. */
export interface PickledArray {
  kind: "ndarray";
  shape: number[];
  /** Type code as numpy writes it, e.g. "u1", "i8". */
  dtype: string;
  /** "<", ">" or "|" (no byte order). */
  byteOrder: string;
  fortranOrder: boolean;
  data: Uint8Array;
}

/** A value read from a pickle. Python str → string, py2 str / bytes → Uint8Array, dict → Map. */
export type PickleValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | PickleValue[]
  | PickleDict
  | PickledArray
  | PickledDtype
  | PickleGlobal;

/** A dict; keys that were bytes (Python 2 str) are decoded as latin-1 strings. */
export type PickleDict = Map<string | number, PickleValue>;

/** A numpy dtype under construction (from `numpy.dtype(code, align, copy)` and its BUILD state). */
export interface PickledDtype {
  kind: "dtype";
  code: string;
  byteOrder: string;
}

/** A reference to a Python global (module.name) that may only be called if known. */
export interface PickleGlobal {
  kind: "global";
  module: string;
  name: string;
}

const MARK = Symbol("mark");
type StackItem = PickleValue | typeof MARK;

const latin1 = new TextDecoder("latin1");
const utf8 = new TextDecoder("utf-8", { fatal: true });

function isKind<K extends string>(value: unknown, kind: K): value is { kind: K } {
  return typeof value === "object" && value !== null && !(value instanceof Uint8Array) &&
    !(value instanceof Map) && !Array.isArray(value) && (value as { kind?: string }).kind === kind;
}

function latin1Bytes(text: string): Uint8Array {
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code > 255) {
      throw new Error(`_codecs.encode: character U+${code.toString(16)} is not latin-1`);
    }
    out[i] = code;
  }
  return out;
}

function dictKey(key: PickleValue): string | number {
  if (typeof key === "string" || typeof key === "number") return key;
  if (key instanceof Uint8Array) return latin1.decode(key);
  throw new Error(`unsupported dict key of type ${typeof key}`);
}

function toBytes(value: PickleValue, what: string): Uint8Array {
  if (value instanceof Uint8Array) return value;
  // Python 2 files read with Python 3 semantics: text that stands for raw bytes.
  if (typeof value === "string") return latin1Bytes(value);
  throw new Error(`${what}: expected bytes, got ${describe(value)}`);
}

function describe(value: PickleValue | typeof MARK | undefined): string {
  if (value === undefined) return "nothing";
  if (value === MARK) return "a mark";
  if (value === null) return "None";
  if (value instanceof Uint8Array) return `bytes[${value.length}]`;
  if (value instanceof Map) return "dict";
  if (Array.isArray(value)) return `list/tuple[${value.length}]`;
  if (typeof value === "object") {
    return value.kind === "global" ? `global ${value.module}.${value.name}` : value.kind;
  }
  return typeof value;
}

function asShape(value: PickleValue, what: string): number[] {
  if (!Array.isArray(value) || !value.every((v) => typeof v === "number" && v >= 0)) {
    throw new Error(`${what}: expected a shape tuple of non-negative ints, got ${describe(value)}`);
  }
  return value as number[];
}

const NUMPY_MODULES = new Set(["numpy.core.multiarray", "numpy._core.multiarray"]);
const NUMERIC_MODULES = new Set(["numpy.core.numeric", "numpy._core.numeric"]);

/** Calls one of the few globals these files use (REDUCE). */
function callGlobal(fn: PickleGlobal, args: PickleValue[]): PickleValue {
  const id = `${fn.module}.${fn.name}`;
  if (NUMPY_MODULES.has(fn.module) && fn.name === "_reconstruct") {
    return {
      kind: "ndarray",
      shape: [0],
      dtype: "u1",
      byteOrder: "|",
      fortranOrder: false,
      data: new Uint8Array(0),
    };
  }
  if (fn.module === "numpy" && fn.name === "dtype") {
    const code = args[0] instanceof Uint8Array ? latin1.decode(args[0]) : args[0];
    if (typeof code !== "string") {
      throw new Error(`numpy.dtype: expected a type code, got ${describe(args[0])}`);
    }
    return {
      kind: "dtype",
      code,
      byteOrder: code === "u1" || code === "i1" || code === "b1" ? "|" : "<",
    };
  }
  if (fn.module === "_codecs" && fn.name === "encode") {
    if (typeof args[0] !== "string") {
      throw new Error(`_codecs.encode: expected text, got ${describe(args[0])}`);
    }
    const encoding = String(args[1] ?? "utf-8").toLowerCase();
    if (encoding !== "latin1" && encoding !== "latin-1") {
      throw new Error(`_codecs.encode: unsupported encoding ${encoding}`);
    }
    return latin1Bytes(args[0]);
  }
  if (NUMERIC_MODULES.has(fn.module) && fn.name === "_frombuffer") {
    const [buffer, dtype, shape, order] = args;
    if (!isKind(dtype, "dtype")) throw new Error(`${id}: expected a dtype, got ${describe(dtype)}`);
    return {
      kind: "ndarray",
      shape: asShape(shape, id),
      dtype: dtype.code,
      byteOrder: dtype.byteOrder,
      fortranOrder: order === "F",
      data: toBytes(buffer, id),
    };
  }
  throw new Error(`refusing to call ${id}: only numpy arrays, dtypes and bytes are supported`);
}

/** Applies BUILD state to an object made by REDUCE. */
function build(target: PickleValue, state: PickleValue): void {
  if (isKind(target, "dtype")) {
    // numpy dtype state: (version, byteorder, subarray, names, fields, elsize, alignment, flags)
    if (!Array.isArray(state) || state.length < 2) {
      throw new Error(`dtype state: got ${describe(state)}`);
    }
    const order = state[1] instanceof Uint8Array ? latin1.decode(state[1]) : state[1];
    if (typeof order !== "string") {
      throw new Error(`dtype state: bad byte order ${describe(state[1])}`);
    }
    (target as PickledDtype).byteOrder = order;
    return;
  }
  if (isKind(target, "ndarray")) {
    // ndarray state: (version, shape, dtype, is_fortran, raw data)
    if (!Array.isArray(state) || state.length !== 5) {
      throw new Error(`ndarray state: got ${describe(state)}`);
    }
    const [, shape, dtype, fortran, raw] = state;
    if (!isKind(dtype, "dtype")) {
      throw new Error(`ndarray state: expected a dtype, got ${describe(dtype)}`);
    }
    const array = target as PickledArray;
    array.shape = asShape(shape, "ndarray state");
    array.dtype = dtype.code;
    array.byteOrder = dtype.byteOrder;
    array.fortranOrder = fortran === true || fortran === 1;
    if (Array.isArray(raw)) throw new Error("ndarray state: object arrays are not supported");
    array.data = toBytes(raw, "ndarray data");
    return;
  }
  throw new Error(`BUILD on ${describe(target)} is not supported`);
}

/** Reads a pickle; `source` names the file in errors. */
export function unpickle(bytes: Uint8Array, source = "pickle"): PickleValue {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const stack: StackItem[] = [];
  const memo = new Map<number, PickleValue>();
  let pos = 0;
  let opAt = 0;

  const fail = (message: string): never => {
    throw new Error(`${source}: corrupt or unsupported pickle at byte ${opAt}: ${message}`);
  };
  const need = (n: number) => {
    if (pos + n > bytes.length) {
      fail(`needs ${n} more bytes, file ends at ${bytes.length} (truncated?)`);
    }
  };
  const take = (n: number): Uint8Array => {
    need(n);
    const out = bytes.subarray(pos, pos + n);
    pos += n;
    return out;
  };
  const u8 = () => (need(1), bytes[pos++]);
  const u32 = () => (need(4), pos += 4, view.getUint32(pos - 4, true));
  const u64 = (): number => {
    need(8);
    const value = view.getBigUint64(pos, true);
    pos += 8;
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) fail(`length ${value} too large`);
    return Number(value);
  };
  const line = (): string => {
    const end = bytes.indexOf(0x0a, pos);
    if (end < 0) fail("unterminated text line");
    const text = latin1.decode(bytes.subarray(pos, end));
    pos = end + 1;
    return text;
  };
  const pop = (): PickleValue => {
    const top = stack.pop();
    if (top === undefined) fail("stack underflow");
    if (top === MARK) fail("unexpected mark");
    return top as PickleValue;
  };
  const top = (): PickleValue => {
    const value = stack[stack.length - 1];
    if (value === undefined || value === MARK) {
      fail(`expected a value on the stack, found ${describe(value)}`);
    }
    return value as PickleValue;
  };
  const popMark = (): PickleValue[] => {
    const at = stack.lastIndexOf(MARK);
    if (at < 0) fail("no mark on the stack");
    const items = stack.splice(at) as PickleValue[];
    items.shift();
    return items;
  };
  const text = (raw: Uint8Array): string => {
    try {
      return utf8.decode(raw);
    } catch {
      return fail("invalid UTF-8 in a unicode string");
    }
  };
  const setItems = (dict: PickleValue, items: PickleValue[]) => {
    if (!(dict instanceof Map)) fail(`SETITEM(S) on ${describe(dict)}`);
    if (items.length % 2) fail("odd number of items for SETITEMS");
    for (let i = 0; i < items.length; i += 2) {
      (dict as PickleDict).set(dictKey(items[i]), items[i + 1]);
    }
  };
  const append = (list: PickleValue, items: PickleValue[]) => {
    if (!Array.isArray(list)) fail(`APPEND(S) on ${describe(list)}`);
    for (const item of items) (list as PickleValue[]).push(item);
  };
  const signedLong = (raw: Uint8Array): number | bigint => {
    let value = 0n;
    for (let i = raw.length - 1; i >= 0; i--) value = (value << 8n) | BigInt(raw[i]);
    if (raw.length && raw[raw.length - 1] & 0x80) value -= 1n << BigInt(8 * raw.length);
    return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER)
      ? Number(value)
      : value;
  };

  while (true) {
    opAt = pos;
    if (pos >= bytes.length) fail("no STOP opcode (truncated?)");
    const op = bytes[pos++];
    try {
      switch (op) {
        case 0x80: // PROTO
          if (u8() > 5) fail("protocol above 5");
          break;
        case 0x95: // FRAME
          u64();
          break;
        case 0x2e: // STOP
          return pop();
        case 0x28: // MARK
          stack.push(MARK);
          break;
        case 0x30: // POP
          stack.pop();
          break;
        case 0x31: // POP_MARK
          popMark();
          break;
        case 0x32: // DUP
          stack.push(top());
          break;
        case 0x7d: // EMPTY_DICT
          stack.push(new Map());
          break;
        case 0x64: { // DICT
          const dict: PickleDict = new Map();
          setItems(dict, popMark());
          stack.push(dict);
          break;
        }
        case 0x5d: // EMPTY_LIST
          stack.push([]);
          break;
        case 0x6c: // LIST
          stack.push(popMark());
          break;
        case 0x29: // EMPTY_TUPLE
          stack.push([]);
          break;
        case 0x74: // TUPLE
          stack.push(popMark());
          break;
        case 0x85: // TUPLE1
          stack.push([pop()]);
          break;
        case 0x86: { // TUPLE2
          const b = pop();
          stack.push([pop(), b]);
          break;
        }
        case 0x87: { // TUPLE3
          const c = pop();
          const b = pop();
          stack.push([pop(), b, c]);
          break;
        }
        case 0x61: { // APPEND
          const item = pop();
          append(top(), [item]);
          break;
        }
        case 0x65: { // APPENDS
          const items = popMark();
          append(top(), items);
          break;
        }
        case 0x73: { // SETITEM
          const value = pop();
          const key = pop();
          setItems(top(), [key, value]);
          break;
        }
        case 0x75: { // SETITEMS
          const items = popMark();
          setItems(top(), items);
          break;
        }
        case 0x71: // BINPUT
          memo.set(u8(), top());
          break;
        case 0x72: // LONG_BINPUT
          memo.set(u32(), top());
          break;
        case 0x94: // MEMOIZE
          memo.set(memo.size, top());
          break;
        case 0x70: // PUT
          memo.set(Number(line()), top());
          break;
        case 0x68: // BINGET
        case 0x6a: // LONG_BINGET
        case 0x67: { // GET
          const key = op === 0x68 ? u8() : op === 0x6a ? u32() : Number(line());
          if (!memo.has(key)) fail(`memo key ${key} missing`);
          stack.push(memo.get(key)!);
          break;
        }
        case 0x4a: // BININT
          need(4);
          stack.push(view.getInt32(pos, true));
          pos += 4;
          break;
        case 0x4b: // BININT1
          stack.push(u8());
          break;
        case 0x4d: // BININT2
          need(2);
          stack.push(view.getUint16(pos, true));
          pos += 2;
          break;
        case 0x8a: // LONG1
          stack.push(signedLong(take(u8())));
          break;
        case 0x8b: // LONG4
          stack.push(signedLong(take(u32())));
          break;
        case 0x49: { // INT (text): also encodes True/False in protocol 0/1
          const value = line();
          stack.push(value === "01" ? true : value === "00" ? false : Number(value));
          break;
        }
        case 0x47: // BINFLOAT
          need(8);
          stack.push(view.getFloat64(pos, false));
          pos += 8;
          break;
        case 0x4e: // NONE
          stack.push(null);
          break;
        case 0x88: // NEWTRUE
          stack.push(true);
          break;
        case 0x89: // NEWFALSE
          stack.push(false);
          break;
        case 0x55: // SHORT_BINSTRING (py2 str: bytes)
        case 0x43: // SHORT_BINBYTES
          stack.push(take(u8()));
          break;
        case 0x54: // BINSTRING
        case 0x42: // BINBYTES
          stack.push(take(u32()));
          break;
        case 0x8e: // BINBYTES8
        case 0x96: // BYTEARRAY8
          stack.push(take(u64()));
          break;
        case 0x8c: // SHORT_BINUNICODE
          stack.push(text(take(u8())));
          break;
        case 0x58: // BINUNICODE
          stack.push(text(take(u32())));
          break;
        case 0x8d: // BINUNICODE8
          stack.push(text(take(u64())));
          break;
        case 0x63: { // GLOBAL
          const module = line();
          stack.push({ kind: "global", module, name: line() });
          break;
        }
        case 0x93: { // STACK_GLOBAL
          const name = pop();
          const module = pop();
          if (typeof module !== "string" || typeof name !== "string") {
            fail("STACK_GLOBAL needs two strings");
          }
          stack.push({ kind: "global", module: module as string, name: name as string });
          break;
        }
        case 0x52: { // REDUCE
          const args = pop();
          const fn = pop();
          if (!isKind(fn, "global")) fail(`REDUCE on ${describe(fn)}`);
          if (!Array.isArray(args)) fail(`REDUCE arguments are ${describe(args)}`);
          stack.push(callGlobal(fn as PickleGlobal, args as PickleValue[]));
          break;
        }
        case 0x62: { // BUILD
          const state = pop();
          build(top(), state);
          break;
        }
        default:
          fail(`unsupported opcode 0x${op.toString(16).padStart(2, "0")}`);
      }
    } catch (error) {
      const message = (error as Error).message;
      if (message.startsWith(source)) throw error;
      fail(message);
    }
  }
}

/** Looks up `key` in an unpickled dict, throwing an Error naming the file and the keys present. */
export function dictEntry(dict: PickleValue, key: string, source: string): PickleValue {
  if (!(dict instanceof Map)) {
    throw new Error(`${source}: expected a pickled dict, found ${describe(dict)}`);
  }
  if (!dict.has(key)) {
    throw new Error(`${source}: key '${key}' missing (keys: ${[...dict.keys()].join(", ")})`);
  }
  return dict.get(key)!;
}

/** The value as a numpy uint8 array (throws naming `what` otherwise). */
export function asUint8Array(value: PickleValue, what: string): PickledArray {
  if (!isKind(value, "ndarray")) {
    throw new Error(`${what}: expected a numpy array, found ${describe(value)}`);
  }
  const array = value as PickledArray;
  if (array.dtype !== "u1") {
    throw new Error(`${what}: expected dtype uint8 (u1), found ${array.dtype}`);
  }
  const expected = array.shape.reduce((a, b) => a * b, 1);
  if (array.data.length !== expected) {
    throw new Error(`${what}: ${array.data.length} bytes for shape (${array.shape.join(", ")})`);
  }
  return array;
}

/** The value as a list of ints (a Python list or a 1-d integer numpy array). */
export function asIntList(value: PickleValue, what: string): Int32Array {
  if (Array.isArray(value)) {
    const out = new Int32Array(value.length);
    value.forEach((v, i) => {
      if (typeof v !== "number" || !Number.isInteger(v)) {
        throw new Error(`${what}: item ${i} is ${describe(v)}, expected an int`);
      }
      out[i] = v;
    });
    return out;
  }
  if (isKind(value, "ndarray")) {
    const array = value as PickledArray;
    const view = new DataView(array.data.buffer, array.data.byteOffset, array.data.byteLength);
    const size = { u1: 1, i1: 1, i2: 2, u2: 2, i4: 4, i8: 8 }[array.dtype];
    if (!size) throw new Error(`${what}: unsupported label dtype ${array.dtype}`);
    const little = array.byteOrder !== ">";
    const out = new Int32Array(array.data.length / size);
    for (let i = 0; i < out.length; i++) {
      const at = i * size;
      out[i] = size === 1
        ? (array.dtype === "u1" ? view.getUint8(at) : view.getInt8(at))
        : size === 2
        ? (array.dtype === "u2" ? view.getUint16(at, little) : view.getInt16(at, little))
        : size === 4
        ? view.getInt32(at, little)
        : Number(view.getBigInt64(at, little));
    }
    return out;
  }
  throw new Error(`${what}: expected a list of ints, found ${describe(value)}`);
}

/** The value as a list of strings (Python 2 str items are decoded as latin-1). */
export function asStringList(value: PickleValue, what: string): string[] {
  if (!Array.isArray(value)) {
    throw new Error(`${what}: expected a list of names, found ${describe(value)}`);
  }
  return value.map((v, i) => {
    if (typeof v === "string") return v;
    if (v instanceof Uint8Array) return latin1.decode(v);
    throw new Error(`${what}: item ${i} is ${describe(v)}, expected a name`);
  });
}
