/**
 * `pack-gpu`: an offline bundle for a GPU host without internet. It holds the
 * Deno binary, the project (tracked and untracked-but-not-ignored files) with
 * its node_modules (onnxruntime-node's Linux x64 build only), and the CUDA
 * provider with device code for one GPU architecture, as a `.tar.xz` split
 * into parts of at most `--part-size` bytes, plus `unpack.sh` and SHA256SUMS.
 *
 * Pruning the provider: nvprune handles object files and static libraries,
 * not shared libraries, and is not installed here, so the provider's fat
 * binary is pruned in place by src/runtime/fatbin.ts (the payloads of the
 * other architectures become zeros, which xz stores in almost no space).
 */
import { dirname, join, relative, resolve } from "node:path";
import type { Command } from "./commands.ts";
import { UsageError } from "./errors.ts";
import { CUDA_PROVIDER_FILES, ortNativeDir } from "../runtime/providers.ts";
import {
  downloadProviderPackage,
  extractProviderFiles,
  findProviderFiles,
} from "../runtime/cuda_setup.ts";
import { parseSmArch, pruneFatbin, type PruneResult } from "../runtime/fatbin.ts";

/** The Deno version the bundle ships (the one the project pins). */
export const PINNED_DENO_VERSION = "2.9.6";
/** Base name of the parts: `<name>.tar.xz.part000`, ... */
export const BUNDLE_NAME = "contrastive-onnx-gpu";
/** Where `unpack.sh` installs when given no folder. */
export const DEFAULT_TARGET = "/opt/contrastive-onnx";
/** Default largest part: 60 MB. */
export const DEFAULT_PART_SIZE = 60_000_000;

const REPO_ROOT = resolve(dirname(new URL(import.meta.url).pathname), "../..");
const UNPACK_TEMPLATE = join(REPO_ROOT, "tools/pack-gpu/unpack.sh");

/** Options of {@link packGpuBundle}. */
export interface PackOptions {
  /** "sm_90" and the like, or "all" to keep every architecture. */
  arch: string;
  /** Output folder. */
  out: string;
  /** Project to pack (default: this repository). */
  projectDir?: string;
  /** CUDA provider source (see findProviderFiles); default: the installed provider, else npm. */
  providerFrom?: string;
  /** Deno binary to ship; default: .tools' copy, this Deno when it is the pinned one, else npm. */
  deno?: string;
  /** Largest part in bytes. */
  partSize?: number;
  /** xz preset, 0-9 (default 6). */
  xzLevel?: number;
  log?: (line: string) => void;
}

/** What {@link packGpuBundle} wrote. */
export interface PackResult {
  parts: string[];
  partSizes: number[];
  unpackScript: string;
  /** Files and links in the archive. */
  entries: number;
  /** What pruning did; absent for `--arch all`. */
  prune?: PruneResult;
}

