/**
 * The sweep's tasks as subprocesses of this machine, N at a time, for one (multi-GPU) box
 * without Slurm: the same `run <config> --resume` commands as the Slurm array, each pinned
 * to one GPU with `CUDA_VISIBLE_DEVICES` when GPUs are given, output appended to the task's
 * output file with the same markers as the batch script writes. SIGINT / SIGTERM to the
 * sweep stop the running tasks with SIGTERM (they checkpoint); the same command continues.
 */
import { STOP_SIGNALS, StopRequest } from "../train/stop_signals.ts";
import { MARKER } from "./task_output.ts";
import type { SweepTask } from "./tasks.ts";

/** How the local engine runs. */
export interface LocalRunOptions {
  /** Tasks at once. */
  parallel: number;
  /** One `CUDA_VISIBLE_DEVICES` value per slot (length ≥ parallel), or null. */
  gpus: string[] | null;
  /** `--threads` of every run. */
  threads: number;
  cwd: string;
  deno: string;
  project: string;
}

/** What a local sweep session ended with. */
export interface LocalRunResult {
  /** Exit code per task run in this session. */
  exitCodes: Map<number, number>;
  /** The signal that stopped the session, or null when every task ran. */
  stoppedBy: keyof typeof STOP_SIGNALS | null;
}

async function appendLine(path: string, line: string): Promise<void> {
  await Deno.writeTextFile(path, line + "\n", { append: true });
}

/** Runs `tasks` (in order) `parallel` at a time; resolves when all ended or a signal stopped them. */
export async function runLocal(
  tasks: readonly SweepTask[],
  options: LocalRunOptions,
): Promise<LocalRunResult> {
  const stop = new StopRequest();
  const exitCodes = new Map<number, number>();
  const running = new Map<number, Deno.ChildProcess>();
  const queue = [...tasks];
  const freeSlots = Array.from({ length: options.parallel }, (_, i) => i);
  const runOne = async (task: SweepTask, slot: number) => {
    const gpu = options.gpus?.[slot];
    console.log(
      `task ${task.index} (${task.experiment}, seed ${task.seed}) started${
        gpu === undefined ? "" : ` on GPU ${gpu}`
      }`,
    );
    await appendLine(
      task.output,
      `${MARKER} start task ${task.index} (local, pid ${Deno.pid}${
        gpu === undefined ? "" : `, CUDA_VISIBLE_DEVICES=${gpu}`
      }) at ${new Date().toISOString()}`,
    );
    // bash appends both streams to the output file, as Slurm's --open-mode=append does.
    const child = new Deno.Command("bash", {
      args: [
        "-c",
        'out=$1; shift; exec "$@" >>"$out" 2>&1',
        "bash",
        task.output,
        options.deno,
        "run",
        "-A",
        "--config",
        `${options.project}/deno.json`,
        `${options.project}/mod.ts`,
        ...task.args,
        "--threads",
        String(options.threads),
      ],
      cwd: options.cwd,
      env: gpu === undefined ? {} : { CUDA_VISIBLE_DEVICES: gpu },
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    running.set(task.index, child);
    const { code } = await child.status;
    running.delete(task.index);
    exitCodes.set(task.index, code);
    await appendLine(task.output, `${MARKER} exit ${code}`);
    const how = code === 0
      ? "finished"
      : code === 130 || code === 143
      ? `stopped (exit ${code}; continues with the same sweep command)`
      : `failed (exit ${code}; output: ${task.output})`;
    console.log(`task ${task.index} (${task.experiment}, seed ${task.seed}) ${how}`);
  };

  try {
    const active = new Set<Promise<void>>();
    stop.received.then(() => {
      for (const child of running.values()) {
        try {
          child.kill("SIGTERM");
        } catch {
          // already ended
        }
      }
    });
    while ((queue.length > 0 && !stop.signal) || active.size > 0) {
      while (queue.length > 0 && freeSlots.length > 0 && !stop.signal) {
        const task = queue.shift()!;
        const slot = freeSlots.shift()!;
        const promise: Promise<void> = runOne(task, slot).finally(() => {
          active.delete(promise);
          freeSlots.push(slot);
        });
        active.add(promise);
      }
      if (active.size > 0) await Promise.race([...active, stop.received]);
      if (stop.signal) await Promise.all(active);
    }
    return { exitCodes, stoppedBy: stop.signal };
  } finally {
    stop.dispose();
  }
}
