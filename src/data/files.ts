/** File helpers of the data layer: atomic writes, reads with clear errors, optional gzip. */

import { gunzipSync } from "node:zlib";

/**
 * Writes `chunks` to `path` through a temporary file in the same folder and a rename, so a reader
 * never sees a half-written file and a failure leaves nothing behind.
 */
export async function writeFileAtomic(
  path: string,
  chunks: Uint8Array | Uint8Array[],
): Promise<void> {
  const temp = `${path}.${crypto.randomUUID().slice(0, 8)}.tmp`;
  try {
    const file = await Deno.open(temp, { write: true, createNew: true });
    try {
      for (const chunk of Array.isArray(chunks) ? chunks : [chunks]) {
        let written = 0;
        while (written < chunk.length) written += await file.write(chunk.subarray(written));
      }
    } finally {
      file.close();
    }
    await Deno.rename(temp, path);
  } catch (error) {
    await Deno.remove(temp).catch(() => {});
    throw error;
  }
}

/** Reads a whole file; a missing file gives an Error that says what the file was expected to hold. */
export async function readFileBytes(path: string, what: string): Promise<Uint8Array> {
  try {
    return await Deno.readFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) throw new Error(`${what} not found: ${path}`);
    throw new Error(`cannot read ${what} ${path}: ${(error as Error).message}`);
  }
}

/** Reads a file, gunzipping it when its name ends in `.gz`. */
export async function readMaybeGzipped(path: string, what: string): Promise<Uint8Array> {
  const bytes = await readFileBytes(path, what);
  if (!path.endsWith(".gz")) return bytes;
  try {
    return new Uint8Array(gunzipSync(bytes));
  } catch (error) {
    throw new Error(`${path}: not a valid gzip file (${(error as Error).message})`);
  }
}

/** True when something exists at `path`. */
export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}
