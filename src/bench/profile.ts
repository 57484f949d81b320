/**
 * Where the time of a step goes, from ONNX Runtime's own profiler: kernel
 * time per phase (forward, backward, optimizer update: told apart by the
 * builder's node scopes `grad/` and `optimizer/`), per op type and per node,
 * and the time spent outside the run (feeding inputs and copying outputs
 * back to JavaScript).
 */
import * as ort from "onnxruntime-node";
import { sessionModelBytes, toOrt } from "../runtime/session.ts";
import { ortSessionOptions } from "../runtime/session_options.ts";
import type { BenchConfig } from "./config.ts";
import { type PreparedStep, stepFeeds } from "./step_timing.ts";

/** One event of ORT's profile (Chrome trace format). */
export interface ProfileEvent {
  cat: string;
  name: string;
  dur: number;
  args?: { op_name?: string; provider?: string };
}

/** A part of the step. */
export type Phase = "forward" | "backward" | "update";

/** Milliseconds per step of each part of a profiled step. */
export interface StepProfile {
  steps: number;
  /** JavaScript wall time of `session.run` per step. */
  wallMs: number;
  /** ORT's `model_run` per step (the run without the binding's conversions). */
  runMs: number;
  /** Sum of kernel times per step. */
  kernelMs: number;
  /** Kernel time by phase. */
  phases: Record<Phase, number>;
  /** Kernel time by op type, largest first. */
  opTypes: [string, number][];
  /** Kernel time by op type within each phase, largest first. */
  phaseOpTypes: Record<Phase, [string, number][]>;
  /** The slowest nodes, largest first. */
  nodes: [string, number][];
}

/** Which phase a node belongs to, from its builder scope. */
export function phaseOf(nodeName: string): Phase {
  if (nodeName.startsWith("grad/")) return "backward";
  if (nodeName.startsWith("optimizer/")) return "update";
  return "forward";
}

/** Sums ORT profile events of `steps` runs into per-step figures (`wallMs` is supplied by the caller). */
export function summariseProfile(
  events: ProfileEvent[],
  steps: number,
  wallMs: number,
  top = 12,
): StepProfile {
  const phases = { forward: 0, backward: 0, update: 0 };
  const opTypes = new Map<string, number>();
  const phaseOps = {
    forward: new Map<string, number>(),
    backward: new Map<string, number>(),
    update: new Map<string, number>(),
  };
  const nodes = new Map<string, number>();
  let runUs = 0;
  let kernelUs = 0;
  for (const e of events) {
    if (e.cat === "Session" && e.name === "model_run") runUs += e.dur;
    if (e.cat !== "Node" || !e.name.endsWith("_kernel_time")) continue;
    const node = e.name.slice(0, -"_kernel_time".length);
    const op = e.args?.op_name ?? "?";
    kernelUs += e.dur;
    const phase = phaseOf(node);
    phases[phase] += e.dur;
    phaseOps[phase].set(op, (phaseOps[phase].get(op) ?? 0) + e.dur);
    opTypes.set(op, (opTypes.get(op) ?? 0) + e.dur);
    nodes.set(`${node} (${op})`, (nodes.get(`${node} (${op})`) ?? 0) + e.dur);
  }
  const perStep = (us: number) => us / 1000 / steps;
  const sorted = (m: Map<string, number>) =>
    [...m].sort((a, b) => b[1] - a[1]).slice(0, top).map(([k, v]) =>
      [k, perStep(v)] as [string, number]
    );
  return {
    steps,
    wallMs,
    runMs: perStep(runUs),
    kernelMs: perStep(kernelUs),
    phases: {
      forward: perStep(phases.forward),
      backward: perStep(phases.backward),
      update: perStep(phases.update),
    },
    opTypes: sorted(opTypes),
    phaseOpTypes: {
      forward: sorted(phaseOps.forward),
      backward: sorted(phaseOps.backward),
      update: sorted(phaseOps.update),
    },
    nodes: sorted(nodes),
  };
}

