/**
 * `sweep CONFIG... --out DIR (--slurm [options] | --local [--parallel N] [--gpus 0,1])`:
 * configs × seeds as one Slurm job array (preemption-safe: USR1 before the time limit →
 * the run checkpoints → the task requeues and resumes) or as local subprocesses;
 * `sweep status DIR`: one line per task; `sweep collect DIR`: the `analyse` table over the
 * sweep's logs.
 */
import { hostname } from "node:os";
import { resolve } from "node:path";
import { analyseRuns, formatAnalysis, readRunLog, type RunLog } from "../report/mod.ts";
import { exists } from "../data/files.ts";
import { STOP_SIGNALS } from "../train/stop_signals.ts";
import { writeTextAtomic } from "../util/atomic.ts";
import {
  batchScript,
  checkSlurmOptions,
  expandTasks,
  formatStatus,
  formatTotals,
  parseSeeds,
  readManifest,
  requireManifest,
  runLocal,
  type SlurmOptions,
  type SweepManifest,
  sweepStatus,
  type SweepTask,
  type TaskStatus,
  writeManifest,
} from "../sweep/mod.ts";
import {
  arrayJobStates,
  isActiveState,
  requireSlurmClient,
  submit,
  testSubmission,
} from "../sweep/slurm.ts";
import { type Command, type CommandArgs, numberOption } from "./commands.ts";
import { UsageError } from "./errors.ts";
import { configOverrideOptions, overridesFromArgs } from "./overrides.ts";

/** The project folder (mod.ts, deno.json) the tasks run from. */
const PROJECT = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");

const SLURM_FLAGS = [
  "partition",
  "time",
  "gpus-per-task",
  "cpus-per-task",
  "mem",
  "account",
  "qos",
  "constraint",
  "max-parallel",
  "sbatch-arg",
  "signal-time",
  "job-name",
] as const;
const LOCAL_FLAGS = ["parallel", "gpus"] as const;

/** The sweep command. */
export const sweepCommand: Command = {
  name: "sweep",
  summary: "configs × seeds as a Slurm job array or local subprocesses; `sweep status|collect DIR`",
  usage: "<config.yaml | directory | 'glob'>... [--seeds 0,1,2] [--set k=v]... [--epochs N] " +
    "[--data-dir D] --out DIR (--slurm [--partition P --time T --gpus-per-task G ...] | " +
    "--local [--parallel N] [--gpus 0,1,...]) [--dry-run] [--wait]\n" +
    "       deno run -A mod.ts sweep status DIR\n" +
    "       deno run -A mod.ts sweep collect DIR [--json] [--all]",
  options: {
    seeds: { type: "string", description: "run every config with each of these seeds (0,1,2)" },
    ...configOverrideOptions,
    out: { type: "string", description: "the sweep folder: sweep.json, logs, checkpoints, output" },
    slurm: { type: "boolean", description: "submit one Slurm job array (sbatch)" },
    local: { type: "boolean", description: "run the tasks here as subprocesses" },
    "dry-run": {
      type: "boolean",
      description: "print the batch script (--local: the commands); submit and write nothing",
    },
    wait: {
      type: "boolean",
      description: "block until every task ended; exit 1 if any failed (--local always does)",
    },
    threads: {
      type: "string",
      description:
        "CPU threads per run, 0: one per core (default: --slurm the task's CPUs, --local cores / N)",
    },
    partition: { type: "string", description: "--slurm: partition(s)" },
    time: { type: "string", description: "--slurm: time limit per task (HH:MM:SS, D-HH:MM, ...)" },
    "gpus-per-task": { type: "string", description: "--slurm: GPUs per task (N or type:N)" },
    "cpus-per-task": { type: "string", description: "--slurm: CPUs per task" },
    mem: { type: "string", description: "--slurm: memory per task's node (16G, 4000M)" },
    account: { type: "string", description: "--slurm: account to charge" },
    qos: { type: "string", description: "--slurm: quality of service" },
    constraint: { type: "string", description: "--slurm: node features (a100|h100)" },
    "max-parallel": { type: "string", description: "--slurm: at most N tasks at once (%N)" },
    "sbatch-arg": {
      type: "string",
      multiple: true,
      description: "--slurm: any further sbatch option, e.g. --sbatch-arg=--mail-type=END",
    },
    "signal-time": {
      type: "string",
      description: "--slurm: seconds before the time limit to checkpoint and requeue",
      default: "120",
    },
    "job-name": { type: "string", description: "--slurm: job name (default sweep-<folder name>)" },
    parallel: { type: "string", description: "--local: tasks at once (default: GPUs given, or 1)" },
    gpus: { type: "string", description: "--local: GPU ids, one per task slot (0,1,2,3)" },
    json: { type: "boolean", description: "collect: the analysis as JSON" },
    all: { type: "boolean", description: "collect: include runs that did not finish" },
  },
  async run(args) {
    const [first, ...rest] = args.positionals;
    if (first === "status") return await statusCommand(rest);
    if (first === "collect") return await collectCommand(rest, args);
    return await launch(args);
  },
};

