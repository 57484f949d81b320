import { join } from "node:path";
import { assert, assertEquals, assertThrowsMessage } from "./assert.ts";
import { fakeElf } from "./fake_elf.ts";
import { elfDynamicInfo } from "../src/runtime/elf.ts";
import {
  checkLibraries,
  hostLibrarySearchPath,
  ldLibraryPathExport,
  type LibrarySearchPath,
  parseLdconfigOutput,
} from "../src/runtime/libs.ts";
import { resolveDevice } from "../src/runtime/device.ts";
import {
  checkCudaLibraries,
  findProviderFiles,
  firstProblem,
  formatLibraryReport,
  GPU_PROVIDER_PACKAGE,
  installCudaProvider,
} from "../src/runtime/cuda_setup.ts";
import {
  CUDA_PROVIDER_FILES,
  DeviceUnavailableError,
  ortNativeDir,
} from "../src/runtime/providers.ts";
import {
  assertCudaOptionsApplicable,
  cudaProviderOptions,
  ortSessionOptions,
  sessionOptionsFromConfig,
} from "../src/runtime/session_options.ts";
import { Session } from "../src/runtime/session.ts";
import { f32 } from "../src/runtime/host_tensor.ts";
import { Graph, ops } from "../src/onnx/mod.ts";
import { main } from "../mod.ts";

async function write(path: string, bytes: Uint8Array): Promise<string> {
  await Deno.mkdir(join(path, ".."), { recursive: true });
  await Deno.writeFile(path, bytes);
  return path;
}

const emptySearch = (over: Partial<LibrarySearchPath> = {}): LibrarySearchPath => ({
  ldLibraryPath: [],
  ldconfigCache: new Map(),
  defaultDirs: [],
  hintDirs: [],
  ...over,
});

/** A provider folder with a fake cuda provider needing `needed`, and the libraries dir. */
async function fakeProviderDir(root: string, needed: string[]): Promise<string> {
  const dir = join(root, "ort");
  await write(join(dir, "libonnxruntime_providers_shared.so"), fakeElf());
  await write(join(dir, "libonnxruntime_providers_cuda.so"), fakeElf({ needed }));
  return dir;
}