/** Parses "60M", "64K", "1G" or a byte count; throws naming the option. */
export function parseSize(value: string, option = "--part-size"): number {
  const match = /^(\d+(?:\.\d+)?)\s*([KMG]?)B?$/i.exec(value.trim());
  if (!match) {
    throw new UsageError(`${option}: expected a size like 60M, 64K or 1000000, got "${value}"`);
  }
  const unit = { "": 1, K: 1e3, M: 1e6, G: 1e9 }[match[2].toUpperCase() as "" | "K" | "M" | "G"];
  const bytes = Math.floor(Number(match[1]) * unit);
  if (bytes < 1024) {
    throw new UsageError(`${option}: parts must hold at least 1 KB, got "${value}"`);
  }
  return bytes;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

async function output(command: string, args: string[], what: string): Promise<Uint8Array> {
  const out = await new Deno.Command(command, { args, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(
      `${what}: ${command} ${args.join(" ")} failed: ${
        new TextDecoder().decode(out.stderr).trim()
      }`,
    );
  }
  return out.stdout;
}

/** Finds the Deno binary to ship (see {@link PackOptions.deno}). */
export async function resolveDenoBinary(
  projectDir: string,
  explicit: string | undefined,
  workDir: string,
) {
  if (explicit) {
    if (!await exists(explicit)) throw new UsageError(`--deno ${explicit}: no such file`);
    return explicit;
  }
  const tools = join(projectDir, ".tools/node_modules/@deno/linux-x64-glibc/deno");
  if (await exists(tools)) return tools;
  if (
    Deno.version.deno === PINNED_DENO_VERSION && Deno.build.os === "linux" &&
    Deno.build.arch === "x86_64"
  ) {
    return Deno.execPath();
  }
  const spec = `@deno/linux-x64-glibc@${PINNED_DENO_VERSION}`;
  await output(
    "npm",
    ["pack", spec, "--pack-destination", workDir, "--silent"],
    `downloading ${spec}`,
  );
  const tarball = join(workDir, `deno-linux-x64-glibc-${PINNED_DENO_VERSION}.tgz`);
  await output(
    "tar",
    ["-xzf", tarball, "-C", workDir, "package/deno"],
    `extracting deno from ${tarball}`,
  );
  return join(workDir, "package/deno");
}

/**
 * Project files, relative to `projectDir`: `git ls-files` (tracked, and
 * untracked but not ignored) that exist, or without git every file outside
 * .git; never node_modules (packed on its own).
 */
export async function projectFiles(projectDir: string): Promise<string[]> {
  let names: string[];
  if (await exists(join(projectDir, ".git"))) {
    const raw = await output(
      "git",
      ["-C", projectDir, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
      "listing the project's files",
    );
    names = new TextDecoder().decode(raw).split("\0").filter((n) => n.length > 0);
  } else {
    names = await walk(projectDir, "", (rel) => rel === ".git" || rel === "node_modules");
  }
  const present: string[] = [];
  for (const name of [...new Set(names)].sort()) {
    // node_modules is walked separately (git usually ignores it; tar must not see it twice).
    if (name.startsWith("node_modules/")) continue;
    if (await exists(join(projectDir, name))) present.push(name);
  }
  return present;
}

/** Files and symlinks under `root/rel`, relative to root; `skip` prunes paths. */
async function walk(root: string, rel: string, skip: (rel: string) => boolean): Promise<string[]> {
  const found: string[] = [];
  for await (const entry of Deno.readDir(join(root, rel))) {
    const path = rel ? `${rel}/${entry.name}` : entry.name;
    if (skip(path)) continue;
    if (entry.isDirectory) found.push(...await walk(root, path, skip));
    else found.push(path);
  }
  return found.sort();
}

/**
 * What to leave out of node_modules: onnxruntime-node's native folders for
 * other platforms, and any provider copy beside libonnxruntime.so.1 (the
 * bundle ships its own, pruned, under providers/).
 */
export function skipInNodeModules(ortRel: string): (rel: string) => boolean {
  const napi = dirname(dirname(ortRel)); // .../bin/napi-v6
  const platform = dirname(ortRel); // .../bin/napi-v6/linux
  const providerCopies = new Set<string>(
    [...CUDA_PROVIDER_FILES, "libonnxruntime_providers_tensorrt.so"].map((f) => `${ortRel}/${f}`),
  );
  return (rel) => {
    if (providerCopies.has(rel)) return true;
    const parent = dirname(rel);
    if (parent === napi) return rel !== platform;
    if (parent === platform) return rel !== ortRel;
    return false;
  };
}

/** Streams tar | xz into parts of at most `partSize` bytes; returns the part paths. */
async function writeParts(
  tarArgs: string[],
  out: string,
  partSize: number,
  xzLevel: number,
  warn: (line: string) => void,
): Promise<string[]> {
  const tar = new Deno.Command("tar", { args: tarArgs, stdout: "piped", stderr: "piped" }).spawn();
  const xz = new Deno.Command("xz", {
    args: [`-${xzLevel}`, "-T0", "--stdout"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const piping = tar.stdout.pipeTo(xz.stdin);
  const parts: string[] = [];
  let file: Deno.FsFile | undefined;
  let used = partSize;
  try {
    for await (let chunk of xz.stdout) {
      while (chunk.length > 0) {
        if (used === partSize) {
          file?.close();
          const path = join(
            out,
            `${BUNDLE_NAME}.tar.xz.part${String(parts.length).padStart(3, "0")}`,
          );
          file = await Deno.open(path, { write: true, create: true, truncate: true });
          parts.push(path);
          used = 0;
        }
        const take = Math.min(chunk.length, partSize - used);
        let written = 0;
        while (written < take) written += await file!.write(chunk.subarray(written, take));
        used += take;
        chunk = chunk.subarray(take);
      }
    }
  } finally {
    file?.close();
  }
  await piping;
  const [tarStatus, xzStatus] = await Promise.all([tar.status, xz.status]);
  const tarErr = new TextDecoder().decode(await new Response(tar.stderr).arrayBuffer()).trim();
  const xzErr = new TextDecoder().decode(await new Response(xz.stderr).arrayBuffer()).trim();
  if (!tarStatus.success || !xzStatus.success) {
    for (const part of parts) await Deno.remove(part).catch(() => {});
    if (!tarStatus.success) throw new Error(`tar failed (exit ${tarStatus.code}): ${tarErr}`);
    throw new Error(`xz failed (exit ${xzStatus.code}): ${xzErr}`);
  }
  if (tarErr) warn(`tar: ${tarErr}`);
  return parts;
}

async function sha256(path: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", await Deno.readFile(path));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function shellQuote(value: string): string {
  return `'${value.replaceAll("'", `'\\''`)}'`;
}

/** Writes the bundle; see the module comment. */
export async function packGpuBundle(options: PackOptions): Promise<PackResult> {
  const log = options.log ?? (() => {});
  const arch = options.arch === "all" ? undefined : parseSmArch(options.arch);
  const partSize = options.partSize ?? DEFAULT_PART_SIZE;
  const xzLevel = options.xzLevel ?? 6;
  if (!Number.isInteger(xzLevel) || xzLevel < 0 || xzLevel > 9) {
    throw new UsageError(`--xz-level: expected 0 to 9, got ${xzLevel}`);
  }
  const projectDir = resolve(options.projectDir ?? REPO_ROOT);
  const out = resolve(options.out);
  const ortRel = relative(REPO_ROOT, ortNativeDir());
  const work = await Deno.makeTempDir({ prefix: "pack-gpu-" });
  try {
    // The provider: --from, else the installed one, else npm.
    let provider: Record<string, string>;
    if (options.providerFrom) {
      provider = await findProviderFiles(options.providerFrom, work);
    } else if (await exists(join(ortNativeDir(), "libonnxruntime_providers_cuda.so"))) {
      provider = await findProviderFiles(ortNativeDir(), work);
    } else {
      log("downloading the CUDA provider package with npm pack (about 180 MB)");
      provider = await extractProviderFiles(await downloadProviderPackage(work), work);
    }
    const stage = join(work, "stage");
    await Deno.mkdir(join(stage, "providers"), { recursive: true });
    await Deno.mkdir(join(stage, "bin"), { recursive: true });
    const cuda = "libonnxruntime_providers_cuda.so";
    let prune: PruneResult | undefined;
    if (arch === undefined) {
      await Deno.copyFile(provider[cuda], join(stage, "providers", cuda));
    } else {
      prune = await pruneFatbin(provider[cuda], join(stage, "providers", cuda), arch);
      log(
        `provider device code for sm_${arch}: kept ${prune.keptEntries} images ` +
          `(${(prune.keptBytes / 1e6).toFixed(1)} MB), blanked ${prune.blankedEntries} ` +
          `(${(prune.blankedBytes / 1e6).toFixed(1)} MB)`,
      );
    }
    for (const file of CUDA_PROVIDER_FILES) {
      if (file !== cuda) await Deno.copyFile(provider[file], join(stage, "providers", file));
    }
    await Deno.copyFile(
      await resolveDenoBinary(projectDir, options.deno, work),
      join(stage, "bin/deno"),
    );
    await Deno.chmod(join(stage, "bin/deno"), 0o755);

    const stageFiles = ["bin/deno", ...CUDA_PROVIDER_FILES.map((f) => `providers/${f}`)];
    const outRel = relative(projectDir, out);
    const files = (await projectFiles(projectDir)).filter((f) =>
      outRel.startsWith("..") || !f.startsWith(`${outRel}/`)
    );
    const nodeModules = join(projectDir, "node_modules");
    if (await exists(nodeModules)) {
      files.push(...await walk(projectDir, "node_modules", skipInNodeModules(ortRel)));
    }
    const encoder = new TextEncoder();
    const stageList = join(work, "stage.list");
    const projectList = join(work, "project.list");
    await Deno.writeFile(stageList, encoder.encode(stageFiles.map((f) => `${f}\0`).join("")));
    await Deno.writeFile(projectList, encoder.encode(files.map((f) => `${f}\0`).join("")));

    await Deno.mkdir(out, { recursive: true });
    for await (const entry of Deno.readDir(out)) {
      if (
        entry.name.startsWith(`${BUNDLE_NAME}.tar.xz.part`) || entry.name === "SHA256SUMS" ||
        entry.name === "unpack.sh"
      ) {
        await Deno.remove(join(out, entry.name));
      }
    }
    log(
      `packing ${
        files.length + stageFiles.length
      } files (xz -${xzLevel}, parts of at most ${partSize} bytes)`,
    );
    const parts = await writeParts(
      [
        "--create",
        "--file=-",
        "--null",
        "--no-recursion",
        "--owner=0",
        "--group=0",
        "--numeric-owner",
        // A file deleted between listing and archiving is left out with a warning.
        "--ignore-failed-read",
        "-C",
        stage,
        "--files-from",
        stageList,
        "-C",
        projectDir,
        "--files-from",
        projectList,
      ],
      out,
      partSize,
      xzLevel,
      log,
    );
    const partNames = parts.map((p) => p.slice(out.length + 1));
    const sums = await Promise.all(parts.map(sha256));
    await Deno.writeTextFile(
      join(out, "SHA256SUMS"),
      partNames.map((n, i) => `${sums[i]}  ${n}\n`).join(""),
    );

    const script = (await Deno.readTextFile(UNPACK_TEMPLATE))
      .replaceAll(
        "__ARCH__",
        arch === undefined ? "all GPU architectures" : `device code for sm_${arch} only`,
      )
      .replaceAll("__DEFAULT_TARGET__", DEFAULT_TARGET)
      .replaceAll("__PARTS__", partNames.map(shellQuote).join(" "))
      .replaceAll("__ORT_DIR__", ortRel);
    const unpackScript = join(out, "unpack.sh");
    await Deno.writeTextFile(unpackScript, script);
    await Deno.chmod(unpackScript, 0o755);
    const partSizes = await Promise.all(parts.map(async (p) => (await Deno.stat(p)).size));
    return { parts, partSizes, unpackScript, entries: files.length + stageFiles.length, prune };
  } finally {
    await Deno.remove(work, { recursive: true });
  }
}

/** The pack-gpu command. */
export const packGpuCommand: Command = {
  name: "pack-gpu",
  summary:
    "write an offline bundle (Deno, project, CUDA provider for one GPU architecture) in parts",
  usage: "--arch sm_90 [--out dist/] [--from PROVIDER] [--deno PATH] [--part-size 60M]",
  options: {
    arch: {
      type: "string",
      description: "GPU architecture to keep device code for (sm_90 for H100), or all",
    },
    out: { type: "string", description: "output folder", default: "dist" },
    from: {
      type: "string",
      description: "CUDA provider source: package .tgz, a folder with it or with the .so files",
    },
    deno: { type: "string", description: "Deno binary to ship (default: the pinned 2.9.6)" },
    project: { type: "string", description: "project folder to pack (default: this repository)" },
    "part-size": { type: "string", description: "largest part", default: "60M" },
    "xz-level": { type: "string", description: "xz preset 0-9", default: "6" },
  },
  async run(args) {
    const arch = args.values.arch as string | undefined;
    if (!arch) {
      throw new UsageError("--arch: required (e.g. --arch sm_90 for H100/H200, or --arch all)");
    }
    if (arch !== "all") {
      try {
        parseSmArch(arch);
      } catch (e) {
        throw new UsageError((e as Error).message);
      }
    }
    const rawLevel = args.values["xz-level"] as string;
    if (!/^\d$/.test(rawLevel)) {
      throw new UsageError(`--xz-level: expected 0 to 9, got "${rawLevel}"`);
    }
    const xzLevel = Number(rawLevel);
    const result = await packGpuBundle({
      arch,
      out: args.values.out as string,
      providerFrom: args.values.from as string | undefined,
      deno: args.values.deno as string | undefined,
      projectDir: args.values.project as string | undefined,
      partSize: parseSize(args.values["part-size"] as string),
      xzLevel,
      log: (line) => console.log(line),
    });
    const total = result.partSizes.reduce((a, b) => a + b, 0);
    console.log(
      `wrote ${result.parts.length} parts (${
        (total / 1e6).toFixed(1)
      } MB) and ${result.unpackScript}; ` +
        `copy the folder to the GPU host and run: bash unpack.sh [TARGET_DIR]`,
    );
  },
};
