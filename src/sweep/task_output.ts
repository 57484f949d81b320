/**
 * The lines both engines append to a task's output file around each attempt
 * (`sweep: start ...`, `sweep: requeued ...`, `sweep: exit N`), and what they tell once the
 * scheduler has forgotten the task: whether it ran, how often, and how it ended.
 */

/** The marker prefix; the Slurm batch script writes the same lines (see slurm.ts). */
export const MARKER = "sweep:";

/** What a task's output file says about it. */
export interface TaskOutputSummary {
  /** Attempts started (runs after a requeue or a rerun count). */
  starts: number;
  /** The last marker: started and not ended, requeued, or ended with an exit code. */
  last: { kind: "start" } | { kind: "requeued" } | { kind: "exit"; code: number } | null;
  /** The last `error: ...` line the run printed, if any. */
  error: string | null;
}

/** Reads a task's output file; a missing file is a task that never started. */
export async function readTaskOutput(path: string): Promise<TaskOutputSummary> {
  let text = "";
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return summarizeTaskOutput(text);
}

/** Parses the markers and the last error line of an output file's text. */
export function summarizeTaskOutput(text: string): TaskOutputSummary {
  const summary: TaskOutputSummary = { starts: 0, last: null, error: null };
  for (const raw of text.split(/\r|\n/)) {
    const line = raw.trim();
    if (line.startsWith("error: ")) summary.error = line.slice("error: ".length);
    if (!line.startsWith(MARKER)) continue;
    const words = line.slice(MARKER.length).trim().split(/\s+/);
    if (words[0] === "start") {
      summary.starts++;
      summary.last = { kind: "start" };
      summary.error = null;
    } else if (words[0] === "requeued") {
      summary.last = { kind: "requeued" };
    } else if (words[0] === "exit" && /^\d+$/.test(words[1] ?? "")) {
      summary.last = { kind: "exit", code: Number(words[1]) };
    }
  }
  return summary;
}
