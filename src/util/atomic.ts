/**
 * Atomic file writes: the bytes go to a temporary file in the same directory,
 * are flushed to disk (fsync), and the temporary file is renamed over the
 * target. A reader sees either the old file or the whole new one, never a
 * half-written file, even when the process dies mid-write.
 */
import { basename, dirname, join } from "node:path";

/** Options of {@link writeFileAtomic}. */
export interface AtomicWriteOptions {
  /**
   * Called after the temporary file is written and synced, before the rename
   * (tests use it to simulate a failure at the last moment). An exception
   * aborts the write: the temporary file is removed and the target is untouched.
   */
  beforeRename?: (tempPath: string) => void | Promise<void>;
}

let tempCounter = 0;

/** A temporary-file path beside `path`, unique within this process (pid + counter). */
function tempPathFor(path: string): string {
  tempCounter += 1;
  return join(dirname(path), `.${basename(path)}.${Deno.pid}.${tempCounter}.tmp`);
}

/** Best-effort fsync of a directory so the rename itself is durable. */
function syncDirectory(dir: string): void {
  try {
    const handle = Deno.openSync(dir, { read: true });
    try {
      handle.syncSync();
    } finally {
      handle.close();
    }
  } catch {
    // Some platforms and file systems cannot fsync a directory; the rename is still atomic.
  }
}

function describe(path: string, error: unknown): Error {
  return new Error(
    `atomic write of ${path} failed: ${(error as Error)?.message ?? String(error)}`,
    { cause: error },
  );
}

/**
 * Writes `bytes` (one array, or chunks written in order) to `path` atomically
 * (temp file in the same directory + fsync + rename).
 */
export async function writeFileAtomic(
  path: string,
  bytes: Uint8Array | readonly Uint8Array[],
  options: AtomicWriteOptions = {},
): Promise<void> {
  const temp = tempPathFor(path);
  try {
    const file = await Deno.open(temp, { write: true, createNew: true });
    try {
      for (const chunk of bytes instanceof Uint8Array ? [bytes] : bytes) {
        let written = 0;
        while (written < chunk.length) written += await file.write(chunk.subarray(written));
      }
      await file.sync();
    } finally {
      file.close();
    }
    await options.beforeRename?.(temp);
    await Deno.rename(temp, path);
  } catch (error) {
    await Deno.remove(temp).catch(() => {});
    throw describe(path, error);
  }
  syncDirectory(dirname(path));
}

/** Writes UTF-8 `text` to `path` atomically. */
export function writeTextAtomic(
  path: string,
  text: string,
  options: AtomicWriteOptions = {},
): Promise<void> {
  return writeFileAtomic(path, new TextEncoder().encode(text), options);
}

/** Synchronous {@link writeFileAtomic}, for exit handlers and other places that cannot await. */
export function writeFileAtomicSync(path: string, bytes: Uint8Array): void {
  const temp = tempPathFor(path);
  try {
    const file = Deno.openSync(temp, { write: true, createNew: true });
    try {
      let written = 0;
      while (written < bytes.length) written += file.writeSync(bytes.subarray(written));
      file.syncSync();
    } finally {
      file.close();
    }
    Deno.renameSync(temp, path);
  } catch (error) {
    try {
      Deno.removeSync(temp);
    } catch {
      // The temporary file was never created.
    }
    throw describe(path, error);
  }
  syncDirectory(dirname(path));
}

/** Synchronous {@link writeTextAtomic}. */
export function writeTextAtomicSync(path: string, text: string): void {
  writeFileAtomicSync(path, new TextEncoder().encode(text));
}
