/**
 * `bench`: the JSON line of the CLI, the timing arithmetic, the copy-only
 * twin graph, the profile summary and the errors for bad options and for a
 * python without torch. Tiny models (width 1/16, batch 4, 2 steps).
 */
import { assert, assertClose, assertEquals, assertThrowsMessage } from "./assert.ts";
import {
  benchRatios,
  copyOnlyGraph,
  deviceMemoryFromSmi,
  findTorchPython,
  formatComparison,
  parseBenchConfig,
  prepareStep,
  profileStep,
  reportJson,
  runBench,
  summariseProfile,
  summariseTimes,
  timeCopies,
  timedSteps,
  timeOurStep,
  torchArgs,
  torchProblem,
  weightedLoad,
} from "../src/bench/mod.ts";
import { defaultThreads } from "../src/runtime/threads.ts";

const MOD = new URL("../mod.ts", import.meta.url).pathname;
const TINY = {
  width: "0.0625",
  batch: "4",
  steps: "2",
  warmup: "1",
  threads: "1",
  "steps-per-run": "2",
};

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MOD, "bench", ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}

/** A "python" that cannot import torch, as a shell script in a temp folder. */
async function fakePython(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "fake_python_" });
  const path = `${dir}/python3`;
  await Deno.writeTextFile(
    path,
    `#!/bin/sh\necho "ModuleNotFoundError: No module named 'torch'" >&2\nexit 1\n`,
  );
  await Deno.chmod(path, 0o755);
  return path;
}

Deno.test("bench --json prints one JSON object with the figures on the last line", async () => {
  const flags = Object.entries(TINY).flatMap(([k, v]) => [`--${k}`, v]);
  const { code, stdout, stderr } = await cli([...flags, "--json"]);
  assertEquals(code, 0, stderr);
  const lines = stdout.trim().split("\n");
  const json = JSON.parse(lines.at(-1)!);
  for (
    const key of [
      "views_per_s",
      "ms_per_step",
      "ms_per_step_mean",
      "peak_bytes",
      "copy_fraction",
      "loss_value",
      "threads",
    ]
  ) {
    assert(typeof json[key] === "number" && json[key] > 0, `${key} = ${json[key]}`);
  }
  assertEquals(
    [json.model, json.stem, json.method, json.loss, json.head, json.optimizer, json.precision],
    ["resnet18", "cifar", "simclr", "ntxent", "simclr", "sgd", "float32"],
  );
  assertEquals([json.batch, json.steps, json.steps_per_run, json.times_ms.length], [4, 2, 2, 2]);
  // views/s is 2·batch views per median step time.
  assertClose(json.views_per_s * json.ms_per_step / 1000, 8, 1e-9);
  assert(
    json.peak_bytes > 50 * 2 ** 20,
    `peak RSS ${json.peak_bytes} is not plausible for an ORT process`,
  );
  assert(lines.some((l) => l.startsWith("ours : ")), stdout);
});

Deno.test("bench runs the SDCLR step with the weighted loss (masks and μ fed)", async () => {
  const config = parseBenchConfig({ ...TINY, steps: "1", method: "sdclr", loss: "weighted" });
  const prepared = prepareStep(config);
  const masks = prepared.step.inputs.masks;
  assertEquals(masks.length, 20, "ResNet-18 has 20 conv weights");
  const mask = prepared.shared[masks[0]].data as Float32Array;
  const kept = mask.reduce((a, b) => a + b, 0) / mask.length;
  assert(kept > 0.02 && kept < 0.25, `kept fraction ${kept} far from 1 − prune 0.1`);
  const lines: string[] = [];
  const report = await runBench(config, { copies: false }, (l) => lines.push(l));
  const json = reportJson(report);
  assertEquals([json.method, json.loss], ["sdclr", "weighted"]);
  assert(
    Number.isFinite(json.loss_value) && (json.loss_value as number) > 0,
    `loss ${json.loss_value}`,
  );
  assert(!("copy_fraction" in json) && !("reference" in json));
});

Deno.test("summariseTimes: median, mean and views per second from the median", () => {
  const t = summariseTimes([10, 30, 20, 100], 4);
  assertEquals([t.medianMs, t.meanMs], [25, 40]);
  assertClose(t.viewsPerSecond, (2 * 4) / 0.025, 1e-12);
  assertEquals(summariseTimes([7, 1, 3], 2).medianMs, 3);
});

