/**
 * `run <config.yaml>...`: whole experiments (pretrain, evaluate, log), resumable; several
 * configs (e.g. the five splits of an SDCLR setting) run in turn and end with their
 * mean ± std summary, as `analyse` prints it.
 */
import { loadConfig } from "../config/mod.ts";
import { resolveDevice } from "../runtime/device.ts";
import { runExperiment } from "../train/runner.ts";
import { checkPrecision } from "../train/precision.ts";
import { type Command, type CommandArgs, numberOption } from "./commands.ts";
import { UsageError } from "./errors.ts";
import type { LoadedConfig } from "../config/mod.ts";
import type { ExperimentLog } from "../train/log.ts";
import { configOverrideOptions, overridesFromArgs } from "./overrides.ts";
import { analyseRuns, formatAnalysis, parseRunLog, type RunLog } from "../report/mod.ts";
import { runPaths } from "../train/paths.ts";
import { findFiles } from "../util/find_files.ts";

interface GroupReport {
  groups: { name: string; accuracy: number }[];
  balancedness: number;
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
    "<config.yaml | directory | 'glob'>... [--resume] [--set key=value ...] [--epochs N] [--device cpu|cuda|auto] [--data-dir D]",
  options: {
    resume: { type: "boolean", description: "continue from the run's last checkpoint" },
    threads: {
      type: "string",
      description: "CPU threads for ONNX Runtime (0: one per core)",
      default: "0",
    },
    ...configOverrideOptions,
  },
  async run(args) {
    if (args.positionals.length === 0) {
      throw new UsageError("run: give a config file, e.g. `run config/quickstart.yaml`");
    }
    const files = await findFiles(args.positionals, {
      extensions: [".yaml", ".yml"],
      what: "config files (.yaml, .yml)",
    });
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
      if (log.status !== "finished") return 130;
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

/** Refuses two configs that would write the same log. */
function checkDistinctLogs(configs: readonly LoadedConfig[]): void {
  const owner = new Map<string, string>();
  for (const { config, source } of configs) {
    const log = runPaths(config).log;
    const earlier = owner.get(log);
    if (earlier) {
      throw new UsageError(
        `${earlier} and ${source} would both write ${log}; give them different experiment names`,
      );
    }
    owner.set(log, source);
  }
}

/**
 * Runs (or with `--resume` continues) the experiment of a loaded config on the command
 * line's `--threads`, and prints the summary.
 */
export async function runLoadedConfig(
  loaded: LoadedConfig,
  args: CommandArgs,
): Promise<ExperimentLog> {
  const { device } = await resolveDevice(loaded.config.device);
  const log = await runExperiment(loaded, {
    resume: Boolean(args.values.resume),
    session: { device, threads: numberOption(args, "threads") },
  });
  printRunSummary(loaded, log);
  return log;
}

/** Prints where a run's log and report are, its test accuracies, the random-init baseline and groups. */
export function printRunSummary(loaded: LoadedConfig, log: ExperimentLog): void {
  const paths = runPaths(loaded.config);
  console.log(`${log.experiment}: ${log.status}; log ${paths.log}, report ${paths.report}`);
  if (log.model_scores.length > 0) {
    console.log(
      `test accuracy per evaluation: ${
        log.model_scores.map((s) => (100 * s).toFixed(2) + " %").join(", ")
      }`,
    );
  }
  const baseline = log.random_init_evaluation;
  if (baseline) {
    const last = log.model_scores.at(-1);
    const gain = last === undefined
      ? ""
      : `; pretrained − random init: ${(100 * (last - baseline.accuracy)).toFixed(2)} points`;
    console.log(
      `random-init baseline (same evaluation): ${(100 * baseline.accuracy).toFixed(2)} %${gain}`,
    );
  }
  const last = log.evaluations.at(-1)?.details as GroupDetails | undefined;
  for (
    const [name, report] of [["linear", last?.groups?.linear], [
      "few-shot",
      last?.groups?.fewShot,
    ]] as const
  ) {
    if (!report) continue;
    const groups = report.groups.map((g) => `${g.name} ${(100 * g.accuracy).toFixed(2)} %`).join(
      ", ",
    );
    console.log(
      `${name} groups: ${groups}; balancedness ${(100 * report.balancedness).toFixed(2)}`,
    );
  }
}
