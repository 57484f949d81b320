/** Minimal assertions for tests (JSR's @std/assert is unreachable here). */

/** Throws with `message` when `condition` is false. */
export function assert(condition: unknown, message = "assertion failed"): asserts condition {
  if (!condition) throw new Error(message);
}

/** Deep equality via JSON, with a readable diff. */
export function assertEquals<T>(actual: T, expected: T, message = ""): void {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  if (a !== e) throw new Error(`${message ? message + ": " : ""}expected ${e}, got ${a}`);
}

/** |actual − expected| ≤ atol + rtol·|expected|. */
export function assertClose(
  actual: number,
  expected: number,
  rtol = 1e-6,
  atol = 0,
  message = "",
): void {
  if (!(Math.abs(actual - expected) <= atol + rtol * Math.abs(expected))) {
    throw new Error(
      `${
        message ? message + ": " : ""
      }expected ${expected}, got ${actual} (rtol ${rtol}, atol ${atol})`,
    );
  }
}

/** Elementwise {@link assertClose}; reports the worst index. */
export function assertAllClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  rtol = 1e-6,
  atol = 0,
  message = "",
): void {
  if (actual.length !== expected.length) {
    throw new Error(
      `${message ? message + ": " : ""}length ${actual.length} != ${expected.length}`,
    );
  }
  for (let i = 0; i < actual.length; i++) {
    if (!(Math.abs(actual[i] - expected[i]) <= atol + rtol * Math.abs(expected[i]))) {
      throw new Error(
        `${message ? message + ": " : ""}index ${i}: expected ${expected[i]}, got ${actual[i]}`,
      );
    }
  }
}

/** Asserts that `fn` throws (or rejects) with a message containing every fragment. */
export async function assertThrowsMessage(
  fn: () => unknown,
  ...fragments: string[]
): Promise<string> {
  try {
    await fn();
  } catch (e) {
    const message = (e as Error).message;
    for (const f of fragments) {
      if (!message.includes(f)) throw new Error(`error message lacks "${f}": ${message}`);
    }
    return message;
  }
  throw new Error(`expected an error containing ${fragments.map((f) => `"${f}"`).join(", ")}`);
}

/** max |x|, 0 for none. */
export function maxAbs(values: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < values.length; i++) m = Math.max(m, Math.abs(values[i]));
  return m;
}

/**
 * max |actual − expected| / max(max |expected|, floor): the error relative to
 * the reference's scale (the absolute error when that scale is 0).
 */
export function scaledError(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  floor = 0,
): number {
  assertEquals(actual.length, expected.length, "length");
  let err = 0;
  for (let i = 0; i < expected.length; i++) err = Math.max(err, Math.abs(actual[i] - expected[i]));
  const scale = Math.max(maxAbs(expected), floor);
  return scale > 0 ? err / scale : err;
}
