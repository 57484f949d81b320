/**
 * Installing the CUDA execution provider for the pinned onnxruntime-node and
 * checking the CUDA 13 / cuDNN 9 libraries it needs.
 *
 * onnxruntime-node 1.29.0 ships its CPU build only (its install script would
 * fetch the CUDA 12 provider from NuGet, which Deno does not run). The npm
 * package com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9 holds the same
 * ORT 1.29.0 provider built for CUDA 13 and cuDNN 9, under
 * `package/Plugins/Linux/x64/`: libonnxruntime_providers_shared.so (15 KB)
 * and libonnxruntime_providers_cuda.so (230 MB; device code for sm_75, sm_80,
 * sm_86, sm_89, sm_90 and sm_120). ORT loads both from the folder of
 * libonnxruntime.so.1.
 */
import { basename, join } from "node:path";
import { CUDA_PROVIDER_FILES, ortNativeDir } from "./providers.ts";
import {
  checkLibraries,
  type DlopenedLibrary,
  hostLibrarySearchPath,
  ldLibraryPathExport,
  type LibraryReport,
  type LibrarySearchPath,
} from "./libs.ts";

/** The npm package holding the CUDA provider that matches onnxruntime-node 1.29.0. */
export const GPU_PROVIDER_PACKAGE = {
  name: "com.github.asus4.onnxruntime.linux-x64-gpu",
  version: "0.4.9",
  /** Folder of the provider files inside the package tarball. */
  folder: "package/Plugins/Linux/x64",
  onnxruntimeVersion: "1.29.0",
} as const;

/** The npm spec of {@link GPU_PROVIDER_PACKAGE}. */
export const GPU_PROVIDER_SPEC = `${GPU_PROVIDER_PACKAGE.name}@${GPU_PROVIDER_PACKAGE.version}`;

/** File name `npm pack` gives the package tarball. */
export const GPU_PROVIDER_TARBALL =
  `${GPU_PROVIDER_PACKAGE.name}-${GPU_PROVIDER_PACKAGE.version}.tgz`;

/**
 * Libraries the CUDA provider opens with dlopen() at run time rather than
 * through DT_NEEDED (read from the provider binary's strings: it tries
 * "libcudnn.so.9", "libcufft.so.12" and NVRTC 13 by name). cuDNN 9 itself
 * loads its sub-libraries from its own folder.
 */
export const CUDA_PROVIDER_DLOPENED: DlopenedLibrary[] = [
  {
    name: "libcudnn.so.9",
    purpose: "cuDNN 9: convolution, pooling and normalization kernels",
    companions: [
      { name: "libcudnn_graph.so.9" },
      { name: "libcudnn_ops.so.9" },
      { name: "libcudnn_cnn.so.9" },
      { name: "libcudnn_engines_precompiled.so.9" },
      { name: "libcudnn_heuristic.so.9" },
      {
        name: "libcudnn_engines_runtime_compiled.so.9",
        optional: "runtime-compiled (fused) cuDNN engines",
      },
      {
        name: "libcudnn_adv.so.9",
        optional: "cuDNN RNN and attention kernels (our graphs use none)",
      },
    ],
  },
  {
    name: "libcufft.so.12",
    purpose: "cuFFT (CUDA 13 ships cuFFT 12)",
    optional: "FFT operators only (our graphs use none)",
  },
  {
    name: "libnvrtc.so.13",
    purpose: "NVRTC: run-time kernel compilation",
    optional: "kernels compiled at run time (cuDNN runtime fusion)",
  },
];

/** The pip line that installs every CUDA 13 / cuDNN 9 library the provider uses (not the driver). */
export const PIP_INSTALL_LINE =
  "python3 -m pip install 'nvidia-cuda-runtime==13.*' 'nvidia-cublas==13.*' " +
  "'nvidia-curand==10.*' 'nvidia-cufft==12.*' 'nvidia-cuda-nvrtc==13.*' 'nvidia-cudnn-cu13==9.*'";

/** Where a library can be installed from, for the messages. */
export const LIBRARY_SOURCES: Record<string, string> = {
  "libcuda.so.1": "the NVIDIA driver (version 580 or newer for CUDA 13)",
  "libcudart.so.13": "CUDA 13 runtime (pip: nvidia-cuda-runtime; or the CUDA 13 toolkit)",
  "libcublas.so.13": "cuBLAS 13 (pip: nvidia-cublas; or the CUDA 13 toolkit)",
  "libcublasLt.so.13": "cuBLAS 13 (pip: nvidia-cublas; or the CUDA 13 toolkit)",
  "libcurand.so.10": "cuRAND for CUDA 13 (pip: nvidia-curand; or the CUDA 13 toolkit)",
  "libcufft.so.12": "cuFFT for CUDA 13 (pip: nvidia-cufft; or the CUDA 13 toolkit)",
  "libnvrtc.so.13": "NVRTC 13 (pip: nvidia-cuda-nvrtc; or the CUDA 13 toolkit)",
  "libcudnn.so.9": "cuDNN 9 for CUDA 13 (pip: nvidia-cudnn-cu13)",
};

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

