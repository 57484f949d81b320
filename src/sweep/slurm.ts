/**
 * Slurm as the sweep's engine: one job-array batch script (one array index per task),
 * submitted with `sbatch --parsable`, watched with `scontrol show job -o` (no `sacct`:
 * clusters without an accounting database have none).
 *
 * Preemption and time limits: `--signal=B:USR1@T` makes Slurm signal the batch shell T
 * seconds before the limit; the script forwards SIGTERM to the run (which checkpoints and
 * exits), then requeues its own array task with `scontrol requeue`. The rerun continues
 * from the checkpoint (`--resume`); `--open-mode=append` keeps the earlier attempts'
 * output. SIGTERM to the batch shell (scancel, preemption by Slurm) is forwarded as well.
 */
import { UsageError } from "../cli/errors.ts";
import { MARKER } from "./task_output.ts";
import type { SweepTask } from "./tasks.ts";

/** The `#SBATCH` settings a sweep takes from its command line. */
export interface SlurmOptions {
  jobName: string;
  partition?: string;
  /** Time limit in a Slurm format (`MM`, `HH:MM:SS`, `D-HH:MM`, ...). */
  time?: string;
  /** GPUs per task, `N` or `type:N`. */
  gpusPerTask?: string;
  cpusPerTask?: number;
  /** Memory per node, `N[K|M|G|T]`. */
  mem?: string;
  account?: string;
  qos?: string;
  constraint?: string;
  /** At most this many array tasks at once (`%N`); null: no limit. */
  maxParallel: number | null;
  /** Seconds before the time limit at which the batch shell gets USR1. */
  signalTime: number;
  /** Further `sbatch` options, one per item (`--mail-type=END`). */
  extra: string[];
}

const TIME =
  /^(?:\d+|\d+:\d{1,2}|\d+:\d{1,2}:\d{1,2}|\d+-\d{1,2}|\d+-\d{1,2}:\d{1,2}|\d+-\d{1,2}:\d{1,2}:\d{1,2}|UNLIMITED|INFINITE)$/i;
const MEMORY = /^\d+[KMGT]?$/i;
const GPUS = /^(?:[A-Za-z0-9_.-]+:)?[1-9]\d*$/;
const NAME_LIST = /^[A-Za-z0-9_.+-]+(?:,[A-Za-z0-9_.+-]+)*$/;

/** Seconds of a Slurm time limit, or null for UNLIMITED. */
export function timeLimitSeconds(time: string): number | null {
  if (/^(UNLIMITED|INFINITE)$/i.test(time)) return null;
  const [daysPart, rest] = time.includes("-") ? time.split("-") : [null, time];
  const parts = rest.split(":").map(Number);
  const days = daysPart === null ? 0 : Number(daysPart);
  let seconds: number;
  if (daysPart !== null) {
    // D-HH, D-HH:MM, D-HH:MM:SS
    seconds = parts[0] * 3600 + (parts[1] ?? 0) * 60 + (parts[2] ?? 0);
  } else if (parts.length === 1) seconds = parts[0] * 60; // MM
  else if (parts.length === 2) seconds = parts[0] * 60 + parts[1]; // MM:SS
  else seconds = parts[0] * 3600 + parts[1] * 60 + parts[2]; // HH:MM:SS
  return days * 86400 + seconds;
}

/**
 * Checks the values' form before Slurm sees them (Slurm itself checks the rest, e.g. that
 * the partition exists, through `sbatch --test-only` before the submission).
 */