function folderArgument(rest: string[], what: string): string {
  if (rest.length !== 1) throw new UsageError(`sweep ${what}: give one sweep folder (--out DIR)`);
  return resolve(rest[0]);
}

function given(args: CommandArgs, flag: string): boolean {
  const value = args.values[flag];
  if (flag === "signal-time") return value !== "120";
  return value !== undefined && value !== false && !(Array.isArray(value) && value.length === 0);
}

function positiveInteger(args: CommandArgs, flag: string): number | undefined {
  const value = numberOption(args, flag);
  if (value !== undefined && (!Number.isInteger(value) || value < 1)) {
    throw new UsageError(`--${flag} ${args.values[flag]}: expected a positive integer`);
  }
  return value;
}

function slurmOptionsFromArgs(args: CommandArgs, out: string): SlurmOptions {
  const v = args.values as Record<string, string | undefined>;
  const options: SlurmOptions = {
    jobName: v["job-name"] ?? `sweep-${out.split("/").pop()}`,
    partition: v.partition,
    time: v.time,
    gpusPerTask: v["gpus-per-task"],
    cpusPerTask: positiveInteger(args, "cpus-per-task"),
    mem: v.mem,
    account: v.account,
    qos: v.qos,
    constraint: v.constraint,
    maxParallel: positiveInteger(args, "max-parallel") ?? null,
    signalTime: positiveInteger(args, "signal-time") ?? 120,
    extra: (args.values["sbatch-arg"] as string[] | undefined) ?? [],
  };
  for (const key of Object.keys(options) as (keyof SlurmOptions)[]) {
    if (options[key] === undefined) delete options[key];
  }
  checkSlurmOptions(options);
  return options;
}

interface LocalPlan {
  parallel: number;
  gpus: string[] | null;
}

function localPlanFromArgs(args: CommandArgs): LocalPlan {
  const text = args.values.gpus as string | undefined;
  let gpus: string[] | null = null;
  if (text !== undefined) {
    gpus = text.split(",").map((g) => g.trim());
    if (gpus.some((g) => !/^[A-Za-z0-9_-]+$/.test(g))) {
      throw new UsageError(`--gpus ${text}: expected GPU ids separated by commas, e.g. 0,1,2,3`);
    }
  }
  const parallel = positiveInteger(args, "parallel") ?? gpus?.length ?? 1;
  if (gpus && parallel > gpus.length) {
    throw new UsageError(
      `--parallel ${parallel} with --gpus ${text}: each running task pins one GPU; ` +
        `give ${parallel} GPU ids or --parallel ${gpus.length}`,
    );
  }
  return { parallel, gpus };
}

/** Submits (or runs locally) the tasks of the command line. */
async function launch(args: CommandArgs): Promise<number> {
  if (args.positionals.length === 0) {
    throw new UsageError("sweep: give config files, folders or quoted globs, and --out DIR");
  }
  const outArg = args.values.out as string | undefined;
  if (!outArg) throw new UsageError("sweep: --out DIR is required (the sweep folder)");
  const out = resolve(outArg);
  const slurm = Boolean(args.values.slurm);
  const local = Boolean(args.values.local);
  if (slurm === local) throw new UsageError("sweep: choose one engine, --slurm or --local");
  const misplaced = (slurm ? LOCAL_FLAGS : SLURM_FLAGS).find((flag) => given(args, flag));
  if (misplaced) {
    throw new UsageError(`--${misplaced} applies to ${slurm ? "--local" : "--slurm"} sweeps only`);
  }
  const dryRun = Boolean(args.values["dry-run"]);
  const seeds = args.values.seeds === undefined ? null : parseSeeds(args.values.seeds as string);
  const threads = numberOption(args, "threads") ?? null;
  if (threads !== null && (!Number.isInteger(threads) || threads < 0)) {
    throw new UsageError(`--threads ${args.values.threads}: expected 0 (one per core) or more`);
  }
  const slurmOptions = slurm ? slurmOptionsFromArgs(args, out) : null;
  const localPlan = local ? localPlanFromArgs(args) : null;
  if (slurm && !dryRun) requireSlurmClient();

  const overrides = overridesFromArgs(args);
  const tasks = await expandTasks({
    inputs: args.positionals,
    seeds,
    set: overrides.set ?? [],
    epochs: overrides.epochs,
    dataDir: overrides.dataDir,
    device: overrides.device,
    out,
    outputFolder: slurm ? "slurm" : "local",
  });

  const earlier = dryRun ? null : await readManifest(out);
  if (earlier) await checkResubmission(earlier, tasks, out, slurm ? "slurm" : "local");
  const cwd = earlier?.cwd ?? Deno.cwd();
  const todo = earlier ? await unfinished(tasks) : tasks.map((t) => t.index);
  if (todo.length === 0) {
    console.log(`${out}: all ${tasks.length} tasks have finished; nothing to run`);
    return 0;
  }
  if (earlier) {
    console.log(
      `${out}: continuing the sweep: ${todo.length} of ${tasks.length} tasks have not finished`,
    );
  }
  const manifest: SweepManifest = earlier ?? {
    version: 1,
    created: new Date().toISOString(),
    cwd,
    deno: Deno.execPath(),
    project: PROJECT,
    engine: slurm ? "slurm" : "local",
    tasks,
    slurm: null,
    local: null,
  };
  manifest.deno = Deno.execPath();
  manifest.project = PROJECT;
  if (slurmOptions) {
    return await launchSlurm(manifest, todo, slurmOptions, { out, dryRun, threads, args });
  }
  return await launchLocal(manifest, todo, localPlan!, { out, dryRun, threads });
}