async function runChecked(command: string, args: string[], what: string): Promise<string> {
  let output: Deno.CommandOutput;
  try {
    output = await new Deno.Command(command, { args, stdout: "piped", stderr: "piped" }).output();
  } catch (e) {
    throw new Error(`${what}: cannot run ${command} (${(e as Error).message})`);
  }
  if (!output.success) {
    const stderr = new TextDecoder().decode(output.stderr).trim().split("\n").slice(-3).join(" | ");
    throw new Error(
      `${what}: \`${command} ${args.join(" ")}\` failed (exit ${output.code}): ${stderr}`,
    );
  }
  return new TextDecoder().decode(output.stdout);
}

/** Downloads the provider package with `npm pack` into `dir`; returns the tarball's path. */
export async function downloadProviderPackage(dir: string): Promise<string> {
  await runChecked(
    "npm",
    ["pack", GPU_PROVIDER_SPEC, "--pack-destination", dir, "--silent"],
    `downloading ${GPU_PROVIDER_SPEC} (about 180 MB; offline: pass --from DIR with the .tgz or the .so files)`,
  );
  const tarball = join(dir, GPU_PROVIDER_TARBALL);
  if (!await exists(tarball)) throw new Error(`npm pack ${GPU_PROVIDER_SPEC} wrote no ${tarball}`);
  return tarball;
}

/** Extracts the two provider files from the package tarball into `dir`. */
export async function extractProviderFiles(
  tarball: string,
  dir: string,
): Promise<Record<string, string>> {
  const members = CUDA_PROVIDER_FILES.map((f) => `${GPU_PROVIDER_PACKAGE.folder}/${f}`);
  await runChecked(
    "tar",
    ["-xzf", tarball, "-C", dir, ...members],
    `extracting the CUDA provider from ${tarball}`,
  );
  return Object.fromEntries(
    CUDA_PROVIDER_FILES.map((f) => [f, join(dir, GPU_PROVIDER_PACKAGE.folder, f)]),
  );
}

/**
 * Finds the provider files under `from`: the package tarball itself, a
 * folder holding it, a folder holding the two `.so` files, or the unpacked
 * package (`package/Plugins/Linux/x64/`). Extracts into `workDir` when it
 * has to. Throws naming what it looked for.
 */
export async function findProviderFiles(
  from: string,
  workDir: string,
): Promise<Record<string, string>> {
  let stat: Deno.FileInfo;
  try {
    stat = await Deno.stat(from);
  } catch {
    throw new Error(`--from ${from}: no such file or folder`);
  }
  if (stat.isFile) return await extractProviderFiles(from, workDir);
  for (const sub of ["", GPU_PROVIDER_PACKAGE.folder, "Plugins/Linux/x64"]) {
    const paths = CUDA_PROVIDER_FILES.map((f) => join(from, sub, f));
    if ((await Promise.all(paths.map(exists))).every((e) => e)) {
      return Object.fromEntries(CUDA_PROVIDER_FILES.map((f, i) => [f, paths[i]]));
    }
  }
  const tarball = join(from, GPU_PROVIDER_TARBALL);
  if (await exists(tarball)) return await extractProviderFiles(tarball, workDir);
  throw new Error(
    `--from ${from}: found neither ${
      CUDA_PROVIDER_FILES.join(" and ")
    } nor ${GPU_PROVIDER_TARBALL} ` +
      `(get it with \`npm pack ${GPU_PROVIDER_SPEC}\`)`,
  );
}

/** Options of {@link installCudaProvider}. */
export interface InstallOptions {
  /** Offline source (see {@link findProviderFiles}); absent: download with npm. */
  from?: string;
  /** Folder to install into (default: beside onnxruntime-node's libonnxruntime.so.1). */
  dest?: string;
  /** Progress lines. */
  log?: (line: string) => void;
}

