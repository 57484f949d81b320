/**
 * A/B timing of training-step variants in one process, for a shared machine
 * whose load drifts: each variant is the bench step built by a source tree
 * (this checkout, or an unpacked copy of another commit) with its own ORT
 * session options; the variants take turns, one step each, round after
 * round, so a load change hits all of them alike. Prints the median ms/step
 * of each variant and its ratio to the first.
 *
 *   git archive main | tar -x -C /tmp/base && ln -s $PWD/node_modules /tmp/base/
 *   deno run -A bench/ab_step.ts --variant /tmp/base --variant . --variant .:no-mem-pattern \
 *     --batch 32 --rounds 8 [--model resnet50 --stem imagenet --loss weighted] [--threads 2]
 *
 * A variant is `ROOT[:flag,...]` with flags no-mem-pattern, no-arena, no-nchwc (plain Convs
 * instead of the blocked-channel lowering of src/onnx/nchwc.ts), no-bn-stats (BatchNorm
 * statistics by primitive ops instead of src/onnx/batch_statistics.ts), no-spin (ORT's
 * intra-op threads sleep instead of spinning, so CPU time counts work only), and env
 * NAME=VALUE (set while ROOT builds its graph and session). Besides wall time it reports the process's
 * CPU time per step, which another process's load distorts less (use no-spin with it).
 */
import { parseArgs } from "node:util";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import process from "node:process";
import * as ort from "onnxruntime-node";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    variant: { type: "string", multiple: true },
    model: { type: "string" },
    stem: { type: "string" },
    width: { type: "string" },
    method: { type: "string" },
    loss: { type: "string" },
    batch: { type: "string" },
    size: { type: "string" },
    threads: { type: "string", default: "2" },
    rounds: { type: "string", default: "6" },
    warmup: { type: "string", default: "1" },
  },
});
const variants = values.variant ?? [];
if (variants.length === 0) {
  console.error("usage: deno run -A bench/ab_step.ts --variant ROOT[:flags] [--variant ...]");
  Deno.exit(2);
}

interface Prepared {
  label: string;
  session: ort.InferenceSession;
  feeds: Record<string, ort.Tensor>;
  carried: { input: string; output: string }[];
  times: number[];
  /** Process CPU seconds (user + system) per step: less sensitive to other load than wall time. */
  cpu: number[];
}

const prepared: Prepared[] = [];
for (const spec of variants) {
  const [root, flagText = ""] = spec.split(":");
  const flags = flagText.split(",").filter(Boolean);
  const base = pathToFileURL(resolve(root) + "/").href;
  const env: [string, string][] = flags.filter((f) => f.includes("=")).map((f) =>
    f.split("=") as [string, string]
  );
  for (const [k, v] of env) Deno.env.set(k, v);
  const { parseBenchConfig } = await import(`${base}src/bench/config.ts`);
  const { prepareStep, stepFeeds } = await import(`${base}src/bench/step_timing.ts`);
  const { encodeModel } = await import(`${base}src/onnx/mod.ts`);
  const sessionModule = await import(`${base}src/runtime/session.ts`);
  const config = parseBenchConfig({ ...values, variant: undefined });
  const step = prepareStep(config);
  // A tree with sessionModelBytes encodes as its sessions do (blocked Convs unless no-nchwc,
  // training-mode BatchNorm statistics unless no-bn-stats).
  const bytes = sessionModule.sessionModelBytes
    ? await sessionModule.sessionModelBytes(step.step.graph, {
      blockedConvs: !flags.includes("no-nchwc"),
      batchStatistics: !flags.includes("no-bn-stats"),
    })
    : encodeModel(step.step.graph, { omitValueInfo: true });
  const session = await ort.InferenceSession.create(
    bytes,
    {
      graphOptimizationLevel: "all",
      intraOpNumThreads: config.threads,
      interOpNumThreads: 1,
      executionMode: "sequential",
      enableCpuMemArena: !flags.includes("no-arena"),
      enableMemPattern: !flags.includes("no-mem-pattern"),
      executionProviders: ["cpu"],
      ...(flags.includes("no-spin")
        ? { extra: { session: { "intra_op.allow_spinning": "0" } } }
        : {}),
    },
  );
  for (const [k] of env) Deno.env.delete(k);
  const host = stepFeeds(step) as Record<string, { dtype: string; shape: number[]; data: never }>;
  const feeds: Record<string, ort.Tensor> = {};
  for (const name of session.inputNames) {
    const t = host[name];
    feeds[name] = new ort.Tensor(t.dtype as ort.Tensor.Type, t.data, t.shape);
  }
  prepared.push({
    label: spec,
    session,
    feeds,
    carried: step.step.layout.carried,
    times: [],
    cpu: [],
  });
}

async function runOnce(p: Prepared): Promise<[number, number]> {
  const cpu0 = process.cpuUsage();
  const start = performance.now();
  const out = await p.session.run(p.feeds);
  const ms = performance.now() - start;
  const cpu = process.cpuUsage(cpu0);
  for (const c of p.carried) p.feeds[c.input] = out[c.output];
  return [ms, (cpu.user + cpu.system) / 1000];
}

for (const p of prepared) for (let i = 0; i < Number(values.warmup); i++) await runOnce(p);
for (let r = 0; r < Number(values.rounds); r++) {
  for (const p of prepared) {
    const [ms, cpuMs] = await runOnce(p);
    p.times.push(ms);
    p.cpu.push(cpuMs);
  }
}
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const first = median(prepared[0].times);
const firstCpu = median(prepared[0].cpu);
const load = Deno.loadavg();
console.log(
  `${values.rounds} rounds, batch ${values.batch ?? 32}, threads ${values.threads}; load average ${
    load.map((l) => l.toFixed(2)).join(" ")
  }`,
);
for (const p of prepared) {
  const m = median(p.times);
  console.log(
    `${p.label.padEnd(40)} median ${m.toFixed(0).padStart(6)} ms/step  (x${
      (m / first).toFixed(3)
    }), cpu ${median(p.cpu).toFixed(0).padStart(6)} ms/step (x${
      (median(p.cpu) / firstCpu).toFixed(3)
    })  all: ${p.times.map((t) => t.toFixed(0)).join(" ")}`,
  );
  await p.session.release();
}