Deno.test("bench times the ETH step (weighted loss, Adam, linear head) in runs of K steps", async () => {
  const config = parseBenchConfig({
    ...TINY,
    steps: "4",
    "steps-per-run": "3",
    loss: "weighted",
    optimizer: "adam",
    head: "linear",
  });
  assertEquals(timedSteps(config), 6, "4 steps rounded up to whole runs of 3");
  const prepared = prepareStep(config);
  assert(prepared.step.layout.scalars.some((s) => s.name === "step"), "Adam reads the step count");
  assertEquals(prepared.step.params.filter((p) => p.tensor.name.startsWith("head.")).length, 2);
  const timed = await timeOurStep(config, prepared);
  assertEquals(timed.perStepMs.length, 6);
  assert(Number.isFinite(timed.loss) && timed.loss > 0, `loss ${timed.loss}`);
  assert(timed.inputs > 0 && timed.outputs > 0);
  const copies = await timeCopies(config, prepared);
  assert(copies.medianMs > 0 && copies.perStepMs.length === 6, JSON.stringify(copies));
});

Deno.test("the comparison with the reference gives ours ÷ torch for every figure", () => {
  const ours = {
    ...summariseTimes([100, 100, 160], 32),
    loss: 1,
    sessionSeconds: 1,
    otherCores: 0,
    otherCoresPerStep: [],
    inputs: 1,
    outputs: 1,
    peakBytes: 3 * 2 ** 30,
    peakDeviceBytes: null,
  };
  const torch = {
    torch_version: "1.13",
    python: "python3",
    views_per_s: 800,
    ms_per_step: 80,
    ms_per_step_mean: 100,
    peak_bytes: 2 ** 30,
    threads: 2,
  };
  const r = benchRatios(ours, torch);
  assertClose(r.viewsPerSecond, 640 / 800, 1e-12);
  assertClose(r.medianMs, 100 / 80, 1e-12);
  assertClose(r.meanMs, 120 / 100, 1e-12);
  assertClose(r.peakBytes!, 3, 1e-12);
  assertEquals(r.peakDeviceBytes, null);
  const table = formatComparison(ours, torch, r).join("\n");
  for (const cell of ["1.250", "1.200", "0.800", "3.000", "3072 MiB", "1024 MiB"]) {
    assert(table.includes(cell), `${cell} missing from\n${table}`);
  }
  assert(!table.includes("device"), "no device row on CPU");
  assertEquals(deviceMemoryFromSmi("123, 10\n456, 2048\n", 456), 2048 * 2 ** 20);
  assertEquals(deviceMemoryFromSmi("123, 10\n", 456), null);
});

Deno.test("copyOnlyGraph has the step's inputs and outputs", () => {
  const prepared = prepareStep(parseBenchConfig({ ...TINY, method: "sdclr" }));
  const twin = copyOnlyGraph(prepared);
  const names = (ts: { name: string }[]) => ts.map((t) => t.name).sort();
  assertEquals(names(twin.inputs), names(prepared.step.graph.inputs));
  assertEquals(names(twin.outputs), names(prepared.step.graph.outputs));
  assertEquals(twin.nodes.filter((n) => n.opType === "Conv").length, 0);
});

Deno.test("summariseProfile splits kernel time by phase and op type", () => {
  const node = (name: string, op: string, dur: number) => ({
    cat: "Node",
    name: `${name}_kernel_time`,
    dur,
    args: { op_name: op },
  });
  const p = summariseProfile(
    [
      node("encoder.conv1/conv", "Conv", 3000),
      node("grad/conv_1", "Conv", 5000),
      node("grad/slice_3", "Slice", 1000),
      node("optimizer/sgd/w/mul", "Mul", 2000),
      { cat: "Node", name: "grad/conv_1_fence_before", dur: 0 },
      { cat: "Session", name: "model_run", dur: 12000 },
    ],
    2,
    7,
  );
  assertEquals(p.phases, { forward: 1.5, backward: 3, update: 1 });
  assertEquals([p.runMs, p.kernelMs, p.wallMs], [6, 5.5, 7]);
  assertEquals(p.opTypes, [["Conv", 4], ["Mul", 1], ["Slice", 0.5]]);
  assertEquals(p.phaseOpTypes.backward, [["Conv", 2.5], ["Slice", 0.5]]);
});

