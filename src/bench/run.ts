/**
 * A whole benchmark: our step, the copy-only twin, optionally the ORT
 * profile and the PyTorch reference, gathered into one report and its JSON.
 */
import { ProgressBar } from "../util/progress.ts";
import { textTable } from "../report/mod.ts";
import { resolveThreads } from "../runtime/threads.ts";
import { type BenchConfig, describeConfig, timedSteps } from "./config.ts";
import { QUIET_OTHER_CORES, quietSteps } from "./cpu_load.ts";
import { deviceMemoryBytes } from "./device_memory.ts";
import { timeCopies } from "./io_cost.ts";
import { formatProfile, profileStep, type StepProfile } from "./profile.ts";
import {
  type OurStepResult,
  peakRssBytes,
  prepareStep,
  timeOurStep,
  VIEWS_NOTE,
} from "./step_timing.ts";
import {
  findTorchPython,
  runTorchStep,
  type TorchFlags,
  type TorchResult,
  TorchServer,
} from "./torch_reference.ts";

/** What to run besides our timed step. */
export interface BenchOptions {
  /** Run the PyTorch reference in the same invocation. */
  reference?: "torch";
  /** Python for the reference (default: the first of DEFAULT_PYTHONS with torch). */
  python?: string;
  torchFlags?: TorchFlags;
  /** Steps to run under ORT's profiler (0: no profile). */
  profileSteps?: number;
  /** Time the copy-only twin of the step (default true). */
  copies?: boolean;
  /**
   * Run the reference after ours instead of alternating with it run by run
   * (default false: interleaved, so drifts of the machine's speed hit both alike).
   */
  sequential?: boolean;
}

/** Everything a bench run measured. */
export interface BenchReport {
  config: BenchConfig;
  views: string;
  ours: OurStepResult & {
    peakBytes: number | null;
    /** CUDA: the most GPU memory nvidia-smi reported for this process (null: not CUDA or unknown). */
    peakDeviceBytes: number | null;
  };
  /** The copy-only twin: ms per step and its share of our median step. */
  copies?: { medianMs: number; fraction: number };
  profile?: StepProfile;
  torch?: TorchResult;
  /** Our views/s over the reference's (above 1: we are faster). */
  ratio?: number;
  /** Whether the reference's steps alternated with ours (see BenchOptions.sequential). */
  interleaved?: boolean;
  /** Each figure ours ÷ the reference's (time and memory: below 1 is better for us). */
  ratios?: BenchRatios;
}

/** Ours ÷ the reference's, per figure; null where either side lacks it. */
export interface BenchRatios {
  viewsPerSecond: number;
  medianMs: number;
  meanMs: number;
  peakBytes: number | null;
  peakDeviceBytes: number | null;
}

