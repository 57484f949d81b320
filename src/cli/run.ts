/**
 * `run <config.yaml>...`: whole experiments (pretrain, evaluate, log), resumable; several
 * configs (e.g. the five splits of an SDCLR setting) run in turn and end with their
 * mean ± std summary, as `analyse` prints it.
 */
import { loadConfig } from "../config/mod.ts";
import { resolveDevice } from "../runtime/device.ts";
import { runExperiment } from "../train/runner.ts";
import { type Command, type CommandArgs } from "./commands.ts";
import { sessionOptionsFromConfig } from "../runtime/session_options.ts";
import { checkPrecision } from "../train/precision.ts";
import { UsageError } from "./errors.ts";
import type { LoadedConfig } from "../config/mod.ts";
import type { ExperimentLog } from "../train/log.ts";
import type { ScoreMetric } from "../eval/mod.ts";
import { configOverrideOptions, overridesFromArgs } from "./overrides.ts";
import { analyseRuns, formatAnalysis, parseRunLog, type RunLog } from "../report/mod.ts";
import { runPaths } from "../train/paths.ts";
import { exitCodeOfRun } from "../train/stop_signals.ts";
import { findFiles } from "../util/find_files.ts";
import { checkDistinctLogs, CONFIG_FILES } from "./config_files.ts";

interface GroupReport {
  groups: { name: string; accuracy: number | null }[];
  balancedness: number | null;
}

/** The part of an evaluation's details that holds many/medium/few groups. */
interface GroupDetails {
  groups?: { linear: GroupReport | null; fewShot: GroupReport | null } | null;
}

/** The run command. */
export const runCommand: Command = {
  name: "run",
  summary: "run an experiment from a YAML config (ours or the ETH format): pretrain, evaluate, log",
  usage:
    "<config.yaml | directory | 'glob'>... [--resume] [--set key=value ...] [--epochs N] [--device cpu|cuda|auto] [--threads T] [--data-dir D]",
  options: {
    resume: { type: "boolean", description: "continue from the run's last checkpoint" },
    ...configOverrideOptions,
  },
  async run(args) {
    if (args.positionals.length === 0) {
      throw new UsageError("run: give a config file, e.g. `run config/quickstart.yaml`");
    }
    const files = await findFiles(args.positionals, CONFIG_FILES);
    // Every config loads before anything trains: a typo in the last one shows before hours of work.
    const overrides = overridesFromArgs(args);
    const configs: LoadedConfig[] = [];
    for (const file of files) configs.push(await loadConfig(file, overrides));
    checkDistinctLogs(configs);
    await checkPrecisions(configs);
    const runs: RunLog[] = [];
    for (const [i, loaded] of configs.entries()) {
      if (configs.length > 1) console.log(`== ${i + 1}/${configs.length}: ${loaded.source}`);
      const log = await runLoadedConfig(loaded, args);
      if (log.status !== "finished") return exitCodeOfRun(log);
      runs.push(parseRunLog(log, runPaths(loaded.config).log));
    }
    if (runs.length > 1) console.log(`\n${formatAnalysis(analyseRuns(runs))}`);
    return 0;
  },
};

/** Refuses, before anything trains, a config whose precision its device cannot run (float16 on CPU). */
async function checkPrecisions(configs: readonly LoadedConfig[]): Promise<void> {
  for (const { config, source } of configs) {
    if (config.train.precision === "float32") continue;
    const { device } = await resolveDevice(config.device);
    try {
      checkPrecision(config.train.precision, device);
    } catch (e) {
      throw new UsageError(`${source}: ${(e as Error).message}`);
    }
  }
}

/**
 * Runs (or with `--resume` continues) the experiment of a loaded config with the session
 * options of its `device` and `runtime` section, and prints the summary.
 */
export async function runLoadedConfig(
  loaded: LoadedConfig,
  args: CommandArgs,
): Promise<ExperimentLog> {
  const { device } = await resolveDevice(loaded.config.device);
  const log = await runExperiment(loaded, {
    resume: Boolean(args.values.resume),
    session: sessionOptionsFromConfig({ device, ...loaded.config.runtime }),
  });
  printRunSummary(loaded, log);
  return log;
}

/** What a score metric is called in the run summary. */
const SCORE_NAMES: Record<ScoreMetric, string> = {
  linear: "linear-probe test accuracy",
  few_shot: "few-shot test accuracy (no linear probe configured)",
  knn: "kNN test accuracy (no linear or few-shot probe configured)",
};

function percent(value: number | null | undefined): string {
  return typeof value === "number" && Number.isFinite(value)
    ? `${(100 * value).toFixed(2)} %`
    : "—";
}

/**
 * Prints where a run's log and report are, its headline test accuracies (named by what they
 * are: the linear probe's, or the few-shot or kNN accuracy standing in for it), the random-init
 * baseline and the many/medium/few groups with their balancedness, a fraction as in the report.
 */
export function printRunSummary(loaded: LoadedConfig, log: ExperimentLog): void {
  const paths = runPaths(loaded.config);
  console.log(`${log.experiment}: ${log.status}; log ${paths.log}, report ${paths.report}`);
  if (log.model_scores.length > 0) {
    const metric = log.evaluations.at(-1)?.metric ?? "linear";
    console.log(
      `${SCORE_NAMES[metric]} per evaluation: ${log.model_scores.map(percent).join(", ")}`,
    );
  }
  const baseline = log.random_init_evaluation;
  if (baseline) {
    const last = log.model_scores.at(-1);
    const gain = last === undefined
      ? ""
      : `; pretrained − random init: ${(100 * (last - baseline.accuracy)).toFixed(2)} points`;
    console.log(`random-init baseline (same evaluation): ${percent(baseline.accuracy)}${gain}`);
  }
  const last = log.evaluations.at(-1)?.details as GroupDetails | undefined;
  for (
    const [name, report] of [["linear", last?.groups?.linear], [
      "few-shot",
      last?.groups?.fewShot,
    ]] as const
  ) {
    if (!report) continue;
    const groups = report.groups.map((g) => `${g.name} ${percent(g.accuracy)}`).join(", ");
    const balancedness = report.balancedness === null
      ? "— (a group has no test images)"
      : `${report.balancedness.toFixed(4)} (std of the group accuracies, as a fraction)`;
    console.log(`${name} groups: ${groups}; balancedness ${balancedness}`);
  }
}