Deno.test("profileStep attributes ORT kernel time to forward, backward and update", async () => {
  const config = parseBenchConfig(TINY);
  const p = await profileStep(config, prepareStep(config), 1);
  for (const phase of ["forward", "backward", "update"] as const) {
    assert(p.phases[phase] > 0, `${phase}: ${p.phases[phase]} ms`);
  }
  assertClose(p.phases.forward + p.phases.backward + p.phases.update, p.kernelMs, 1e-9);
  assert(
    p.kernelMs <= p.runMs && p.runMs <= p.wallMs,
    `kernels ${p.kernelMs}, run ${p.runMs}, wall ${p.wallMs}`,
  );
  assert(
    p.phaseOpTypes.forward.some(([op]) => op === "Conv"),
    JSON.stringify(p.phaseOpTypes.forward),
  );
});

Deno.test("bad bench options give errors naming the option", async () => {
  await assertThrowsMessage(
    () => parseBenchConfig({ model: "resnet99" }),
    "--model",
    "resnet99",
    "resnet18, resnet34",
  );
  await assertThrowsMessage(
    () => parseBenchConfig({ batch: "0" }),
    "--batch",
    "integer >= 2",
    '"0"',
  );
  await assertThrowsMessage(() => parseBenchConfig({ batch: "3.5" }), "--batch");
  await assertThrowsMessage(
    () => parseBenchConfig({ method: "byol" }),
    "--method",
    "simclr, sdclr",
  );
  await assertThrowsMessage(() => parseBenchConfig({ device: "tpu" }), "--device", "cpu, cuda");
  await assertThrowsMessage(() => parseBenchConfig({ width: "0.3" }), "--width", "64·width");
  await assertThrowsMessage(
    () => parseBenchConfig({ optimizer: "lamb" }),
    "--optimizer",
    "sgd, adam",
  );
  await assertThrowsMessage(() => parseBenchConfig({ head: "mlp" }), "--head", "linear");
  await assertThrowsMessage(
    () => parseBenchConfig({ "steps-per-run": "0" }),
    "--steps-per-run",
    "integer >= 1",
  );
  await assertThrowsMessage(
    () => parseBenchConfig({ precision: "int8" }),
    "--precision",
    "float16",
  );
  await assertThrowsMessage(
    () => prepareStep(parseBenchConfig({ ...TINY, precision: "float16" })),
    "--precision: float16 needs the CUDA device",
  );
  await assertThrowsMessage(
    () => prepareStep(parseBenchConfig({ ...TINY, precision: "bfloat16" })),
    "--precision: bfloat16 is not supported",
  );
  const { code, stderr } = await cli(["--model", "resnet99"]);
  assertEquals(code, 2);
  assert(stderr.includes('--model: unknown value "resnet99"'), stderr);
  const ref = await cli(["--reference", "tensorflow"]);
  assertEquals(ref.code, 2);
  assert(
    ref.stderr.includes('--reference: unknown reference "tensorflow"; expected torch'),
    ref.stderr,
  );
});

Deno.test("--reference torch with a python lacking torch is a clear error", async () => {
  const python = await fakePython();
  try {
    assert((await torchProblem(python))?.includes("has no usable torch"));
    await assertThrowsMessage(
      () => findTorchPython(python),
      "--reference torch",
      python,
      "No module named 'torch'",
    );
    await assertThrowsMessage(
      () => findTorchPython("/nonexistent/python3"),
      "cannot run /nonexistent/python3",
    );
    const { code, stdout, stderr } = await cli([
      ...Object.entries(TINY).flat().map((s, i) => i % 2 ? s : `--${s}`),
      "--reference",
      "torch",
      "--python",
      python,
    ]);
    assertEquals(code, 1);
    assert(stderr.includes(`--python ${python} has no usable torch`), stderr);
    assert(!stdout.includes("ours :"), "the missing torch must be reported before timing");
  } finally {
    await Deno.remove(python.slice(0, python.lastIndexOf("/")), { recursive: true });
  }
});