/** Runs the benchmark; `log` receives the human-readable lines as they come. */
export async function runBench(
  config: BenchConfig,
  options: BenchOptions = {},
  log: (line: string) => void = console.log,
): Promise<BenchReport> {
  // Find the reference python first: a missing torch should fail before minutes of timing.
  const python = options.reference === "torch" ? await findTorchPython(options.python) : undefined;
  log(`bench: ${describeConfig(config)}`);
  log(`views: ${VIEWS_NOTE}`);
  const prepared = prepareStep(config);
  const torchFlags: TorchFlags = {
    ...options.torchFlags,
    // Our float16 step is mixed precision on CUDA: the reference gets autocast too.
    amp: Boolean(options.torchFlags?.amp) || config.precision === "float16",
    phases: Boolean(options.profileSteps),
  };
  // The reference warms up alone before ours starts, then takes a turn after each of our runs.
  const server = python && !options.sequential
    ? await TorchServer.start(python, config, torchFlags)
    : undefined;
  const bar = new ProgressBar(server ? "ours, torch" : "ours", timedSteps(config));
  let devicePeak: number | null = null;
  let timed: OurStepResult;
  let interleavedTorch: TorchResult | undefined;
  try {
    timed = await timeOurStep(config, prepared, (ms, loss) => {
      bar.tick(config.stepsPerRun, { ms, loss });
      if (config.device === "cuda") {
        const used = deviceMemoryBytes(Deno.pid);
        if (used !== null) devicePeak = Math.max(devicePeak ?? 0, used);
      }
    }, server && ((steps) => server.run(steps)));
    interleavedTorch = await server?.finish();
  } catch (e) {
    await server?.kill();
    throw e;
  }
  bar.finish({ ms: timed.medianMs });
  const report: BenchReport = {
    config,
    views: VIEWS_NOTE,
    ours: { ...timed, peakBytes: peakRssBytes(), peakDeviceBytes: devicePeak },
  };
  const oursLine = formatTimes(
    report.ours.viewsPerSecond,
    timed.medianMs,
    timed.meanMs,
    report.ours.peakBytes,
  );
  log(`ours : ${oursLine}, loss ${timed.loss.toFixed(4)}${formatOthers(timed.otherCores)}`);
  log(formatQuiet(timed.perStepMs, timed.otherCoresPerStep));
  log(`       session created in ${timed.sessionSeconds.toFixed(1)} s`);

  if (python) {
    const torch = interleavedTorch ?? await runTorchStep(python, config, torchFlags);
    report.torch = torch;
    report.interleaved = server !== undefined;
    report.ratio = timed.viewsPerSecond / torch.views_per_s;
    report.ratios = benchRatios(report.ours, torch);
    const torchLine = formatTimes(
      torch.views_per_s,
      torch.ms_per_step,
      torch.ms_per_step_mean,
      torch.peak_bytes,
    );
    const torchOthers = typeof torch.other_cores === "number" ? torch.other_cores : null;
    log(
      `torch: ${torchLine}, loss ${Number(torch.loss_value).toFixed(4)}${
        formatOthers(torchOthers)
      }`,
    );
    if (Array.isArray(torch.times_ms) && Array.isArray(torch.other_cores_per_step)) {
      log(formatQuiet(torch.times_ms as number[], torch.other_cores_per_step as (number | null)[]));
    }
    log(`       torch ${torch.torch_version}, ${torch.threads} threads, ${torch.python}`);
    log(
      server
        ? `       interleaved: ours and torch took turns, ${config.stepsPerRun} steps each, after each side's warm-up`
        : `       sequential: torch ran after ours`,
    );
    for (const line of formatComparison(report.ours, torch, report.ratios)) log(line);
    log(`ratio ours/torch (views/s): ${report.ratio.toFixed(3)}`);
  }

  if (options.copies ?? true) {
    const copies = await timeCopies(config, prepared);
    report.copies = { medianMs: copies.medianMs, fraction: copies.medianMs / timed.medianMs };
    log(
      `host↔ORT copies: a copy-only graph with the same ${timed.inputs} inputs and ${timed.outputs} outputs takes ` +
        `${copies.medianMs.toFixed(1)} ms/step = ${
          (100 * report.copies.fraction).toFixed(1)
        } % of our step`,
    );
  }

  if (options.profileSteps) {
    report.profile = await profileStep(config, prepared, options.profileSteps);
    for (const line of formatProfile(report.profile)) log(line);
    const t = report.torch;
    if (
      t && typeof t.forward_ms_per_step === "number" &&
      typeof t.forward_backward_ms_per_step === "number"
    ) {
      log(
        `torch phases (median wall of separate runs): forward ${
          t.forward_ms_per_step.toFixed(1)
        } ms, ` +
          `forward+backward ${t.forward_backward_ms_per_step.toFixed(1)} ms, full step ${
            t.ms_per_step.toFixed(1)
          } ms`,
      );
    }
  }
  return report;
}

function ratio(a: number | null | undefined, b: number | null | undefined): number | null {
  return typeof a === "number" && typeof b === "number" && b > 0 ? a / b : null;
}

/** Each figure of ours over the reference's. */
export function benchRatios(
  ours: BenchReport["ours"],
  torch: TorchResult,
): BenchRatios {
  return {
    viewsPerSecond: ours.viewsPerSecond / torch.views_per_s,
    medianMs: ours.medianMs / torch.ms_per_step,
    meanMs: ours.meanMs / torch.ms_per_step_mean,
    peakBytes: ratio(ours.peakBytes, torch.peak_bytes),
    peakDeviceBytes: ratio(ours.peakDeviceBytes, torch.peak_device_bytes),
  };
}

