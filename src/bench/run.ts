/**
 * A whole benchmark: our step, the copy-only twin, optionally the ORT
 * profile and the PyTorch reference, gathered into one report and its JSON.
 */
import { ProgressBar } from "../util/progress.ts";
import { type BenchConfig, describeConfig } from "./config.ts";
import { QUIET_OTHER_CORES, quietSteps } from "./cpu_load.ts";
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
}

/** Everything a bench run measured. */
export interface BenchReport {
  config: BenchConfig;
  views: string;
  ours: OurStepResult & { peakBytes: number | null };
  /** The copy-only twin: ms per step and its share of our median step. */
  copies?: { medianMs: number; fraction: number };
  profile?: StepProfile;
  torch?: TorchResult;
  /** Our views/s over the reference's. */
  ratio?: number;
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
  const bar = new ProgressBar("ours", config.steps);
  const timed = await timeOurStep(config, prepared, (ms, loss) => bar.tick(1, { ms, loss }));
  bar.finish({ ms: timed.medianMs });
  const report: BenchReport = {
    config,
    views: VIEWS_NOTE,
    ours: { ...timed, peakBytes: peakRssBytes() },
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
    const torch = await runTorchStep(python, config, {
      ...options.torchFlags,
      phases: Boolean(options.profileSteps),
    });
    report.torch = torch;
    report.ratio = timed.viewsPerSecond / torch.views_per_s;
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
    batch: config.batch,
    image_size: config.imageSize,
    steps: config.steps,
    warmup: config.warmup,
    device: config.device,
    threads: config.threads,
    temperature: config.temperature,
    views: "fixed-random",
    views_per_s: ours.viewsPerSecond,
    ms_per_step: ours.medianMs,
    ms_per_step_mean: ours.meanMs,
    times_ms: ours.perStepMs,
    peak_bytes: ours.peakBytes,
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
    ...(report.torch ? { reference: report.torch, ratio_views_per_s: report.ratio } : {}),
  };
}
