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

/** The last `count` lines of `text`, joined on one line. */
function tailLines(text: string, count = 3): string {
  return text.trim().split("\n").slice(-count).join(" | ");
}

function lastLines(bytes: Uint8Array, count = 3): string {
  return tailLines(new TextDecoder().decode(bytes), count);
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
  return parseTorchResult(
    python,
    new TextDecoder().decode(result.stdout),
    lastLines(result.stderr),
    result.success ? null : result.code,
  );
}

/** The reference's result from its stdout; throws when it failed (`exitCode` not null) or printed no result. */
function parseTorchResult(
  python: string,
  stdoutText: string,
  stderrTail: string,
  exitCode: number | null,
): TorchResult {
  const stdout = stdoutText.trim();
  if (exitCode !== null) {
    throw new Error(
      `--reference torch: ${TORCH_STEP_SCRIPT} failed with ${python} (exit ${exitCode}): ${
        stderrTail || stdout.split("\n").at(-1)
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

/**
 * The reference step as a live process (`torch_step.py --serve`) that runs
 * timed steps when asked, so that the bench can alternate them with ours:
 * a machine whose speed drifts (other tenants of the host) then slows both
 * sides alike instead of whichever ran second.
 */
export class TorchServer {
  readonly #lines: AsyncIterator<string>;
  readonly #stdout: string[] = [];
  readonly #stderr: Promise<string>;

  private constructor(
    readonly python: string,
    readonly child: Deno.ChildProcess,
    readonly writer: WritableStreamDefaultWriter<Uint8Array>,
  ) {
    this.#lines = lines(child.stdout)[Symbol.asyncIterator]();
    this.#stderr = new Response(child.stderr).text();
  }

  /** Starts the reference and waits until its warm-up steps are done. */
  static async start(
    python: string,
    config: BenchConfig,
    flags: TorchFlags = {},
  ): Promise<TorchServer> {
    let child: Deno.ChildProcess;
    try {
      child = new Deno.Command(python, {
        args: [...torchArgs(config, flags), "--serve"],
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
    } catch (e) {
      throw new Error(`--reference torch: cannot run ${python} (${(e as Error).message})`);
    }
    const server = new TorchServer(python, child, child.stdin.getWriter());
    await server.#expect("ready");
    return server;
  }

  /** Runs `steps` timed reference steps. */
  async run(steps: number): Promise<void> {
    await this.writer.write(new TextEncoder().encode(`${steps}\n`));
    await this.#expect("done");
  }

  /** Ends the reference; its result over every step it ran. */
  async finish(): Promise<TorchResult> {
    await this.writer.write(new TextEncoder().encode("end\n"));
    await this.writer.close();
    for (let next = await this.#lines.next(); !next.done; next = await this.#lines.next()) {
      this.#stdout.push(next.value);
    }
    const status = await this.child.status;
    return parseTorchResult(
      this.python,
      this.#stdout.join("\n"),
      tailLines(await this.#stderr),
      status.success ? null : status.code,
    );
  }

  /** Stops the reference if it still runs (after an error on our side). */
  async kill(): Promise<void> {
    try {
      this.child.kill("SIGKILL");
    } catch {
      // Already exited.
    }
    await this.child.status;
  }

  async #expect(key: "ready" | "done"): Promise<void> {
    const next = await this.#lines.next();
    if (next.done) {
      const status = await this.child.status;
      const stderr = tailLines(await this.#stderr);
      throw new Error(
        `--reference torch: ${TORCH_STEP_SCRIPT} --serve ended (exit ${status.code}) before "${key}": ${stderr}`,
      );
    }
    this.#stdout.push(next.value);
    let parsed: Record<string, unknown> | undefined;
    try {
      parsed = JSON.parse(next.value);
    } catch {
      parsed = undefined;
    }
    if (!parsed || !(key in parsed)) {
      await this.kill();
      throw new Error(
        `--reference torch: ${TORCH_STEP_SCRIPT} --serve answered ${
          JSON.stringify(next.value)
        }, expected a "${key}" line`,
      );
    }
  }
}

/** The lines of a byte stream. */
async function* lines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let rest = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    rest += chunk;
    let newline: number;
    while ((newline = rest.indexOf("\n")) >= 0) {
      yield rest.slice(0, newline);
      rest = rest.slice(newline + 1);
    }
  }
  if (rest.length > 0) yield rest;
}
