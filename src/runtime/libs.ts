/**
 * Shared-library discovery: would the dynamic loader find every library a
 * given `.so` needs, and, for the ones it would not, are they lying somewhere
 * it does not look (a Python environment's `nvidia/<pkg>/lib`, the CUDA
 * toolkit) so that one LD_LIBRARY_PATH line fixes it?
 *
 * The search follows ld.so(8): DT_RPATH (only when there is no DT_RUNPATH),
 * LD_LIBRARY_PATH, DT_RUNPATH, the ldconfig cache, the default folders. The
 * libraries a library opens with dlopen() by name (cuDNN and cuFFT for the
 * CUDA provider) follow the same search, from the provider.
 */
import { basename, dirname, join } from "node:path";
import { elfDynamicInfo } from "./elf.ts";

/** Where to look, as the loader would and beyond it. */
export interface LibrarySearchPath {
  /** LD_LIBRARY_PATH folders, in order. */
  ldLibraryPath: string[];
  /** The ldconfig cache: library name → path. */
  ldconfigCache: Map<string, string>;
  /** The loader's default folders (searched last). */
  defaultDirs: string[];
  /** Folders the loader does not search but where CUDA libraries are often installed. */
  hintDirs: string[];
}

/** A library that another one opens by name at run time, with what it is for. */
export interface DlopenedLibrary {
  name: string;
  /** What works without it; absent: nothing that needs it works (required). */
  optional?: string;
  /** What the library provides. */
  purpose: string;
  /** Libraries that must sit in the same folder as this one (cuDNN 9 loads its engines that way). */
  companions?: { name: string; optional?: string }[];
}

/** How one needed library was (or was not) found. */
export interface LibraryCheck {
  name: string;
  /** File name of the library that needs it. */
  neededBy: string;
  /** Resolved path; absent when missing. */
  path?: string;
  /**
   * `loader`: the loader finds it as things are. `hint`: it exists in a folder
   * the loader does not search (needs LD_LIBRARY_PATH). `missing`: nowhere.
   */
  status: "loader" | "hint" | "missing";
  /** Set for libraries whose absence only disables some features. */
  optional?: string;
  purpose?: string;
}

/** The result of {@link checkLibraries}. */
export interface LibraryReport {
  checks: LibraryCheck[];
  /** Required libraries found nowhere. */
  missing: LibraryCheck[];
  /** Optional libraries found nowhere. */
  optionalMissing: LibraryCheck[];
  /** Folders to add to LD_LIBRARY_PATH (libraries found only outside the loader's path). */
  ldLibraryPathAdditions: string[];
}

/** The loader's trusted folders on x86-64 Linux (Debian multiarch and the plain ones). */
export const DEFAULT_LIBRARY_DIRS = [
  "/lib/x86_64-linux-gnu",
  "/usr/lib/x86_64-linux-gnu",
  "/lib64",
  "/usr/lib64",
  "/lib",
  "/usr/lib",
];

/** CUDA toolkit folders that the loader searches only when ldconfig or LD_LIBRARY_PATH says so. */
export const CUDA_TOOLKIT_DIRS = [
  "/usr/local/cuda/lib64",
  "/usr/local/cuda/lib",
  "/usr/local/cuda/targets/x86_64-linux/lib",
];

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

async function run(command: string, args: string[]): Promise<string | undefined> {
  try {
    const out = await new Deno.Command(command, { args, stdout: "piped", stderr: "null" }).output();
    return out.success ? new TextDecoder().decode(out.stdout) : undefined;
  } catch {
    return undefined;
  }
}

/** Parses `ldconfig -p` output, keeping x86-64 entries. */
export function parseLdconfigOutput(text: string): Map<string, string> {
  const cache = new Map<string, string>();
  for (const line of text.split("\n")) {
    const match = /^\s*(\S+)\s+\(([^)]*)\)\s+=>\s+(\S+)\s*$/.exec(line);
    if (!match || !match[2].includes("x86-64")) continue;
    if (!cache.has(match[1])) cache.set(match[1], match[3]);
  }
  return cache;
}

