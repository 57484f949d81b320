import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { assert, assertEquals, assertThrowsMessage } from "./assert.ts";
import { fakeElf, type FakeImage } from "./fake_elf.ts";
import {
  cubinRunsOn,
  entriesToKeep,
  fatbinEntries,
  parseSmArch,
  pruneFatbin,
  summarizeFatbin,
} from "../src/runtime/fatbin.ts";
import { BUNDLE_NAME, packGpuBundle, parseSize, skipInNodeModules } from "../src/cli/pack_gpu.ts";
import { ortNativeDir } from "../src/runtime/providers.ts";
import { Rng } from "../src/util/rng.ts";

const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const ORT_REL = relative(REPO_ROOT, ortNativeDir());

/** Three containers: cubins for four architectures; a PTX fallback; Ampere-only cubins. */
const CONTAINERS: FakeImage[][] = [
  [
    { kind: "elf", arch: 80, size: 100 },
    { kind: "elf", arch: 86, size: 50 },
    { kind: "elf", arch: 90, size: 70 },
    { kind: "elf", arch: 120, size: 30 },
  ],
  [{ kind: "elf", arch: 75, size: 40 }, { kind: "ptx", arch: 80, size: 61 }],
  [{ kind: "elf", arch: 86, size: 20 }, { kind: "elf", arch: 89, size: 20 }],
];

async function write(path: string, bytes: Uint8Array | string): Promise<void> {
  await Deno.mkdir(dirname(path), { recursive: true });
  if (typeof bytes === "string") await Deno.writeTextFile(path, bytes);
  else await Deno.writeFile(path, bytes);
}

