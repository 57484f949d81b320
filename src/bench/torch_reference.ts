/**
 * The PyTorch reference step: finds a python with torch and runs
 * bench/torch_step.py on the same configuration, returning its JSON result.
 */
import { resolveThreads } from "../runtime/threads.ts";
import { BENCH_ADAM, BENCH_SGD, BENCH_WEIGHTED, type BenchConfig, timedSteps } from "./config.ts";

/** Path of the reference script. */
export const TORCH_STEP_SCRIPT = new URL("../../bench/torch_step.py", import.meta.url).pathname;

/** Pythons tried, in order, when `--python` is not given. */
export const DEFAULT_PYTHONS = ["/opt/torch/.venv/bin/python3", "/usr/bin/python3", "python3"];

/** What the reference script prints as its last line (the fields the bench reads). */
export interface TorchResult {
  torch_version: string;
  python: string;
  views_per_s: number;
  ms_per_step: number;
  ms_per_step_mean: number;
  peak_bytes: number;
  /** CUDA: GPU memory nvidia-smi reported for the process at most (null where unavailable). */
  peak_device_bytes?: number | null;
  threads: number;
  [key: string]: unknown;
}

/** Flags of the reference step that have no counterpart in ours yet. */
export interface TorchFlags {
  amp?: boolean;
  channelsLast?: boolean;
  /** Also time forward only and forward+backward (`forward_ms_per_step`, `forward_backward_ms_per_step`). */
  phases?: boolean;
}

async function output(cmd: string, args: string[]): Promise<Deno.CommandOutput | Error> {
  try {
    return await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped", stdin: "null" })
      .output();
  } catch (e) {
    return e as Error;
  }
}

function lastLines(bytes: Uint8Array, count = 3): string {
  return new TextDecoder().decode(bytes).trim().split("\n").slice(-count).join(" | ");
}

/** Why `python` cannot run the reference (null when `import torch` works). */
export async function torchProblem(python: string): Promise<string | null> {
  const probe = await output(python, ["-c", "import torch, sys; print(torch.__version__)"]);
  if (probe instanceof Error) return `cannot run ${python} (${probe.message})`;
  if (!probe.success) {
    return `${python} has no usable torch (import torch failed: ${
      lastLines(probe.stderr, 1) || `exit ${probe.code}`
    })`;
  }
  return null;
}

/**
 * The python to run the reference with: `requested` when given (an Error if
 * it lacks torch), else the first of {@link DEFAULT_PYTHONS} that imports torch.
 */
export async function findTorchPython(requested?: string): Promise<string> {
  if (requested) {
    const problem = await torchProblem(requested);
    if (problem) {
      throw new Error(`--reference torch: --python ${problem}; give a python that has torch`);
    }
    return requested;
  }
  const problems: string[] = [];
  for (const candidate of DEFAULT_PYTHONS) {
    const problem = await torchProblem(candidate);
    if (!problem) return candidate;
    problems.push(problem);
  }
  throw new Error(
    `--reference torch: no python with torch found (${
      problems.join("; ")
    }); install torch or pass --python PATH`,
  );
}

/** Command-line arguments of bench/torch_step.py for `config`. */
export function torchArgs(config: BenchConfig, flags: TorchFlags = {}): string[] {
  const optimizer = config.optimizer === "adam"
    ? [
      ...["--optimizer", "adam", "--lr", String(BENCH_ADAM.lr)],
      ...["--weight-decay", String(BENCH_ADAM.weightDecay), "--betas", BENCH_ADAM.betas.join(",")],
      ...["--eps", String(BENCH_ADAM.eps)],
    ]
    : [
      ...["--optimizer", "sgd", "--lr", String(BENCH_SGD.lr)],
      ...["--momentum", String(BENCH_SGD.momentum)],
      ...["--weight-decay", String(BENCH_SGD.weightDecay)],
    ];
  const args = [
    TORCH_STEP_SCRIPT,
    ...["--model", config.model, "--stem", config.stem, "--width", String(config.width)],
    ...["--method", config.method, "--loss", config.loss, "--head", config.head],
    ...["--batch", String(config.batch)],
    ...[
      "--size",
      String(config.imageSize),
      "--steps",
      String(timedSteps(config)),
      "--warmup",
      String(config.warmup),
    ],
    ...[
      "--threads",
      // The reference runs on as many threads as ours: torch's own default follows CPUID's core
      // count, which on some VMs is 1 for 2 vCPUs (torch 1.13 here: 1 thread on this 2-CPU VM).
      String(resolveThreads(config.threads, config.device)),
      "--device",
      config.device,
      "--seed",
      String(config.seed),
    ],
    ...["--temperature", String(config.temperature), "--prune", String(config.prunePercent)],
    ...[
      "--sigma",
      String(BENCH_WEIGHTED.sigma),
      "--lower-bound",
      String(BENCH_WEIGHTED.lowerBound),
    ],
    ...["--upper-bound", String(BENCH_WEIGHTED.upperBound), "--mu", String(BENCH_WEIGHTED.mu)],
    ...optimizer,
  ];
  if (flags.amp) args.push("--amp");
  if (flags.channelsLast) args.push("--channels-last");
  if (flags.phases) args.push("--phases");
  return args;
}

/** Runs the reference step with `python`; throws naming the script and its stderr when it fails. */
export async function runTorchStep(
  python: string,
  config: BenchConfig,
  flags: TorchFlags = {},
): Promise<TorchResult> {
  const result = await output(python, torchArgs(config, flags));
  if (result instanceof Error) {
    throw new Error(`--reference torch: cannot run ${python} (${result.message})`);
  }
  const stdout = new TextDecoder().decode(result.stdout).trim();
  if (!result.success) {
    throw new Error(
      `--reference torch: ${TORCH_STEP_SCRIPT} failed with ${python} (exit ${result.code}): ${
        lastLines(result.stderr) || stdout.split("\n").at(-1)
      }`,
    );
  }
  const last = stdout.split("\n").at(-1) ?? "";
  let parsed: TorchResult;
  try {
    parsed = JSON.parse(last);
  } catch {
    throw new Error(
      `--reference torch: ${TORCH_STEP_SCRIPT} did not end with a JSON line, got ${
        JSON.stringify(last)
      }`,
    );
  }
  for (const key of ["views_per_s", "ms_per_step", "peak_bytes"] as const) {
    if (typeof parsed[key] !== "number") {
      throw new Error(
        `--reference torch: the JSON line of ${TORCH_STEP_SCRIPT} lacks the number ${key}`,
      );
    }
  }
  return parsed;
}