export function checkSlurmOptions(options: SlurmOptions): void {
  const bad = (flag: string, value: string, expected: string) =>
    new UsageError(`--${flag} ${JSON.stringify(value)}: expected ${expected}`);
  if (options.time !== undefined && !TIME.test(options.time)) {
    throw bad(
      "time",
      options.time,
      "a Slurm time limit: MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS",
    );
  }
  if (options.mem !== undefined && !MEMORY.test(options.mem)) {
    throw bad("mem", options.mem, "a size such as 16G, 4000M or 64000 (megabytes)");
  }
  if (options.gpusPerTask !== undefined && !GPUS.test(options.gpusPerTask)) {
    throw bad("gpus-per-task", options.gpusPerTask, "a count such as 1, or type:count (a100:1)");
  }
  for (
    const [flag, value] of [["partition", options.partition], ["account", options.account], [
      "qos",
      options.qos,
    ]] as const
  ) {
    if (value !== undefined && !NAME_LIST.test(value)) {
      throw bad(flag, value, "a name (or names separated by commas) of letters, digits, _ . + -");
    }
  }
  if (options.constraint !== undefined && !/^[^\s'"\\]+$/.test(options.constraint)) {
    throw bad("constraint", options.constraint, "node features without spaces or quotes");
  }
  if (!/^[A-Za-z0-9_.+-]+$/.test(options.jobName)) {
    throw bad("job-name", options.jobName, "letters, digits, _ . + -");
  }
  for (const arg of options.extra) {
    if (!/^-/.test(arg) || /[\n\r]/.test(arg)) {
      throw bad("sbatch-arg", arg, "one sbatch option, e.g. --sbatch-arg=--mail-type=END");
    }
  }
  const limit = options.time === undefined ? null : timeLimitSeconds(options.time);
  if (limit !== null && options.signalTime >= limit) {
    throw new UsageError(
      `--signal-time ${options.signalTime} is not below --time ${options.time} (${limit} s): ` +
        "the run would be stopped as soon as it starts",
    );
  }
}

/** A word quoted for bash (single quotes; embedded ones closed and escaped). */
export function shellQuote(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}

/** `0-3`, `0,2,5`: the indices as a Slurm array spec, with `%max` when limited. */
export function arraySpec(indices: readonly number[], maxParallel: number | null): string {
  const sorted = [...indices].sort((a, b) => a - b);
  const ranges: string[] = [];
  for (let i = 0; i < sorted.length;) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j] + 1) j++;
    ranges.push(j > i ? `${sorted[i]}-${sorted[j]}` : String(sorted[i]));
    i = j + 1;
  }
  return ranges.join(",") + (maxParallel === null ? "" : `%${maxParallel}`);
}

/** What the batch script runs. */
export interface BatchScriptInput {
  tasks: readonly SweepTask[];
  /** The task indices to submit (all, or the unfinished ones of a resubmission). */
  indices: readonly number[];
  options: SlurmOptions;
  /** The sweep folder (task output files go to `<out>/slurm/task-<index>.out`). */
  out: string;
  /** The folder the tasks run in (relative paths in configs resolve from it). */
  cwd: string;
  /** The deno executable and the project folder (mod.ts, deno.json). */
  deno: string;
  project: string;
  /** `--threads` of every run; null: the task's CPUs (`SLURM_CPUS_PER_TASK`, else 1). */
  threads: number | null;
}

/** The job-array batch script. */
export function batchScript(input: BatchScriptInput): string {
  const { options, tasks } = input;
  const q = shellQuote;
  const directives = [
    `--job-name=${options.jobName}`,
    `--array=${arraySpec(input.indices, options.maxParallel)}`,
    `--output=${input.out}/slurm/task-%a.out`,
    "--open-mode=append",
    "--requeue",
    `--signal=B:USR1@${options.signalTime}`,
    `--chdir=${input.cwd}`,
    // One run per array task (and --gpus-per-task needs a task count).
    "--ntasks=1",
    ...(options.partition ? [`--partition=${options.partition}`] : []),
    ...(options.time ? [`--time=${options.time}`] : []),
    ...(options.gpusPerTask ? [`--gpus-per-task=${options.gpusPerTask}`] : []),
    ...(options.cpusPerTask ? [`--cpus-per-task=${options.cpusPerTask}`] : []),
    ...(options.mem ? [`--mem=${options.mem}`] : []),
    ...(options.account ? [`--account=${options.account}`] : []),
    ...(options.qos ? [`--qos=${options.qos}`] : []),
    ...(options.constraint ? [`--constraint=${options.constraint}`] : []),
    ...options.extra,
  ];
  for (const d of directives) {
    // sbatch reads a directive up to the end of its line and does not unquote it.
    if (/\s/.test(d)) throw new UsageError(`sbatch option ${JSON.stringify(d)} contains a space`);
  }
  const cases = input.indices.map((i) =>
    `  ${i}) task=(${tasks[i].args.map(q).join(" ")}) ;;  # ${tasks[i].experiment}, seed ${
      tasks[i].seed
    }`
  );
  const threads = input.threads === null ? '"${SLURM_CPUS_PER_TASK:-1}"' : String(input.threads);
  return `#!/bin/bash
# A sweep of ${tasks.length} runs (configs x seeds) written by \`mod.ts sweep\`; the task list is
# ${input.out}/sweep.json. One array index per task; every task runs \`mod.ts run <config> --resume\`.
${directives.map((d) => `#SBATCH ${d}`).join("\n")}

deno=${q(input.deno)}
project=${q(input.project)}
case "$SLURM_ARRAY_TASK_ID" in
${cases.join("\n")}
  *) echo "${MARKER} no task $SLURM_ARRAY_TASK_ID in this sweep" >&2; exit 2 ;;