Deno.test("elfDynamicInfo reads DT_NEEDED and DT_RUNPATH of a synthetic and of the real ORT library", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const lib = await write(
      join(dir, "libx.so"),
      fakeElf({ needed: ["liba.so.1", "libb.so.2"], runpath: "$ORIGIN/deps" }),
    );
    const info = await elfDynamicInfo(lib);
    assertEquals(info.needed, ["liba.so.1", "libb.so.2"]);
    assertEquals(info.runpath, ["$ORIGIN/deps"]);
    assertEquals(info.rpath, []);
    const core = await elfDynamicInfo(join(ortNativeDir(), "libonnxruntime.so.1"));
    assertEquals(core.needed, [
      "libdl.so.2",
      "librt.so.1",
      "libpthread.so.0",
      "libstdc++.so.6",
      "libm.so.6",
      "libgcc_s.so.1",
      "libc.so.6",
      "ld-linux-x86-64.so.2",
    ]);
    assertEquals(core.soname, "libonnxruntime.so.1");
    assertEquals(core.runpath, ["$ORIGIN"]);
    await write(
      join(dir, "notelf.so"),
      new TextEncoder().encode("just text, long enough to hold a header ".repeat(3)),
    );
    await assertThrowsMessage(
      () => elfDynamicInfo(join(dir, "notelf.so")),
      "notelf.so",
      "not an ELF file",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("parseLdconfigOutput keeps the x86-64 entries", () => {
  const cache = parseLdconfigOutput(
    "3 libs found in cache `/etc/ld.so.cache'\n" +
      "\tlibcudart.so.13 (libc6,x86-64) => /usr/local/cuda-13.0/lib/libcudart.so.13\n" +
      "\tlibfoo.so.1 (libc6) => /usr/lib32/libfoo.so.1\n" +
      "\tlibc.so.6 (libc6,x86-64, OS ABI: Linux 3.2.0) => /lib/x86_64-linux-gnu/libc.so.6\n",
  );
  assertEquals([...cache.entries()], [
    ["libcudart.so.13", "/usr/local/cuda-13.0/lib/libcudart.so.13"],
    ["libc.so.6", "/lib/x86_64-linux-gnu/libc.so.6"],
  ]);
});

Deno.test("checkLibraries: found by the loader, found only in hint folders, missing; LD_LIBRARY_PATH line", async () => {
  const root = await Deno.makeTempDir();
  try {
    const ldDir = join(root, "ld");
    const hintDir = join(root, "site-packages/nvidia/cu13/lib");
    const cachedDir = join(root, "cached");
    const provider = await write(
      join(root, "ort/libprovider.so"),
      fakeElf({
        needed: ["liba.so.1", "libb.so.2", "libgone.so.3", "libr.so.1"],
        runpath: "$ORIGIN/deps",
      }),
    );
    await write(join(root, "ort/deps/libr.so.1"), fakeElf());
    await write(join(ldDir, "liba.so.1"), fakeElf({ needed: ["libf.so.1"] }));
    await write(join(cachedDir, "libf.so.1"), fakeElf());
    await write(join(hintDir, "libb.so.2"), fakeElf({ needed: ["liba.so.1"] }));
    await write(join(hintDir, "libd.so.9"), fakeElf());
    await write(join(hintDir, "libd_sub.so.9"), fakeElf());
    const search = emptySearch({
      ldLibraryPath: [ldDir],
      ldconfigCache: new Map([["libf.so.1", join(cachedDir, "libf.so.1")]]),
      hintDirs: [hintDir],
    });
    const report = await checkLibraries(provider, search, [
      {
        name: "libd.so.9",
        purpose: "d",
        companions: [{ name: "libd_sub.so.9" }, { name: "libd_opt.so.9", optional: "extra d" }],
      },
      { name: "libe.so.1", purpose: "e", optional: "feature e" },
    ]);
    const status = Object.fromEntries(report.checks.map((c) => [c.name, c.status]));
    assertEquals(status, {
      "libd.so.9": "hint",
      "libd_sub.so.9": "hint",
      "libd_opt.so.9": "missing",
      "libe.so.1": "missing",
      "liba.so.1": "loader",
      "libb.so.2": "hint",
      "libgone.so.3": "missing",
      "libr.so.1": "loader",
      "libf.so.1": "loader",
    });
    assertEquals(
      report.checks.find((c) => c.name === "libr.so.1")!.path,
      join(root, "ort/deps/libr.so.1"),
    );
    assertEquals(report.missing.map((c) => c.name), ["libgone.so.3"]);
    assertEquals(report.optionalMissing.map((c) => c.name), ["libd_opt.so.9", "libe.so.1"]);
    assertEquals(report.ldLibraryPathAdditions, [hintDir]);
    const lines = formatLibraryReport(report);
    assertEquals(lines[0], "missing: libgone.so.3 (needed by libprovider.so)");
    assert(
      lines.includes(`before running, set: ${ldLibraryPathExport([hintDir])}`),
      lines.join("\n"),
    );
    assertEquals(
      ldLibraryPathExport(["/a", "/b"]),
      "export LD_LIBRARY_PATH=/a:/b${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}",
    );
    assert(firstProblem(report)!.startsWith("libgone.so.3 not found (needed by libprovider.so)"));
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("checkLibraries on this host: onnxruntime_binding.node finds libonnxruntime.so.1 through $ORIGIN", async () => {
  const report = await checkLibraries(
    join(ortNativeDir(), "onnxruntime_binding.node"),
    await hostLibrarySearchPath(),
  );
  assertEquals(report.missing.map((c) => c.name), []);
  const core = report.checks.find((c) => c.name === "libonnxruntime.so.1")!;
  assertEquals(core.status, "loader");
  assertEquals(core.path, join(ortNativeDir(), "libonnxruntime.so.1"));
  assert(report.checks.some((c) => c.name === "libc.so.6" && c.status === "loader"));
});

Deno.test("the real CUDA provider folder is checked for CUDA 13 and cuDNN 9 libraries", async () => {
  const root = await Deno.makeTempDir();
  try {
    const dir = await fakeProviderDir(root, ["libcublas.so.13", "libcudart.so.13", "libc.so.6"]);
    const libc = join(root, "sys/libc.so.6");
    await write(libc, fakeElf());
    const report = await checkCudaLibraries({
      providerDir: dir,
      search: emptySearch({ ldconfigCache: new Map([["libc.so.6", libc]]) }),
    });
    assertEquals(report.missing.map((c) => c.name), [
      "libcudnn.so.9",
      "libcublas.so.13",
      "libcudart.so.13",
    ]);
    assertEquals(report.optionalMissing.map((c) => c.name), ["libcufft.so.12", "libnvrtc.so.13"]);
    const lines = formatLibraryReport(report);
    assert(
      lines[0].startsWith("missing: libcudnn.so.9 (needed by libonnxruntime_providers_cuda.so)"),
      lines[0],
    );
    assert(lines[0].includes("nvidia-cudnn-cu13"), lines[0]);
    await Deno.remove(join(dir, "libonnxruntime_providers_shared.so"));
    await assertThrowsMessage(
      () => checkCudaLibraries({ providerDir: dir, search: emptySearch() }),
      join(dir, "libonnxruntime_providers_shared.so"),
      "deno task setup-cuda",
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("resolveDevice: cpu, cuda and auto, with the reason for falling back", async () => {
  assertEquals(await resolveDevice("cpu"), { device: "cpu" });
  await assertThrowsMessage(
    () => resolveDevice("tpu" as never),
    '--device: expected cpu, cuda or auto, got "tpu"',
  );
  const root = await Deno.makeTempDir();
  try {
    const empty = join(root, "empty");
    await Deno.mkdir(empty);
    const warnings: string[] = [];
    const warn = (line: string) => warnings.push(line);
    const missingFile = join(empty, "libonnxruntime_providers_shared.so");
    const err = await assertThrowsMessage(
      () => resolveDevice("cuda", { providerDir: empty, warn }),
      "--device cuda:",
      missingFile,
      "deno task setup-cuda",
    );
    assert(!err.includes("\n"), "one line");
    try {
      await resolveDevice("cuda", { providerDir: empty });
    } catch (e) {
      assert(e instanceof DeviceUnavailableError, "a DeviceUnavailableError");
    }
    const auto = await resolveDevice("auto", { providerDir: empty, warn });
    assertEquals(auto.device, "cpu");
    assert(auto.reason!.includes(missingFile), auto.reason);
    assertEquals(warnings.length, 1);
    assert(
      warnings[0].startsWith(
        "device auto: using the CPU, because the CUDA execution provider is not installed",
      ),
    );

    const dir = await fakeProviderDir(root, ["libcudnn_missing.so.9"]);
    const missingLib = await resolveDevice("auto", {
      providerDir: dir,
      search: emptySearch(),
      warn,
      probe: false,
    });
    assertEquals(missingLib.device, "cpu");
    assert(missingLib.reason!.startsWith("libcudnn.so.9 not found and 1 more"), missingLib.reason);

    // Every library resolves: CUDA, unless the probe session fails.
    const libs = join(root, "libs");
    for (
      const name of ["libcudnn_missing.so.9", "libcudnn.so.9", "libcufft.so.12", "libnvrtc.so.13"]
    ) {
      await write(join(libs, name), fakeElf());
    }
    for (
      const name of [
        "graph",
        "ops",
        "cnn",
        "engines_precompiled",
        "heuristic",
        "engines_runtime_compiled",
        "adv",
      ]
    ) {
      await write(join(libs, `libcudnn_${name}.so.9`), fakeElf());
    }
    const ok = emptySearch({ ldLibraryPath: [libs] });
    assertEquals(await resolveDevice("cuda", { providerDir: dir, search: ok, probe: false }), {
      device: "cuda",
    });
    let probed = 0;
    const failingProbe = () => {
      probed++;
      return Promise.reject(
        new Error("CUDA failure 100: no CUDA-capable device is detected\nmore detail"),
      );
    };
    const fallback = await resolveDevice("auto", {
      providerDir: dir,
      search: ok,
      probe: failingProbe,
      warn,
    });
    assertEquals(probed, 1);
    assertEquals(fallback, {
      device: "cpu",
      reason:
        "a CUDA session could not be created: CUDA failure 100: no CUDA-capable device is detected",
    });
    // The same libraries found only in a hint folder: the reason carries the export line.
    const hinted = await resolveDevice("auto", {
      providerDir: dir,
      search: emptySearch({ hintDirs: [libs] }),
      warn,
      probe: false,
    });
    assert(hinted.reason!.includes(`export LD_LIBRARY_PATH=${libs}`), hinted.reason);
    assertEquals(warnings.length, 4);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("sessionOptionsFromConfig maps the runtime keys and names the bad one", async () => {
  assertEquals(
    sessionOptionsFromConfig({
      device: "cuda",
      threads: 4,
      device_id: 1,
      cudnn_conv_algo_search: "HEURISTIC",
      use_tf32: false,
      prefer_nhwc: true,
      memory_arena: false,
      memory_pattern: true,
      blocked_convs: false,
      arena_extend_strategy: "kSameAsRequested",
    }),
    {
      device: "cuda",
      threads: 4,
      deviceId: 1,
      cudnnConvAlgoSearch: "HEURISTIC",
      useTf32: false,
      preferNhwc: true,
      memoryArena: false,
      memoryPattern: true,
      blockedConvs: false,
      arenaExtendStrategy: "kSameAsRequested",
    },
  );
  assertEquals(sessionOptionsFromConfig({}), {});
  await assertThrowsMessage(() => sessionOptionsFromConfig({ threads: -1 }), "threads", "got -1");
  await assertThrowsMessage(() => sessionOptionsFromConfig({ threads: 1.5 }), "threads", "got 1.5");
  await assertThrowsMessage(
    () => sessionOptionsFromConfig({ use_tf32: "yes" }),
    "use_tf32",
    'got "yes"',
  );
  await assertThrowsMessage(
    () => sessionOptionsFromConfig({ cudnn_conv_algo_search: "FAST" }),
    "cudnn_conv_algo_search",
    '"EXHAUSTIVE", "HEURISTIC", "DEFAULT"',
    'got "FAST"',
  );
  await assertThrowsMessage(
    () => sessionOptionsFromConfig({ device: "auto" }),
    "device",
    "resolveDevice",
  );
  await assertThrowsMessage(
    () => sessionOptionsFromConfig({ device: "gpu" }),
    "device",
    'got "gpu"',
  );
  await assertThrowsMessage(
    () => sessionOptionsFromConfig({ gpu: true } as never),
    "gpu: unknown runtime key",
    "cudnn_conv_algo_search",
  );
});

Deno.test("CUDA provider options: ORT names and defaults; other values throw with onnxruntime-node 1.29", async () => {
  assertEquals(cudaProviderOptions({}), {
    device_id: "0",
    cudnn_conv_algo_search: "EXHAUSTIVE",
    use_tf32: "1",
    prefer_nhwc: "0",
    arena_extend_strategy: "kNextPowerOfTwo",
  });
  assertEquals(
    cudaProviderOptions({ useTf32: false, preferNhwc: true, deviceId: 2 }).use_tf32,
    "0",
  );
  assertCudaOptionsApplicable({
    cudnnConvAlgoSearch: "EXHAUSTIVE",
    useTf32: true,
    preferNhwc: false,
  });
  await assertThrowsMessage(
    () => assertCudaOptionsApplicable({ useTf32: false }),
    "use_tf32: false cannot be applied",
    "passes only deviceId",
  );
  await assertThrowsMessage(
    () => assertCudaOptionsApplicable({ cudnnConvAlgoSearch: "HEURISTIC" }),
    'cudnn_conv_algo_search: "HEURISTIC"',
    '"EXHAUSTIVE"',
  );
  await assertThrowsMessage(
    () => assertCudaOptionsApplicable({ cudaOptions: { do_copy_in_default_stream: 1 } }),
    "cudaOptions.do_copy_in_default_stream",
  );
});

Deno.test("session options reach ORT: one thread, no CPU arena, and the sum is right", async () => {
  assertEquals(ortSessionOptions({ threads: 1, memoryArena: false, spinning: false }), {
    graphOptimizationLevel: "all",
    intraOpNumThreads: 1,
    extra: { session: { intra_op: { allow_spinning: "0" } } },
    interOpNumThreads: 1,
    executionMode: "sequential",
    enableCpuMemArena: false,
    enableMemPattern: false,
    executionProviders: ["cpu"],
  });
  assertEquals(ortSessionOptions({ device: "cuda", deviceId: 1 }).executionProviders, [
    { name: "cuda", deviceId: 1 },
    "cpu",
  ]);
  const g = new Graph("sum");
  const x = g.input("x", "float32", [3]);
  g.output(ops.add(x, x), "y");
  const session = await Session.create(
    g,
    sessionOptionsFromConfig({ threads: 1, memory_arena: false }),
  );
  const out = await session.run({ x: f32([1, 2.5, -4], [3]) });
  assertEquals([...out.y.data as Float32Array], [2, 5, -8]);
  await session.release();
});

Deno.test("setup-cuda: finds the provider in a folder or the package tarball and installs it into --dest", async () => {
  const root = await Deno.makeTempDir();
  try {
    const pkg = join(root, "pkg", GPU_PROVIDER_PACKAGE.folder);
    const contents: Record<string, Uint8Array> = {
      "libonnxruntime_providers_shared.so": fakeElf(),
      "libonnxruntime_providers_cuda.so": fakeElf({ needed: ["libcublas.so.13"] }),
    };
    for (const [name, bytes] of Object.entries(contents)) await write(join(pkg, name), bytes);
    const tarball = join(root, "provider.tgz");
    const tar = await new Deno.Command("tar", {
      args: ["-czf", tarball, "-C", join(root, "pkg"), "package"],
    }).output();
    assert(tar.success, "tar -czf");
    for (const from of [join(root, "pkg"), pkg, tarball]) {
      const dest = join(root, `dest-${from.length}`);
      await Deno.mkdir(dest);
      const lines: string[] = [];
      const installed = await installCudaProvider({ from, dest, log: (l) => lines.push(l) });
      assertEquals(installed, CUDA_PROVIDER_FILES.map((f) => join(dest, f)));
      for (const [name, bytes] of Object.entries(contents)) {
        assertEquals(
          [...await Deno.readFile(join(dest, name))],
          [...bytes],
          `${name} from ${from}`,
        );
      }
      assertEquals(lines.length, 2);
    }
    await assertThrowsMessage(
      () => findProviderFiles(join(root, "nowhere"), root),
      "--from",
      "nowhere",
      "no such",
    );
    await Deno.mkdir(join(root, "empty"));
    await assertThrowsMessage(
      () => findProviderFiles(join(root, "empty"), root),
      "found neither",
      "npm pack com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9",
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("setup-cuda command: installs into --dest, one line per missing library, exit code 1", async () => {
  const root = await Deno.makeTempDir();
  const lines: string[] = [];
  const { log, error } = console;
  try {
    const from = await fakeProviderDir(root, ["libnot_a_real_library.so.77", "libc.so.6"]);
    const dest = join(root, "dest");
    await Deno.mkdir(dest);
    console.log = (...a: unknown[]) => lines.push(a.join(" "));
    console.error = (...a: unknown[]) => lines.push(a.join(" "));
    const code = await main(["setup-cuda", "--from", from, "--dest", dest]);
    console.log = log;
    console.error = error;
    assertEquals(code, 1);
    for (const file of CUDA_PROVIDER_FILES) {
      assertEquals([...await Deno.readFile(join(dest, file))], [
        ...await Deno.readFile(join(from, file)),
      ]);
    }
    const missing = lines.filter((l) => l.startsWith("missing: "));
    assert(
      missing.includes(
        "missing: libnot_a_real_library.so.77 (needed by libonnxruntime_providers_cuda.so)",
      ),
      lines.join("\n"),
    );
    assert(
      lines.some((l) => /^error: \d+ required librar(y|ies) missing$/.test(l)),
      lines.join("\n"),
    );
    assert(!lines.some((l) => l.startsWith("missing: libc.so.6")), "libc resolves");
  } finally {
    console.log = log;
    console.error = error;
    await Deno.remove(root, { recursive: true });
  }
});
