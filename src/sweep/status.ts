/**
 * Where every task of a sweep stands: the engine's state (Slurm's record while it keeps one,
 * else the markers in the task's output file; for local sweeps, the markers and whether the
 * sweep process still lives), restarts, the epoch reached and the last score from the run's
 * log.
 */
import { hostname } from "node:os";
import { textTable } from "../report/mod.ts";
import type { SweepManifest } from "./manifest.ts";
import { arrayJobStates, isActiveState, type SlurmTaskState } from "./slurm.ts";
import { readTaskOutput, type TaskOutputSummary } from "./task_output.ts";
import type { SweepTask } from "./tasks.ts";

/** How a task stands, for the totals and for `--wait`. */
export type TaskOutcome = "finished" | "failed" | "interrupted" | "running" | "pending";

/** One task's status. */
export interface TaskStatus {
  task: SweepTask;
  /** The engine's word for it: a Slurm job state, or the local runner's. */
  state: string;
  outcome: TaskOutcome;
  restarts: number;
  /** Epochs in the run's log, null without a log. */
  epochsDone: number | null;
  /** The last evaluation's headline test accuracy (fraction), null when none. */
  lastScore: number | null;
  /** The log's status (running, interrupted, finished), null without a log. */
  logStatus: string | null;
  /** Why it failed: the exit code and the run's last error line, when known. */
  note: string | null;
}

interface LogFacts {
  epochs: number;
  lastScore: number | null;
  status: string;
}

async function readLogFacts(path: string): Promise<LogFacts | null> {
  try {
    const log = JSON.parse(await Deno.readTextFile(path));
    const scores = Array.isArray(log.model_scores) ? log.model_scores : [];
    const last = scores.at(-1);
    return {
      epochs: Array.isArray(log.average_training_loss_per_epoch)
        ? log.average_training_loss_per_epoch.length
        : 0,
      lastScore: typeof last === "number" ? last : null,
      status: typeof log.status === "string" ? log.status : "unknown",
    };
  } catch {
    // No log yet (or one being replaced: writes are atomic, so this is rare and passes).
    return null;
  }
}

/** Whether a process of this machine lives (Linux: /proc). */
function processAlive(pid: number): boolean {
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
}

function failureNote(code: number | string, output: TaskOutputSummary, path: string): string {
  return `exit ${code}${output.error ? `: ${output.error}` : ""} (output: ${path})`;
}

function fromSlurm(
  record: SlurmTaskState | undefined,
  slurmAnswered: boolean,
  output: TaskOutputSummary,
  log: LogFacts | null,
  task: SweepTask,
): Pick<TaskStatus, "state" | "outcome" | "restarts" | "note"> {
  if (record) {
    const { state, restarts } = record;
    if (state === "COMPLETED") return { state, outcome: "finished", restarts, note: null };
    if (isActiveState(state)) {
      const outcome = state === "RUNNING" || state === "COMPLETING" ? "running" : "pending";
      const note = state === "PENDING" && record.reason && record.reason !== "None"
        ? `waiting: ${record.reason}`
        : null;
      return { state, outcome, restarts, note };
    }
    const code = record.exitCode.split(":")[0] || "?";
    return { state, outcome: "failed", restarts, note: failureNote(code, output, task.output) };
  }
  // Slurm forgot the job (or cannot be asked): the output file's markers tell how it ended.
  const restarts = Math.max(0, output.starts - 1);
  const last = output.last;
  if (last?.kind === "exit") {
    return last.code === 0 ? { state: "COMPLETED", outcome: "finished", restarts, note: null } : {
      state: "FAILED",
      outcome: "failed",
      restarts,
      note: failureNote(last.code, output, task.output),
    };
  }
  if (log?.status === "finished") {
    return { state: "COMPLETED", outcome: "finished", restarts, note: null };
  }
  if (!slurmAnswered) {
    const running = last?.kind === "start";
    return {
      state: running ? "RUNNING?" : "PENDING?",
      outcome: running ? "running" : "pending",
      restarts,
      note: "scontrol did not answer: state from the task's output file",
    };
  }
  return {
    state: "UNKNOWN",
    outcome: "failed",
    restarts,
    note: `Slurm has no record of it and its output ends ${
      last ? `at "${last.kind}"` : "before it started"
    } (output: ${task.output})`,
  };
}

