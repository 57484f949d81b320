/**
 * Training checkpoints as one safetensors file: parameters, BN buffers and
 * optimizer state (`<param>.<slot>`, see {@link optimizerStateKey}) as
 * tensors; step counters, epoch, RNG state, config hash and any other
 * JSON-serializable values in `__metadata__`, each stored as a JSON string.
 * Written atomically, so a crash mid-save leaves the previous checkpoint.
 */
import type { HostTensor } from "../runtime/host_tensor.ts";
import type { AtomicWriteOptions } from "../util/atomic.ts";
import { decodeSafetensors, encodeSafetensors } from "./safetensors.ts";
import { writeFileAtomic } from "../util/atomic.ts";

/** Metadata key that marks a file as a checkpoint of this toolkit (holds {@link CHECKPOINT_FORMAT}). */
export const CHECKPOINT_FORMAT_KEY = "checkpoint_format";
/** Version of the checkpoint layout. */
export const CHECKPOINT_FORMAT = "1";

/** A checkpoint: named tensors and JSON-serializable metadata. */
export interface Checkpoint {
  tensors: Record<string, HostTensor>;
  meta: Record<string, unknown>;
}

export { optimizerStateKey } from "../optim/types.ts";

function encodeMeta(path: string, meta: Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = { [CHECKPOINT_FORMAT_KEY]: CHECKPOINT_FORMAT };
  for (const [key, value] of Object.entries(meta)) {
    if (key === CHECKPOINT_FORMAT_KEY) {
      throw new Error(`checkpoint ${path}: meta key ${key} is reserved`);
    }
    let text: string | undefined;
    try {
      text = JSON.stringify(value);
    } catch (error) {
      throw new Error(
        `checkpoint ${path}: meta.${key} is not JSON-serializable (${(error as Error).message})`,
      );
    }
    if (text === undefined) {
      throw new Error(`checkpoint ${path}: meta.${key} is not JSON-serializable (${typeof value})`);
    }
    out[key] = text;
  }
  return out;
}

/**
 * Saves a checkpoint to `path` atomically (temp file in the same directory +
 * fsync + rename): a failure or crash mid-write leaves any old file at `path` intact.
 */
export async function saveCheckpoint(
  path: string,
  checkpoint: Checkpoint,
  options: AtomicWriteOptions = {},
): Promise<void> {
  const metadata = encodeMeta(path, checkpoint.meta);
  let bytes: Uint8Array;
  try {
    bytes = encodeSafetensors(checkpoint.tensors, metadata);
  } catch (error) {
    throw new Error(`checkpoint ${path}: ${(error as Error).message}`, { cause: error });
  }
  await writeFileAtomic(path, bytes, options);
}

/**
 * Loads a checkpoint written by {@link saveCheckpoint}. Throws an Error naming
 * the file when it is missing, truncated, has a bad header, or is not a checkpoint.
 */
export async function loadCheckpoint(path: string): Promise<Checkpoint> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new Error(`checkpoint ${path}: file not found`);
    }
    throw new Error(`checkpoint ${path}: cannot read (${(error as Error).message})`);
  }
  const { tensors, metadata } = decodeSafetensors(bytes, path);
  if (metadata[CHECKPOINT_FORMAT_KEY] !== CHECKPOINT_FORMAT) {
    const found = metadata[CHECKPOINT_FORMAT_KEY];
    throw new Error(
      `checkpoint ${path}: not a checkpoint of format ${CHECKPOINT_FORMAT} (__metadata__.${CHECKPOINT_FORMAT_KEY} is ${
        found === undefined ? "missing" : JSON.stringify(found)
      })`,
    );
  }
  const meta: Record<string, unknown> = {};
  for (const [key, text] of Object.entries(metadata)) {
    if (key === CHECKPOINT_FORMAT_KEY) continue;
    try {
      meta[key] = JSON.parse(text);
    } catch {
      throw new Error(
        `checkpoint ${path}: bad header: __metadata__.${key} is not JSON (${
          JSON.stringify(text.slice(0, 80))
        })`,
      );
    }
  }
  return { tensors, meta };
}