/** The ldconfig cache of this host (empty when `ldconfig` cannot be run). */
export async function ldconfigCache(): Promise<Map<string, string>> {
  for (const ldconfig of ["ldconfig", "/sbin/ldconfig", "/usr/sbin/ldconfig"]) {
    const text = await run(ldconfig, ["-p"]);
    if (text !== undefined) return parseLdconfigOutput(text);
  }
  return new Map();
}

/**
 * Python interpreters worth asking for their site-packages: `extra` first,
 * then python3 on PATH, /usr/bin/python3, the active virtualenv/conda, and
 * /opt/*\/.venv/bin/python3 and /opt/*\/bin/python3.
 */
export async function pythonCandidates(extra: string[] = []): Promise<string[]> {
  const found = [...extra, "python3", "/usr/bin/python3"];
  for (const env of ["VIRTUAL_ENV", "CONDA_PREFIX"]) {
    const prefix = Deno.env.get(env);
    if (prefix) found.push(join(prefix, "bin", "python3"));
  }
  try {
    for await (const entry of Deno.readDir("/opt")) {
      for (const rel of [".venv/bin/python3", "bin/python3", "venv/bin/python3"]) {
        const path = join("/opt", entry.name, rel);
        if (await exists(path)) found.push(path);
      }
    }
  } catch {
    // no /opt: nothing to add
  }
  return [...new Set(found)];
}

const SITE_PACKAGES_SCRIPT =
  "import site,sys\nprint('\\n'.join(site.getsitepackages()+[site.getusersitepackages()]+sys.path))";

/**
 * The `site-packages/nvidia/<package>/lib` folders (CUDA 12 wheels:
 * `nvidia/cublas/lib`; CUDA 13 wheels: `nvidia/cu13/lib`) of the given Python
 * interpreters; interpreters that cannot be run are skipped.
 */
export async function pythonNvidiaLibDirs(pythons: string[]): Promise<string[]> {
  const dirs: string[] = [];
  const sitePackages = new Set<string>();
  for (const python of pythons) {
    const text = await run(python, ["-c", SITE_PACKAGES_SCRIPT]);
    if (text === undefined) continue;
    for (const line of text.split("\n")) {
      const path = line.trim();
      if (/(site|dist)-packages$/.test(path)) sitePackages.add(path);
    }
  }
  for (const site of sitePackages) {
    const nvidia = join(site, "nvidia");
    try {
      const names: string[] = [];
      for await (const entry of Deno.readDir(nvidia)) if (entry.isDirectory) names.push(entry.name);
      for (const name of names.sort()) {
        for (const lib of ["lib", "lib64"]) {
          const dir = join(nvidia, name, lib);
          if (await exists(dir)) dirs.push(dir);
        }
      }
    } catch {
      // no nvidia packages in this environment
    }
  }
  return [...new Set(dirs)];
}

/**
 * This host's search path: LD_LIBRARY_PATH from the environment, the ldconfig
 * cache, the default folders, and as hints the CUDA toolkit folders and the
 * Python environments' nvidia/*\/lib folders (`pythons` adds interpreters).
 */
export async function hostLibrarySearchPath(pythons: string[] = []): Promise<LibrarySearchPath> {
  const ldLibraryPath = (Deno.env.get("LD_LIBRARY_PATH") ?? "").split(":").filter((p) =>
    p.length > 0
  );
  const toolkit: string[] = [...CUDA_TOOLKIT_DIRS];
  try {
    for await (const entry of Deno.readDir("/usr/local")) {
      if (/^cuda-\d/.test(entry.name)) toolkit.push(join("/usr/local", entry.name, "lib64"));
    }
  } catch {
    // no /usr/local
  }
  return {
    ldLibraryPath,
    ldconfigCache: await ldconfigCache(),
    defaultDirs: DEFAULT_LIBRARY_DIRS,
    hintDirs: [...toolkit, ...await pythonNvidiaLibDirs(await pythonCandidates(pythons))],
  };
}

function expandOrigin(dir: string, origin: string): string {
  return dir.replaceAll("$ORIGIN", origin).replaceAll("${ORIGIN}", origin);
}

