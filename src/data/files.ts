/** File helpers of the data layer: reads with clear errors, optional gzip. */

import { gunzipSync } from "node:zlib";

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