/** The side-by-side table: each figure for ours and the reference, and ours ÷ reference. */
export function formatComparison(
  ours: BenchReport["ours"],
  torch: TorchResult,
  ratios: BenchRatios,
): string[] {
  const mib = (b: number | null | undefined) =>
    typeof b === "number" ? `${(b / 2 ** 20).toFixed(0)} MiB` : "–";
  const x = (r: number | null) => (r === null ? "–" : r.toFixed(3));
  const rows: string[][] = [
    ["median ms/step", ours.medianMs.toFixed(1), torch.ms_per_step.toFixed(1), x(ratios.medianMs)],
    ["mean ms/step", ours.meanMs.toFixed(1), torch.ms_per_step_mean.toFixed(1), x(ratios.meanMs)],
    [
      "views/s (median)",
      ours.viewsPerSecond.toFixed(1),
      torch.views_per_s.toFixed(1),
      x(ratios.viewsPerSecond),
    ],
    ["peak RSS", mib(ours.peakBytes), mib(torch.peak_bytes), x(ratios.peakBytes)],
  ];
  if (ours.peakDeviceBytes !== null || typeof torch.peak_device_bytes === "number") {
    rows.push([
      "peak device memory",
      mib(ours.peakDeviceBytes),
      mib(torch.peak_device_bytes),
      x(ratios.peakDeviceBytes),
    ]);
  }
  return textTable(["", "ours", "torch", "ours/torch"], rows).split("\n");
}

function formatOthers(cores: number | null): string {
  return cores === null ? "" : `, other processes busy ${cores.toFixed(2)} cores`;
}

function formatQuiet(perStepMs: readonly number[], others: readonly (number | null)[]): string {
  const quiet = quietSteps(perStepMs, others);
  const median = quiet.medianMs === null ? "" : `, median ${quiet.medianMs.toFixed(1)} ms`;
  return `       quiet steps (others <= ${QUIET_OTHER_CORES} cores): ${quiet.count} of ${perStepMs.length}${median}`;
}

function formatTimes(
  viewsPerSecond: number,
  median: number,
  mean: number,
  peak: number | null,
): string {
  const memory = peak === null ? "peak RSS unknown" : `peak RSS ${(peak / 2 ** 20).toFixed(0)} MiB`;
  return `${viewsPerSecond.toFixed(1)} views/s, ${median.toFixed(1)} ms/step median (${
    mean.toFixed(1)
  } mean), ${memory}`;
}

/** The report as one flat JSON object (snake_case; the reference nested under `reference`). */
export function reportJson(report: BenchReport): Record<string, unknown> {
  const { config, ours } = report;
  return {
    impl: "ours",
    model: config.model,
    stem: config.stem,
    width: config.width,
    method: config.method,
    loss: config.loss,
    head: config.head,
    optimizer: config.optimizer,
    precision: config.precision,
    steps_per_run: config.stepsPerRun,
    batch: config.batch,
    image_size: config.imageSize,
    steps: ours.perStepMs.length,
    warmup: config.warmup,
    device: config.device,
    threads: resolveThreads(config.threads, config.device),
    temperature: config.temperature,
    views: "fixed-random",
    views_per_s: ours.viewsPerSecond,
    ms_per_step: ours.medianMs,
    ms_per_step_mean: ours.meanMs,
    times_ms: ours.perStepMs,
    peak_bytes: ours.peakBytes,
    peak_device_bytes: ours.peakDeviceBytes,
    loss_value: ours.loss,
    session_s: ours.sessionSeconds,
    other_cores: ours.otherCores,
    other_cores_per_step: ours.otherCoresPerStep,
    step_inputs: ours.inputs,
    step_outputs: ours.outputs,
    ...(report.copies
      ? { copy_ms_per_step: report.copies.medianMs, copy_fraction: report.copies.fraction }
      : {}),
    ...(report.profile ? { profile: report.profile } : {}),
    ...(report.torch && report.ratios
      ? {
        reference: report.torch,
        interleaved: report.interleaved,
        ratio_views_per_s: report.ratios.viewsPerSecond,
        ratio_ms_per_step: report.ratios.medianMs,
        ratio_ms_per_step_mean: report.ratios.meanMs,
        ratio_peak_bytes: report.ratios.peakBytes,
        ratio_peak_device_bytes: report.ratios.peakDeviceBytes,
      }
      : {}),
  };
}
