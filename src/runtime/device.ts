/**
 * `--device cpu|cuda|auto`: which device a run uses, and why not CUDA.
 *
 * CUDA is usable when the provider files sit beside libonnxruntime.so.1,
 * every library they need resolves, and a one-node session can be created
 * with the CUDA provider (which also proves a GPU and driver are there).
 */
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { encodeModel, Graph, ops } from "../onnx/mod.ts";
import { CUDA_PROVIDER_FILES, DeviceUnavailableError, ortNativeDir } from "./providers.ts";
import { checkCudaLibraries, firstProblem } from "./cuda_setup.ts";
import type { LibrarySearchPath } from "./libs.ts";

/** What `--device` accepts. */
export type RequestedDevice = "cpu" | "cuda" | "auto";

/** The device chosen, and for `auto` falling back to CPU, why. */
export interface ResolvedDevice {
  device: "cpu" | "cuda";
  reason?: string;
}

/** Options of {@link resolveDevice}; the defaults check this host. */
export interface ResolveDeviceOptions {
  /** Folder holding the provider files (default: beside libonnxruntime.so.1). */
  providerDir?: string;
  /** Library search path instead of this host's. */
  search?: LibrarySearchPath;
  /** Extra Python interpreters whose nvidia/*\/lib folders to search. */
  pythons?: string[];
  /**
   * Creates a CUDA session to prove the provider loads; throws if it cannot.
   * Default: a one-node session on CUDA device `deviceId`. `false` skips it.
   */
  probe?: false | (() => Promise<void>);
  /** CUDA device id for the probe. */
  deviceId?: number;
  /** Where `auto` reports its fallback (default: one line on stderr). */
  warn?: (line: string) => void;
}

/** Creates and releases a one-node session on the CUDA provider. */
export async function probeCudaSession(deviceId = 0): Promise<void> {
  const g = new Graph("cuda_probe");
  const x = g.input("x", "float32", [4]);
  g.output(ops.add(x, x), "y");
  const session = await ort.InferenceSession.create(encodeModel(g), {
    executionProviders: [{ name: "cuda", deviceId }],
    logSeverityLevel: 3,
  });
  const y = await session.run({
    x: new ort.Tensor("float32", new Float32Array([1, 2, 3, 4]), [4]),
  });
  const out = y.y.data as Float32Array;
  await session.release();
  if (out[3] !== 8) throw new Error(`the CUDA probe session computed ${out[3]} for 4 + 4`);
}

function firstLine(message: string): string {
  return message.split("\n").find((l) => l.trim().length > 0)?.trim() ?? message;
}

/** Why CUDA cannot be used here, or undefined when it can. */
export async function cudaUnavailableReason(
  options: ResolveDeviceOptions = {},
): Promise<string | undefined> {
  const dir = options.providerDir ?? ortNativeDir();
  for (const file of CUDA_PROVIDER_FILES) {
    const path = join(dir, file);
    try {
      await Deno.stat(path);
    } catch {
      return `the CUDA execution provider is not installed (missing ${path}); ` +
        "run `deno task setup-cuda` on a host with CUDA 13 and cuDNN 9";
    }
  }
  const report = await checkCudaLibraries({
    providerDir: dir,
    pythons: options.pythons,
    search: options.search,
  });
  const problem = firstProblem(report);
  if (problem) return problem;
  if (options.probe === false) return undefined;
  try {
    await (options.probe ?? (() => probeCudaSession(options.deviceId ?? 0)))();
  } catch (e) {
    return `a CUDA session could not be created: ${firstLine((e as Error).message)}`;
  }
  return undefined;
}

/**
 * Resolves `--device`: "cpu" as is; "cuda" or a {@link DeviceUnavailableError}
 * naming what is missing; "auto": CUDA when usable, else CPU with one line on
 * stderr (or `warn`) saying why.
 */
export async function resolveDevice(
  requested: RequestedDevice,
  options: ResolveDeviceOptions = {},
): Promise<ResolvedDevice> {
  if (requested === "cpu") return { device: "cpu" };
  if (requested !== "cuda" && requested !== "auto") {
    throw new DeviceUnavailableError(`--device: expected cpu, cuda or auto, got "${requested}"`);
  }
  const reason = await cudaUnavailableReason(options);
  if (reason === undefined) return { device: "cuda" };
  if (requested === "cuda") throw new DeviceUnavailableError(`--device cuda: ${reason}`);
  (options.warn ?? ((line: string) => console.error(line)))(
    `device auto: using the CPU, because ${reason}`,
  );
  return { device: "cpu", reason };
}