Deno.test("torchArgs passes the configuration to bench/torch_step.py", () => {
  const args = torchArgs(
    parseBenchConfig({ ...TINY, method: "sdclr", model: "resnet50", stem: "imagenet" }),
    {
      amp: true,
    },
  );
  const value = (flag: string) => args[args.indexOf(flag) + 1];
  assert(args[0].endsWith("bench/torch_step.py"));
  assertEquals(
    ["--model", "--stem", "--width", "--method", "--head", "--batch", "--threads"].map(value),
    ["resnet50", "imagenet", "0.0625", "sdclr", "sdclr", "4", "1"],
  );
  assertEquals(["--optimizer", "--momentum", "--steps"].map(value), ["sgd", "0.9", "2"]);
  assert(args.includes("--amp") && !args.includes("--channels-last"));
  const byDefault = torchArgs(parseBenchConfig({ ...TINY, threads: "0" }));
  assertEquals(
    byDefault[byDefault.indexOf("--threads") + 1],
    String(defaultThreads()),
    "the reference runs on as many threads as our default",
  );
  const eth = torchArgs(parseBenchConfig({ ...TINY, optimizer: "adam", head: "linear" }));
  const ethValue = (flag: string) => eth[eth.indexOf(flag) + 1];
  assertEquals(
    ["--optimizer", "--lr", "--weight-decay", "--betas", "--head"].map(ethValue),
    ["adam", "0.001", "0.000001", "0.9,0.999", "linear"],
  );
});

/**
 * A "python with torch" speaking bench/torch_step.py's protocol: `--serve` answers
 * ready, then done per command (logged to `log`), and a fixed result after "end".
 */
async function fakeTorchPython(log: string): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "fake_torch_" });
  const path = `${dir}/python3`;
  const result =
    '{"torch_version": "fake", "python": "fake", "views_per_s": 100, "ms_per_step": 80, ' +
    '"ms_per_step_mean": 80, "peak_bytes": 1048576, "threads": 1, "loss_value": 1}';
  await Deno.writeTextFile(
    path,
    `#!/bin/sh
case "$*" in *"import torch"*) echo fake; exit 0;; esac
case "$*" in
  *--serve*)
    echo '{"ready": true}'
    while read -r line; do
      [ "$line" = end ] && break
      echo "$line" >> '${log}'
      echo "{\\"done\\": $line}"
    done;;
  *) echo sequential >> '${log}';;
esac
echo '${result}'
`,
  );
  await Deno.chmod(path, 0o755);
  return path;
}

Deno.test("--reference torch takes turns with our runs (interleaved) unless --sequential", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bench_turns_" });
  const log = `${dir}/commands.log`;
  const python = await fakeTorchPython(log);
  try {
    const config = parseBenchConfig({ ...TINY, steps: "6", "steps-per-run": "2" });
    const lines: string[] = [];
    const report = await runBench(
      config,
      { reference: "torch", python, copies: false },
      (l) => lines.push(l),
    );
    // Three runs of ours, each followed by the reference's turn of as many steps.
    assertEquals((await Deno.readTextFile(log)).trim().split("\n"), ["2", "2", "2"]);
    assertEquals(report.interleaved, true);
    assertEquals(report.torch?.views_per_s, 100);
    assertClose(report.ratio!, report.ours.viewsPerSecond / 100, 1e-12);
    assert(lines.some((l) => l.includes("interleaved: ours and torch took turns, 2 steps each")));
    assertEquals(reportJson(report).interleaved, true);

    await Deno.remove(log);
    const sequential = await runBench(
      config,
      { reference: "torch", python, copies: false, sequential: true },
      () => {},
    );
    assertEquals((await Deno.readTextFile(log)).trim(), "sequential");
    assertEquals(sequential.interleaved, false);
  } finally {
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(python.slice(0, python.lastIndexOf("/")), { recursive: true });
  }
});

Deno.test("the load of other processes is weighted by step time over our runs only", () => {
  assertClose(weightedLoad([100, 300], [0, 1])!, 0.75, 1e-12);
  assertEquals(weightedLoad([100, 300], [0, null]), null);
  assertEquals(weightedLoad([], []), null);
});