Deno.test("fatbin: images per architecture, and which ones a GPU loads", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const lib = join(dir, "libcuda_kernels.so");
    await write(lib, fakeElf({ fatbin: CONTAINERS }));
    const entries = await fatbinEntries(lib);
    assertEquals(entries.map((e) => `${e.container}:${e.kind}${e.arch}:${e.payloadSize}`), [
      "0:elf80:104",
      "0:elf86:56",
      "0:elf90:72",
      "0:elf120:32",
      "1:elf75:40",
      "1:ptx80:64",
      "2:elf86:24",
      "2:elf89:24",
    ]);
    assertEquals(summarizeFatbin(entries).map((s) => [s.arch, s.elfBytes, s.ptxBytes]), [
      [75, 40, 0],
      [80, 104, 64],
      [86, 80, 0],
      [89, 24, 0],
      [90, 72, 0],
      [120, 32, 0],
    ]);
    const keepNames = (gpu: number) =>
      [...entriesToKeep(entries, gpu)].map((e) => `${e.container}:${e.kind}${e.arch}`);
    assertEquals(keepNames(90), ["0:elf90", "1:ptx80"]);
    assertEquals(keepNames(86), ["0:elf86", "1:ptx80", "2:elf86"]);
    assertEquals(keepNames(89), ["0:elf86", "1:ptx80", "2:elf89"]);
    assertEquals(keepNames(75), ["1:elf75"]);
    assert(
      cubinRunsOn(80, 86) && !cubinRunsOn(86, 80) && !cubinRunsOn(80, 90) && cubinRunsOn(120, 120),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("pruneFatbin blanks the other architectures in place and keeps the rest byte for byte", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const source = join(dir, "in.so");
    const target = join(dir, "out.so");
    await write(source, fakeElf({ fatbin: CONTAINERS }));
    const result = await pruneFatbin(source, target, 90);
    assertEquals(result, {
      keptEntries: 2,
      keptBytes: 72 + 64,
      blankedEntries: 6,
      blankedBytes: 104 + 56 + 32 + 40 + 24 + 24,
    });
    const before = await Deno.readFile(source);
    const after = await Deno.readFile(target);
    assertEquals(after.length, before.length);
    const entries = await fatbinEntries(source);
    const blanked = new Set<number>();
    for (const e of entries) {
      const kept = (e.kind === "elf" && e.arch === 90) || (e.kind === "ptx" && e.arch === 80);
      for (let i = e.payloadOffset; i < e.payloadOffset + e.payloadSize; i++) {
        if (!kept) blanked.add(i);
        assertEquals(after[i], kept ? before[i] : 0, `byte ${i} of ${e.kind}${e.arch}`);
      }
    }
    let same = 0;
    for (let i = 0; i < before.length; i++) if (!blanked.has(i) && before[i] === after[i]) same++;
    assertEquals(same, before.length - blanked.size);
    await assertThrowsMessage(
      () => pruneFatbin(source, target, 100),
      "--arch sm_100",
      "no device code for it (it has sm_75, sm_80, sm_86, sm_89, sm_90, sm_120)",
    );
    await write(join(dir, "plain.so"), fakeElf());
    await assertThrowsMessage(
      () => pruneFatbin(join(dir, "plain.so"), target, 90),
      "plain.so",
      "no device code",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("--arch and --part-size parsing", async () => {
  assertEquals([
    parseSmArch("sm_90"),
    parseSmArch("90"),
    parseSmArch("sm_90a"),
    parseSmArch("sm_120"),
  ], [90, 90, 90, 120]);
  await assertThrowsMessage(() => parseSmArch("hopper"), "--arch", 'got "hopper"', "sm_90");
  await assertThrowsMessage(
    () => parseSmArch("sm_91"),
    '--arch: unknown GPU architecture "sm_91"',
    "sm_90, sm_100",
  );
  assertEquals([parseSize("60M"), parseSize("64K"), parseSize("1.5M"), parseSize("4096")], [
    60e6,
    64e3,
    1.5e6,
    4096,
  ]);
  await assertThrowsMessage(() => parseSize("lots"), "--part-size", 'got "lots"');
  await assertThrowsMessage(() => parseSize("10"), "--part-size", "at least 1 KB");
});

Deno.test("node_modules keeps onnxruntime-node's Linux x64 build only", () => {
  const skip = skipInNodeModules(ORT_REL);
  const napi = dirname(dirname(ORT_REL));
  assertEquals(
    [
      `${napi}/darwin`,
      `${napi}/win32`,
      `${napi}/linux`,
      `${napi}/linux/arm64`,
      ORT_REL,
      `${ORT_REL}/libonnxruntime.so.1`,
      `${ORT_REL}/libonnxruntime_providers_cuda.so`,
      "node_modules/.deno/yaml@2.9.1",
    ].map(skip),
    [true, true, false, true, false, false, true, false],
  );
});

Deno.test("pack-gpu: parts of at most --part-size that unpack.sh reassembles into the same files", async () => {
  const root = await Deno.makeTempDir();
  try {
    // A small project: tracked-to-be files, an ignored one, node_modules with ORT for three platforms.
    const project = join(root, "project");
    const rng = new Rng(7, "pack-gpu-test");
    const noise = Uint8Array.from({ length: 150_000 }, () => rng.int(256));
    const projectFiles: Record<string, Uint8Array | string> = {
      "mod.ts": "console.log('hi');\n",
      "README.md": "# fake\n",
      ".gitignore": "node_modules/\nignored.txt\n",
      "data/noise.bin": noise,
      "src/new file.ts": "export const x = 1;\n",
    };
    for (const [name, content] of Object.entries(projectFiles)) {
      await write(join(project, name), content);
    }
    await write(join(project, "ignored.txt"), "not packed\n");
    const git = await new Deno.Command("git", { args: ["init", "-q", project], stderr: "piped" })
      .output();
    assert(git.success, `git init: ${new TextDecoder().decode(git.stderr)}`);
    const napi = dirname(dirname(ORT_REL));
    await write(join(project, ORT_REL, "libonnxruntime.so.1"), "fake core\n");
    await write(join(project, ORT_REL, "libonnxruntime_providers_cuda.so"), "stale provider\n");
    await write(join(project, napi, "darwin/arm64/libonnxruntime.1.dylib"), "mac\n");
    await write(join(project, napi, "linux/arm64/libonnxruntime.so.1"), "arm\n");
    await write(
      join(project, "node_modules/.deno/yaml@2.9.1/node_modules/yaml/index.js"),
      "export {};\n",
    );
    await Deno.symlink(".deno/yaml@2.9.1/node_modules/yaml", join(project, "node_modules/yaml"));

    const providerDir = join(root, "provider");
    const cudaProvider = fakeElf({ needed: ["libcublas.so.13"], fatbin: CONTAINERS });
    await write(join(providerDir, "libonnxruntime_providers_cuda.so"), cudaProvider);
    await write(join(providerDir, "libonnxruntime_providers_shared.so"), fakeElf());
    const deno = join(root, "fake-deno");
    await write(deno, "#!/bin/sh\necho fake deno\n");

    const out = join(root, "dist");
    const log: string[] = [];
    const partSize = 64_000;
    const result = await packGpuBundle({
      arch: "sm_90",
      out,
      projectDir: project,
      providerFrom: providerDir,
      deno,
      partSize,
      xzLevel: 0,
      log: (l) => log.push(l),
    });
    assert(result.parts.length >= 3, `${result.parts.length} parts`);
    for (const size of result.partSizes) {
      assert(size <= partSize, `part of ${size} bytes > ${partSize}`);
    }
    assertEquals(result.partSizes.slice(0, -1), result.partSizes.slice(0, -1).map(() => partSize));
    assertEquals(
      result.parts.map((p) => relative(out, p)),
      result.parts.map((_, i) => `${BUNDLE_NAME}.tar.xz.part00${i}`),
    );
    assertEquals(result.prune, {
      keptEntries: 2,
      keptBytes: 136,
      blankedEntries: 6,
      blankedBytes: 280,
    });
    const sums = (await Deno.readTextFile(join(out, "SHA256SUMS"))).trim().split("\n");
    assertEquals(sums.length, result.parts.length);
    assert(/^[0-9a-f]{64} {2}contrastive-onnx-gpu\.tar\.xz\.part000$/.test(sums[0]), sums[0]);
    assert(log.some((l) => l.includes("kept 2 images")), log.join("\n"));

    // Unpack with bash into a fresh folder, as on the GPU host.
    const target = join(root, "installed");
    const unpack = await new Deno.Command("bash", {
      args: [result.unpackScript, target],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stdout = new TextDecoder().decode(unpack.stdout);
    assert(
      unpack.success,
      `unpack.sh failed: ${new TextDecoder().decode(unpack.stderr)}\n${stdout}`,
    );
    assert(
      stdout.includes(`cd ${target} && `) &&
        stdout.includes("./bin/deno run -A mod.ts setup-cuda --check"),
      stdout,
    );
    for (const [name, content] of Object.entries(projectFiles)) {
      const expected = typeof content === "string" ? new TextEncoder().encode(content) : content;
      const actual = await Deno.readFile(join(target, name));
      assertEquals(actual.length, expected.length, name);
      assert(actual.every((b, i) => b === expected[i]), `${name} differs`);
    }
    assertEquals(await Deno.readTextFile(join(target, "bin/deno")), "#!/bin/sh\necho fake deno\n");
    assert(
      ((await Deno.stat(join(target, "bin/deno"))).mode! & 0o111) !== 0,
      "bin/deno is executable",
    );
    assertEquals(
      await Deno.readTextFile(join(target, ORT_REL, "libonnxruntime.so.1")),
      "fake core\n",
    );
    assertEquals(
      await Deno.readLink(join(target, "node_modules/yaml")),
      ".deno/yaml@2.9.1/node_modules/yaml",
    );
    assertEquals(
      await Deno.readTextFile(join(target, "node_modules/yaml/index.js")),
      "export {};\n",
    );
    const installedProvider = await Deno.readFile(
      join(target, ORT_REL, "libonnxruntime_providers_cuda.so"),
    );
    assertEquals(installedProvider.length, cudaProvider.length);
    const kept = (await fatbinEntries(join(target, ORT_REL, "libonnxruntime_providers_cuda.so")))
      .filter((e) => installedProvider[e.payloadOffset] !== 0)
      .map((e) => `${e.kind}${e.arch}`);
    assertEquals(kept, ["elf90", "ptx80"]);
    assertEquals(
      [...await Deno.readFile(join(target, ORT_REL, "libonnxruntime_providers_shared.so"))],
      [...fakeElf()],
    );
    for (
      const absent of ["ignored.txt", `${napi}/darwin`, `${napi}/linux/arm64`, ".git", "providers"]
    ) {
      await assertThrowsMessage(() => Deno.lstat(join(target, absent)), "No such file");
    }

    // A damaged part is caught before anything is extracted.
    const last = result.parts[result.parts.length - 1];
    const bytes = await Deno.readFile(last);
    bytes[0] ^= 0xff;
    await Deno.writeFile(last, bytes);
    const damaged = await new Deno.Command("bash", {
      args: [result.unpackScript, join(root, "again")],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert(!damaged.success, "unpack.sh accepted a damaged part");
    assert(new TextDecoder().decode(damaged.stderr).includes("a part is damaged"));

    await assertThrowsMessage(
      () =>
        packGpuBundle({
          arch: "sm_100",
          out,
          projectDir: project,
          providerFrom: providerDir,
          deno,
          partSize,
        }),
      "--arch sm_100",
      "has no device code for it",
      "sm_90",
    );
    await assertThrowsMessage(
      () =>
        packGpuBundle({
          arch: "sm_91",
          out,
          projectDir: project,
          providerFrom: providerDir,
          deno,
          partSize,
        }),
      '--arch: unknown GPU architecture "sm_91"',
    );
    await assertThrowsMessage(
      () =>
        packGpuBundle({
          arch: "volta",
          out,
          projectDir: project,
          providerFrom: providerDir,
          deno,
          partSize,
        }),
      '--arch: expected a GPU architecture like sm_90, got "volta"',
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
