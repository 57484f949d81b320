/**
 * What the runner writes after an epoch: the JSON log, then its HTML report,
 * both atomically.
 */
import { type ExperimentLog, writeExperimentLog } from "../train/log.ts";
import type { RunPaths } from "../train/paths.ts";
import { writeTextAtomic } from "../util/atomic.ts";
import { renderReport } from "./html.ts";
import type { LogRecord } from "./read.ts";

/** Writes `log` to `path`'s HTML report atomically. */
export async function writeReport(path: string, log: LogRecord): Promise<void> {
  await writeTextAtomic(path, await renderReport(log));
}

/** When each report was last rendered and how long that took (ms), per report path. */
const lastRender = new Map<string, { at: number; took: number }>();

/**
 * Rendering costs far less than an epoch of a real run, but a run of
 * thousands of short epochs should not spend its time on plots: while the
 * run is going, a report is re-rendered only when 30 s and 20 times its last
 * render time have passed. A finished or interrupted run always gets one.
 */
function reportDue(path: string, status: string, now: number): boolean {
  if (status !== "running") return true;
  const last = lastRender.get(path);
  return last === undefined || now - last.at >= Math.max(30_000, 20 * last.took);
}

/**
 * Writes the log (always) and the HTML report (see {@link reportDue}). A
 * report that fails to render is reported on stderr and does not stop the
 * run; the log is already written.
 */
export async function writeRunOutputs(
  paths: Pick<RunPaths, "log" | "report">,
  log: ExperimentLog,
): Promise<void> {
  await writeExperimentLog(paths.log, log);
  const start = performance.now();
  if (!reportDue(paths.report, log.status, start)) return;
  try {
    await writeReport(paths.report, log);
  } catch (error) {
    console.error(`warning: report ${paths.report} not written: ${(error as Error).message}`);
  }
  lastRender.set(paths.report, { at: start, took: performance.now() - start });
}