/** A rerun of a sweep command continues its sweep; anything else in the folder is refused. */
async function checkResubmission(
  earlier: SweepManifest,
  tasks: SweepTask[],
  out: string,
  engine: "slurm" | "local",
): Promise<void> {
  if (earlier.engine !== engine) {
    throw new UsageError(
      `${out} holds a --${earlier.engine} sweep; continue it with --${earlier.engine} or choose another --out`,
    );
  }
  const same = earlier.tasks.length === tasks.length &&
    earlier.tasks.every((t, i) => JSON.stringify(t.args) === JSON.stringify(tasks[i].args));
  if (!same) {
    throw new UsageError(
      `${out} holds another sweep (its sweep.json lists ${earlier.tasks.length} other tasks); ` +
        "choose another --out, or repeat that sweep's command to continue it",
    );
  }
  for (const job of earlier.slurm?.jobs ?? []) {
    const states = await arrayJobStates(job.id);
    if (states === null) {
      throw new UsageError(
        `${out}: cannot ask Slurm whether job ${job.id} of this sweep still runs (scontrol)`,
      );
    }
    const active = [...states.values()].filter((s) => isActiveState(s.state));
    if (active.length > 0) {
      throw new UsageError(
        `${out}: job ${job.id} of this sweep still has ${active.length} task(s) queued or ` +
          `running; wait for it (sweep status ${out}) or scancel ${job.id} first`,
      );
    }
  }
  const session = earlier.local?.sessions.at(-1);
  if (session && session.hostname === hostname()) {
    try {
      Deno.statSync(`/proc/${session.pid}`);
      throw new UsageError(`${out}: its local sweep (pid ${session.pid}) is still running`);
    } catch (error) {
      if (error instanceof UsageError) throw error;
    }
  }
}

/** Indices of the tasks whose log does not say finished. */
async function unfinished(tasks: readonly SweepTask[]): Promise<number[]> {
  const todo: number[] = [];
  for (const task of tasks) {
    let finished = false;
    try {
      finished = JSON.parse(await Deno.readTextFile(task.log)).status === "finished";
    } catch {
      // no log yet
    }
    if (!finished) todo.push(task.index);
  }
  return todo;
}

interface LaunchContext {
  out: string;
  dryRun: boolean;
  threads: number | null;
}

async function launchSlurm(
  manifest: SweepManifest,
  todo: number[],
  options: SlurmOptions,
  context: LaunchContext & { args: CommandArgs },
): Promise<number> {
  const { out } = context;
  const script = batchScript({
    tasks: manifest.tasks,
    indices: todo,
    options,
    out,
    cwd: manifest.cwd,
    deno: manifest.deno,
    project: manifest.project,
    threads: context.threads,
  });
  if (context.dryRun) {
    console.log(script.trimEnd());
    console.error(
      `(--dry-run: ${todo.length} tasks; nothing written or submitted; ` +
        `check the script with \`sbatch --test-only\`)`,
    );
    return 0;
  }
  // Slurm checks partition, limits and options first: nothing is written or queued if it refuses.
  await testSubmission(script);
  await Deno.mkdir(`${out}/slurm`, { recursive: true });
  const scriptPath = `${out}/sweep.sbatch`;
  await writeTextAtomic(scriptPath, script);
  const jobs = manifest.slurm?.jobs ?? [];
  manifest.slurm = { script: scriptPath, options, jobs };
  await writeManifest(out, manifest);
  const id = await submit(scriptPath);
  jobs.push({ id, tasks: todo, submitted: new Date().toISOString() });
  await writeManifest(out, manifest);
  console.log(
    `submitted Slurm job ${id}: ${todo.length} task(s) (array ${
      script.match(/--array=(\S+)/)![1]
    }); sweep folder ${out}`,
  );
  console.log(`watch: deno run -A mod.ts sweep status ${out}`);
  if (!context.args.values.wait) return 0;
  const statuses = await waitForSlurm(manifest);
  console.log(`\n${formatStatus(statuses)}`);
  return statuses.some((s) => s.outcome !== "finished") ? 1 : 0;
}