/** Copies the provider files beside libonnxruntime.so.1; returns the installed paths. */
export async function installCudaProvider(options: InstallOptions = {}): Promise<string[]> {
  const log = options.log ?? (() => {});
  const dest = options.dest ?? ortNativeDir();
  if (!await exists(dest)) throw new Error(`install folder ${dest} does not exist`);
  const workDir = await Deno.makeTempDir({ prefix: "cuda-provider-" });
  try {
    let files: Record<string, string>;
    if (options.from) {
      files = await findProviderFiles(options.from, workDir);
    } else {
      log(`downloading ${GPU_PROVIDER_SPEC} with npm pack (about 180 MB)`);
      files = await extractProviderFiles(await downloadProviderPackage(workDir), workDir);
    }
    const installed: string[] = [];
    for (const file of CUDA_PROVIDER_FILES) {
      const target = join(dest, file);
      // Replace rather than overwrite: the old file may be mapped by a running process.
      await Deno.remove(target).catch(() => {});
      await Deno.copyFile(files[file], target);
      const { size } = await Deno.stat(target);
      log(
        `installed ${target} (${
          size < 1e6 ? `${(size / 1e3).toFixed(1)} kB` : `${(size / 1e6).toFixed(1)} MB`
        })`,
      );
      installed.push(target);
    }
    return installed;
  } finally {
    await Deno.remove(workDir, { recursive: true });
  }
}

/** Options of {@link checkCudaLibraries}. */
export interface CheckOptions {
  /** Folder holding the provider files (default: beside libonnxruntime.so.1). */
  providerDir?: string;
  /** Extra Python interpreters whose nvidia/*\/lib folders to search. */
  pythons?: string[];
  /** Search path to use instead of this host's (tests). */
  search?: LibrarySearchPath;
}

/**
 * Checks that the provider files are present and that every library the CUDA
 * provider needs resolves. Throws naming the missing provider file.
 */
export async function checkCudaLibraries(options: CheckOptions = {}): Promise<LibraryReport> {
  const dir = options.providerDir ?? ortNativeDir();
  for (const file of CUDA_PROVIDER_FILES) {
    const path = join(dir, file);
    if (!await exists(path)) {
      throw new Error(
        `the CUDA provider is not installed: missing ${path}; run \`deno task setup-cuda\``,
      );
    }
  }
  const search = options.search ?? await hostLibrarySearchPath(options.pythons);
  return await checkLibraries(
    join(dir, "libonnxruntime_providers_cuda.so"),
    search,
    CUDA_PROVIDER_DLOPENED,
  );
}

/** The line naming a missing library, where it was needed and where to get it. */
export function describeMissing(check: LibraryReport["checks"][number]): string {
  const source = LIBRARY_SOURCES[check.name] ??
    (check.name.startsWith("libcudnn") ? LIBRARY_SOURCES["libcudnn.so.9"] : undefined);
  const what = check.purpose ? ` — ${check.purpose}` : "";
  const from = source ? `; install ${source}` : "";
  return `missing: ${check.name} (needed by ${check.neededBy})${what}${from}`;
}

/**
 * Human-readable lines of a report: one per missing library (required, then
 * optional ones marked so), the libraries found only outside the loader's
 * path, and the LD_LIBRARY_PATH line that makes them visible.
 */
export function formatLibraryReport(report: LibraryReport): string[] {
  const lines = report.missing.map(describeMissing);
  for (const check of report.optionalMissing) {
    lines.push(
      `${
        describeMissing(check).replace(/^missing:/, "optional, missing:")
      }; without it: ${check.optional}`,
    );
  }
  const hinted = report.checks.filter((c) => c.status === "hint");
  for (const check of hinted) {
    lines.push(`found outside the loader's search path: ${check.name} in ${check.path}`);
  }
  if (report.ldLibraryPathAdditions.length > 0) {
    lines.push(`before running, set: ${ldLibraryPathExport(report.ldLibraryPathAdditions)}`);
  }
  return lines;
}

/** Short reason for the first problem of a report (for `--device auto`), or undefined when none. */
export function firstProblem(report: LibraryReport): string | undefined {
  const missing = report.missing[0];
  if (missing) {
    const more = report.missing.length > 1 ? ` and ${report.missing.length - 1} more` : "";
    return `${missing.name} not found${more} (needed by ${basename(missing.neededBy)}); ` +
      "`deno task setup-cuda --check` lists what is missing";
  }
  if (report.ldLibraryPathAdditions.length > 0) {
    const hinted = report.checks.filter((c) => c.status === "hint").map((c) => c.name);
    return `${hinted.join(", ")} lie outside the loader's search path; first run ` +
      ldLibraryPathExport(report.ldLibraryPathAdditions);
  }
  return undefined;
}