/**
 * Runs `steps` profiled steps (after one unprofiled warm-up run, which ORT
 * still records and this drops) in a fresh session with the same options as
 * the timed one, carrying the new values from step to step. It profiles the
 * single-step graph (one run per step) whatever `stepsPerRun` is, so that
 * every node's time is its own.
 */
export async function profileStep(
  config: BenchConfig,
  prepared: PreparedStep,
  steps: number,
): Promise<StepProfile> {
  const dir = await Deno.makeTempDir({ prefix: "bench_profile_" });
  const options: ort.InferenceSession.SessionOptions = {
    ...ortSessionOptions({ device: config.device, threads: config.threads }),
    enableProfiling: true,
    profileFilePrefix: `${dir}/step`,
  };
  const session = await ort.InferenceSession.create(
    await sessionModelBytes(prepared.step.graph, { device: config.device }),
    options,
  );
  try {
    const feeds = stepFeeds(prepared);
    const carried = prepared.step.layout.carried;
    const runOnce = async () => {
      const ortFeeds: Record<string, ort.Tensor> = {};
      for (const name of session.inputNames) ortFeeds[name] = toOrt(feeds[name]);
      const out = await session.run(ortFeeds);
      for (const c of carried) {
        const t = out[c.output];
        feeds[c.input] = { dtype: c.dtype, shape: [...t.dims], data: t.data as Float32Array };
      }
    };
    await runOnce();
    let wall = 0;
    for (let i = 0; i < steps; i++) {
      const start = performance.now();
      await runOnce();
      wall += performance.now() - start;
    }
    session.endProfiling();
    const files = [...Deno.readDirSync(dir)].filter((f) => f.name.endsWith(".json"));
    if (files.length !== 1) {
      throw new Error(
        `bench --profile: expected one profile file in ${dir}, found ${files.length}`,
      );
    }
    const events = JSON.parse(await Deno.readTextFile(`${dir}/${files[0].name}`)) as ProfileEvent[];
    // Drop the warm-up run: everything before the second model_run.
    const runStarts = events.map((e, i) => (e.cat === "Session" && e.name === "model_run" ? i : -1))
      .filter((i) => i >= 0);
    const firstRunEnd = runStarts[0] ?? -1;
    return summariseProfile(events.slice(firstRunEnd + 1), steps, wall / steps);
  } finally {
    await session.release();
    await Deno.remove(dir, { recursive: true });
  }
}

/** The profile as text lines. */
export function formatProfile(p: StepProfile): string[] {
  const pct = (ms: number) => `${(100 * ms / p.wallMs).toFixed(1)} %`;
  const f = (ms: number) => `${ms.toFixed(1)} ms`;
  return [
    `profile (${p.steps} steps, ORT profiler on): wall ${f(p.wallMs)}/step, ORT run ${
      f(p.runMs)
    } ` +
    `(${pct(p.runMs)}), outside the run (feeds, output copies to JS) ${f(p.wallMs - p.runMs)} (${
      pct(p.wallMs - p.runMs)
    })`,
    `  kernels ${f(p.kernelMs)}: forward ${f(p.phases.forward)} (${
      pct(p.phases.forward)
    }), backward ${f(p.phases.backward)} (${pct(p.phases.backward)}), update ${
      f(p.phases.update)
    } (${pct(p.phases.update)})`,
    `  by op type: ${p.opTypes.map(([op, ms]) => `${op} ${f(ms)}`).join(", ")}`,
    ...(["forward", "backward", "update"] as const).map((phase) =>
      `  ${phase} by op type: ${
        p.phaseOpTypes[phase].map(([op, ms]) => `${op} ${f(ms)}`).join(", ")
      }`
    ),
    `  slowest nodes:`,
    ...p.nodes.map(([node, ms]) => `    ${f(ms).padStart(9)}  ${node}`),
  ];
}