function fromLocal(
  output: TaskOutputSummary,
  sweepAlive: boolean,
  task: SweepTask,
): Pick<TaskStatus, "state" | "outcome" | "restarts" | "note"> {
  const restarts = Math.max(0, output.starts - 1);
  const last = output.last;
  if (last?.kind === "exit") {
    if (last.code === 0) return { state: "COMPLETED", outcome: "finished", restarts, note: null };
    if (last.code === 130 || last.code === 143) {
      return {
        state: "INTERRUPTED",
        outcome: "interrupted",
        restarts,
        note: `exit ${last.code}: stopped by a signal; the same sweep command continues it`,
      };
    }
    return {
      state: "FAILED",
      outcome: "failed",
      restarts,
      note: failureNote(last.code, output, task.output),
    };
  }
  if (last?.kind === "start") {
    return sweepAlive ? { state: "RUNNING", outcome: "running", restarts, note: null } : {
      state: "STOPPED",
      outcome: "interrupted",
      restarts,
      note: "the sweep process ended while it ran; the same sweep command continues it",
    };
  }
  return sweepAlive
    ? { state: "PENDING", outcome: "pending", restarts, note: null }
    : { state: "NOT RUN", outcome: "interrupted", restarts, note: "the sweep process ended first" };
}

/** The status of every task of a sweep. */
export async function sweepStatus(manifest: SweepManifest): Promise<TaskStatus[]> {
  const jobStates = new Map<string, Map<number, SlurmTaskState> | null>();
  const session = manifest.local?.sessions.at(-1);
  const sweepAlive = session !== undefined && session.hostname === hostname() &&
    processAlive(session.pid) && session.pid !== Deno.pid;
  const statuses: TaskStatus[] = [];
  for (const task of manifest.tasks) {
    const output = await readTaskOutput(task.output);
    const log = await readLogFacts(task.log);
    let engine;
    if (manifest.engine === "slurm") {
      const job = manifest.slurm?.jobs.findLast((j) => j.tasks.includes(task.index));
      let states: Map<number, SlurmTaskState> | null = null;
      if (job) {
        if (!jobStates.has(job.id)) jobStates.set(job.id, await arrayJobStates(job.id));
        states = jobStates.get(job.id)!;
      }
      engine = job
        ? fromSlurm(states?.get(task.index), states !== null, output, log, task)
        : { state: "NOT SUBMITTED", outcome: "pending" as const, restarts: 0, note: null };
    } else {
      engine = fromLocal(output, sweepAlive, task);
    }
    // Exit 0 without a finished log would be a bug of the runner; say so rather than count it.
    if (engine.outcome === "finished" && log?.status !== "finished") {
      engine = {
        ...engine,
        outcome: "failed" as const,
        note: `ended with exit 0 but its log says ${log ? `"${log.status}"` : "nothing"}`,
      };
    }
    statuses.push({
      task,
      ...engine,
      epochsDone: log?.epochs ?? null,
      lastScore: log?.lastScore ?? null,
      logStatus: log?.status ?? null,
    });
  }
  return statuses;
}

/** Tasks per outcome. */
export function outcomeTotals(statuses: readonly TaskStatus[]): Record<TaskOutcome, number> {
  const totals: Record<TaskOutcome, number> = {
    finished: 0,
    failed: 0,
    interrupted: 0,
    running: 0,
    pending: 0,
  };
  for (const s of statuses) totals[s.outcome]++;
  return totals;
}

/** `4 tasks: 3 finished, 1 failed, ...` (outcomes with no task left out, except finished). */
export function formatTotals(statuses: readonly TaskStatus[]): string {
  const totals = outcomeTotals(statuses);
  const parts = (Object.entries(totals) as [TaskOutcome, number][])
    .filter(([outcome, n]) => n > 0 || outcome === "finished")
    .map(([outcome, n]) => `${n} ${outcome}`);
  return `${statuses.length} tasks: ${parts.join(", ")}`;
}

/** The status table: one line per task, notes for the tasks that have one, then totals. */
export function formatStatus(statuses: readonly TaskStatus[]): string {
  const table = textTable(
    ["task", "experiment", "seed", "state", "restarts", "epoch", "last score", "log"],
    statuses.map((s) => [
      String(s.task.index),
      s.task.experiment,
      String(s.task.seed),
      s.state,
      String(s.restarts),
      s.epochsDone === null ? "—" : `${s.epochsDone}/${s.task.epochs}`,
      s.lastScore === null ? "—" : `${(100 * s.lastScore).toFixed(2)} %`,
      s.logStatus ?? "no log",
    ]),
  );
  const notes = statuses.filter((s) => s.note !== null).map((s) =>
    `task ${s.task.index} (${s.task.experiment}, seed ${s.task.seed}): ${s.note}`
  );
  return [table, ...(notes.length > 0 ? ["", ...notes] : []), "", formatTotals(statuses)].join(
    "\n",
  );
}