/** Polls until no task is queued or running; prints the totals whenever they change. */
async function waitForSlurm(manifest: SweepManifest): Promise<TaskStatus[]> {
  const intervalMs = 1000 * Math.min(30, 2 + manifest.tasks.length / 4);
  let shown = "";
  for (;;) {
    const statuses = await sweepStatus(manifest);
    const totals = formatTotals(statuses);
    if (totals !== shown) {
      console.log(`${new Date().toTimeString().slice(0, 8)} ${totals}`);
      shown = totals;
    }
    if (!statuses.some((s) => s.outcome === "running" || s.outcome === "pending")) return statuses;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

async function launchLocal(
  manifest: SweepManifest,
  todo: number[],
  plan: LocalPlan,
  context: LaunchContext,
): Promise<number> {
  const { out } = context;
  const threads = context.threads ??
    Math.max(1, Math.floor(navigator.hardwareConcurrency / plan.parallel));
  const tasks = todo.map((i) => manifest.tasks[i]);
  if (context.dryRun) {
    for (const task of tasks) {
      console.log(
        [manifest.deno, "run", "-A", `${manifest.project}/mod.ts`, ...task.args, "--threads"]
          .join(" ") + ` ${threads}`,
      );
    }
    console.error(`(--dry-run: ${tasks.length} tasks, ${plan.parallel} at a time; nothing run)`);
    return 0;
  }
  await Deno.mkdir(`${out}/local`, { recursive: true });
  const sessions = manifest.local?.sessions ?? [];
  sessions.push({
    pid: Deno.pid,
    hostname: hostname(),
    started: new Date().toISOString(),
    parallel: plan.parallel,
    gpus: plan.gpus,
  });
  manifest.local = { sessions };
  await writeManifest(out, manifest);
  console.log(
    `running ${tasks.length} task(s) here, ${plan.parallel} at a time${
      plan.gpus ? ` on GPUs ${plan.gpus.join(",")}` : ""
    }, ${threads} thread(s) each; sweep folder ${out}`,
  );
  const result = await runLocal(tasks, {
    parallel: plan.parallel,
    gpus: plan.gpus,
    threads,
    cwd: manifest.cwd,
    deno: manifest.deno,
    project: manifest.project,
  });
  const statuses = await sweepStatus(manifest);
  console.log(`\n${formatStatus(statuses)}`);
  if (result.stoppedBy) return STOP_SIGNALS[result.stoppedBy];
  return statuses.some((s) => s.outcome !== "finished") ? 1 : 0;
}

async function statusCommand(rest: string[]): Promise<number> {
  const dir = folderArgument(rest, "status");
  const manifest = await requireManifest(dir);
  const engine = manifest.engine === "slurm"
    ? `Slurm job${(manifest.slurm?.jobs.length ?? 0) > 1 ? "s" : ""} ${
      manifest.slurm?.jobs.map((j) => j.id).join(", ") || "(none submitted)"
    }`
    : `local, ${manifest.local?.sessions.length ?? 0} session(s)`;
  console.log(`sweep ${dir}: ${manifest.tasks.length} tasks, ${engine}`);
  console.log(formatStatus(await sweepStatus(manifest)));
  return 0;
}

async function collectCommand(rest: string[], args: CommandArgs): Promise<number> {
  const dir = folderArgument(rest, "collect");
  const manifest = await requireManifest(dir);
  const runs: RunLog[] = [];
  const missing: SweepTask[] = [];
  for (const task of manifest.tasks) {
    if (await exists(task.log)) runs.push(await readRunLog(task.log));
    else missing.push(task);
  }
  const analysis = analyseRuns(runs, { includeUnfinished: Boolean(args.values.all) });
  if (args.values.json) {
    console.log(JSON.stringify({ ...analysis, withoutLog: missing.map((t) => t.index) }, null, 2));
    return 0;
  }
  console.log(formatAnalysis(analysis));
  if (missing.length > 0) {
    console.log(
      `\n${missing.length} of ${manifest.tasks.length} task(s) have no log yet: ` +
        missing.map((t) => `${t.index} (${t.experiment}, seed ${t.seed})`).join(", "),
    );
  }
  return 0;
}
