/**
 * Execution-provider discovery: where onnxruntime-node's native library lives
 * and whether the CUDA provider sits beside it.
 */
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

/** The CUDA provider libraries ORT loads from the folder of libonnxruntime.so. */
export const CUDA_PROVIDER_FILES = [
  "libonnxruntime_providers_shared.so",
  "libonnxruntime_providers_cuda.so",
] as const;

/** Raised when a device cannot be used; the message says what is missing and how to fix it. */
export class DeviceUnavailableError extends Error {
  override name = "DeviceUnavailableError";
}

/** Folder holding onnxruntime-node's `libonnxruntime.so.1`. */
export function ortNativeDir(): string {
  const require = createRequire(import.meta.url);
  const entry = require.resolve("onnxruntime-node");
  const pkgRoot = dirname(dirname(entry));
  return join(
    pkgRoot,
    "bin",
    "napi-v6",
    Deno.build.os === "darwin" ? "darwin" : "linux",
    archName(),
  );
}

function archName(): string {
  return Deno.build.arch === "aarch64" ? "arm64" : "x64";
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/** Paths of the CUDA provider files in `dir` (default: beside libonnxruntime.so.1). */
export function cudaProviderPaths(dir: string = ortNativeDir()): string[] {
  return CUDA_PROVIDER_FILES.map((file) => join(dir, file));
}

/** Throws {@link DeviceUnavailableError} naming the missing CUDA provider file (in `dir`, default {@link ortNativeDir}). */
export function checkCudaProvider(dir: string = ortNativeDir()): void {
  for (const file of CUDA_PROVIDER_FILES) {
    const path = join(dir, file);
    if (!exists(path)) {
      throw new DeviceUnavailableError(
        `--device cuda: the CUDA execution provider is not installed (missing ${path}); ` +
          `run \`deno task setup-cuda\` on a host with CUDA 13 and cuDNN 9, or use --device cpu`,
      );
    }
  }
}