esac
id="\${SLURM_ARRAY_JOB_ID}_\${SLURM_ARRAY_TASK_ID}"
echo "${MARKER} start task $SLURM_ARRAY_TASK_ID (job $id, restart \${SLURM_RESTART_COUNT:-0}) on $(hostname) at $(date -Is)"

# USR1 (--signal=B:USR1@${options.signalTime}: the time limit is near): stop the run with SIGTERM (it
# checkpoints), then requeue this array task; the rerun resumes from the checkpoint.
requeue() {
  echo "${MARKER} USR1 at $(date -Is): stopping the run (SIGTERM) to requeue"
  kill -TERM "$run" 2>/dev/null
  wait "$run"; code=$?
  if [ "$code" -eq 0 ]; then echo "${MARKER} exit 0"; exit 0; fi
  trap '' TERM  # Slurm ends this attempt as it requeues it
  echo "${MARKER} requeued (the run stopped with exit code $code)"
  scontrol requeue "$id" && exit 0
  echo "${MARKER} scontrol requeue $id failed"; echo "${MARKER} exit $code"; exit "$code"
}
# SIGTERM (scancel, preemption): pass it on, so that the run checkpoints before it ends.
stop() {
  kill -TERM "$run" 2>/dev/null
  wait "$run"; code=$?
  echo "${MARKER} exit $code"; exit "$code"
}
trap requeue USR1
trap stop TERM
# In the background, so that the traps run while it works (bash defers them during a foreground command).
"$deno" run -A --config "$project/deno.json" "$project/mod.ts" "\${task[@]}" --threads ${threads} &
run=$!
wait "$run"; code=$?
echo "${MARKER} exit $code"
exit "$code"
`;
}

/** Output of a finished command. */
export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a Slurm client command; a missing program is an error saying so. */
export async function slurmCommand(
  program: string,
  args: string[],
  stdin?: string,
): Promise<CommandResult> {
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(program, {
      args,
      stdin: stdin === undefined ? "null" : "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new Error(`${program} not found on PATH: ${slurmHint}`);
    }
    throw error;
  }
  if (stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(stdin));
    await writer.close();
  }
  const out = await child.output();
  const text = new TextDecoder();
  return { code: out.code, stdout: text.decode(out.stdout), stderr: text.decode(out.stderr) };
}

const slurmHint = "--slurm needs the Slurm client commands (sbatch, scontrol); " +
  "use --local to run here, or --dry-run to print the batch script";

/** The path of an executable on PATH, or null. */
export function findOnPath(program: string): string | null {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    if (!dir) continue;
    const path = `${dir}/${program}`;
    try {
      const info = Deno.statSync(path);
      if (info.isFile && info.mode !== null && (info.mode & 0o111) !== 0) return path;
    } catch {
      // not here
    }
  }
  return null;
}

/** Refuses at once, in one line, when the Slurm client commands are missing. */
export function requireSlurmClient(): void {
  for (const program of ["sbatch", "scontrol"]) {
    if (findOnPath(program) === null) {
      throw new UsageError(`${program} not found on PATH: ${slurmHint}`);
    }
  }
}

/** The `error:` lines of sbatch's stderr, as one line. */
function sbatchErrors(stderr: string): string {
  const errors = stderr.split("\n").map((l) => l.replace(/^sbatch:\s*/, "").trim())
    .filter((l) => /^error:/i.test(l)).map((l) => l.replace(/^error:\s*/i, ""));
  if (errors.length > 0) return [...new Set(errors)].join("; ");
  return stderr.split("\n").map((l) => l.replace(/^sbatch:\s*/, "").trim()).filter(Boolean).join(
    " ",
  );
}

/** `sbatch --test-only`: Slurm checks partition, limits and options; nothing is queued. */
export async function testSubmission(script: string): Promise<void> {
  const result = await slurmCommand("sbatch", ["--test-only"], script);
  if (result.code !== 0) {
    throw new UsageError(`sbatch refused the batch script: ${sbatchErrors(result.stderr)}`);
  }
}

/** Submits the script file; returns the job id. */
export async function submit(scriptPath: string): Promise<string> {
  const result = await slurmCommand("sbatch", ["--parsable", scriptPath]);
  if (result.code !== 0) {
    throw new Error(`sbatch ${scriptPath} failed: ${sbatchErrors(result.stderr)}`);
  }
  // --parsable prints "jobid" or "jobid;cluster".
  const id = result.stdout.trim().split(";")[0];
  if (!/^\d+$/.test(id)) throw new Error(`sbatch printed no job id: "${result.stdout.trim()}"`);
  return id;
}

/** What Slurm says about one array task. */
export interface SlurmTaskState {
  state: string;
  restarts: number;
  /** `code:signal`, as scontrol prints it. */
  exitCode: string;
  reason: string;
}

/** The array task indices of an `ArrayTaskId` value: `3`, `0-5%2`, `1,3-4`, `0-10:2`. */
export function arrayTaskIds(spec: string): number[] {
  const ids: number[] = [];
  for (const part of spec.replace(/%\d+$/, "").split(",")) {
    const m = /^(\d+)(?:-(\d+)(?::(\d+))?)?$/.exec(part);
    if (!m) continue;
    const start = Number(m[1]);
    const end = m[2] === undefined ? start : Number(m[2]);
    const step = m[3] === undefined ? 1 : Number(m[3]);
    for (let i = start; i <= end; i += step) ids.push(i);
  }
  return ids;
}

/** Parses `scontrol show job -o <array job>`: one line per task (or per pending range). */
export function parseScontrolJobs(text: string): Map<number, SlurmTaskState> {
  const states = new Map<number, SlurmTaskState>();
  for (const line of text.split("\n")) {
    const field = (key: string) => new RegExp(`(?:^|\\s)${key}=(\\S*)`).exec(line)?.[1];
    const ids = field("ArrayTaskId");
    const state = field("JobState");
    if (ids === undefined || state === undefined) continue;
    for (const id of arrayTaskIds(ids)) {
      states.set(id, {
        state,
        restarts: Number(field("Restarts") ?? 0),
        exitCode: field("ExitCode") ?? "",
        reason: field("Reason") ?? "",
      });
    }
  }
  return states;
}

/**
 * Slurm's record of an array job's tasks: empty when Slurm no longer knows the job (records
 * are dropped a few minutes after the end, MinJobAge), null when Slurm cannot be asked.
 */
export async function arrayJobStates(jobId: string): Promise<Map<number, SlurmTaskState> | null> {
  let result: CommandResult;
  try {
    result = await slurmCommand("scontrol", ["show", "job", "-o", jobId]);
  } catch {
    return null;
  }
  if (result.code === 0) return parseScontrolJobs(result.stdout);
  return /invalid job id/i.test(result.stderr) ? new Map() : null;
}

/** Job states in which a task is still queued, running or about to run again. */
const ACTIVE = new Set([
  "PENDING",
  "RUNNING",
  "CONFIGURING",
  "COMPLETING",
  "REQUEUED",
  "REQUEUE_FED",
  "REQUEUE_HOLD",
  "RESIZING",
  "SIGNALING",
  "STAGE_OUT",
  "SUSPENDED",
  "STOPPED",
  "RESV_DEL_HOLD",
]);

/** Whether a Slurm job state is not final. */
export function isActiveState(state: string): boolean {
  return ACTIVE.has(state);
}