/** Finds `name` as the loader would from a library in `origin` with the given rpath/runpath. */
async function locate(
  name: string,
  requester: { origin: string; rpath: string[]; runpath: string[] },
  search: LibrarySearchPath,
): Promise<{ path: string; status: "loader" | "hint" } | undefined> {
  if (name.includes("/")) {
    return (await exists(name)) ? { path: name, status: "loader" } : undefined;
  }
  const loaderDirs = [
    ...(requester.runpath.length === 0 ? requester.rpath : []),
    ...search.ldLibraryPath,
    ...requester.runpath,
  ].map((d) => expandOrigin(d, requester.origin));
  for (const dir of loaderDirs) {
    const path = join(dir, name);
    if (await exists(path)) return { path, status: "loader" };
  }
  const cached = search.ldconfigCache.get(name);
  if (cached && await exists(cached)) return { path: cached, status: "loader" };
  for (const dir of search.defaultDirs) {
    const path = join(dir, name);
    if (await exists(path)) return { path, status: "loader" };
  }
  for (const dir of search.hintDirs) {
    if (dir.includes("/stubs")) continue; // link-time stubs, not loadable libraries
    const path = join(dir, name);
    if (await exists(path)) return { path, status: "hint" };
  }
  return undefined;
}

/**
 * Checks that everything `library` needs resolves: its DT_NEEDED entries and
 * theirs (recursively), plus `dlopened` libraries (with their companions in
 * the same folder). Libraries found only in hint folders are reported with
 * the folders to add to LD_LIBRARY_PATH.
 */
export async function checkLibraries(
  library: string,
  search: LibrarySearchPath,
  dlopened: DlopenedLibrary[] = [],
): Promise<LibraryReport> {
  const checks: LibraryCheck[] = [];
  const seen = new Set<string>();
  const queue: { path: string }[] = [{ path: library }];
  const visitedFiles = new Set<string>();

  const record = (check: LibraryCheck) => {
    checks.push(check);
    if (check.path && !visitedFiles.has(check.path)) queue.push({ path: check.path });
  };

  // The dlopen()ed libraries are looked up from the provider itself.
  const root = await elfDynamicInfo(library);
  const rootRequester = { origin: dirname(library), rpath: root.rpath, runpath: root.runpath };
  for (const lib of dlopened) {
    seen.add(lib.name);
    const found = await locate(lib.name, rootRequester, search);
    record({
      name: lib.name,
      neededBy: basename(library),
      path: found?.path,
      status: found?.status ?? "missing",
      optional: lib.optional,
      purpose: lib.purpose,
    });
    // A missing library's companions go unlisted: installing it brings them.
    for (const companion of found ? lib.companions ?? [] : []) {
      seen.add(companion.name);
      const beside = join(dirname(found!.path), companion.name);
      const path = await exists(beside) ? beside : undefined;
      record({
        name: companion.name,
        neededBy: lib.name,
        path,
        status: path ? found!.status : "missing",
        optional: companion.optional ?? lib.optional,
        purpose: `part of ${lib.name}, loaded from its folder`,
      });
    }
  }

  while (queue.length > 0) {
    const { path } = queue.shift()!;
    if (visitedFiles.has(path)) continue;
    visitedFiles.add(path);
    const info = path === library ? root : await elfDynamicInfo(path);
    const requester = { origin: dirname(path), rpath: info.rpath, runpath: info.runpath };
    for (const name of info.needed) {
      if (seen.has(name)) continue;
      seen.add(name);
      const found = await locate(name, requester, search);
      record({
        name,
        neededBy: basename(path),
        path: found?.path,
        status: found?.status ?? "missing",
      });
    }
  }

  const hintDirs = checks.filter((c) => c.status === "hint").map((c) => dirname(c.path!));
  return {
    checks,
    missing: checks.filter((c) => c.status === "missing" && !c.optional),
    optionalMissing: checks.filter((c) => c.status === "missing" && c.optional),
    ldLibraryPathAdditions: [...new Set(hintDirs)],
  };
}

/** The shell line that makes the hint folders visible to the loader. */
export function ldLibraryPathExport(dirs: string[]): string {
  return `export LD_LIBRARY_PATH=${dirs.join(":")}\${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}`;
}
