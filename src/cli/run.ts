/** `run <config.yaml>`: a whole experiment (pretrain, evaluate, log), resumable. */
import { loadConfig } from "../config/mod.ts";
import { resolveDevice } from "../runtime/device.ts";
import { runExperiment } from "../train/runner.ts";
import { type Command, type CommandArgs, numberOption } from "./commands.ts";
import { UsageError } from "./errors.ts";
import type { LoadedConfig } from "../config/mod.ts";
import type { ExperimentLog } from "../train/log.ts";
import { configOverrideOptions, overridesFromArgs } from "./overrides.ts";

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
    "<config.yaml> [--resume] [--set key=value ...] [--epochs N] [--device cpu|cuda|auto] [--data-dir D]",
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
    const path = args.positionals[0];
    if (!path) throw new UsageError("run: give a config file, e.g. `run config/quickstart.yaml`");
    const log = await runFromArgs(path, args);
    return log.status === "finished" ? 0 : 130;
  },
};

/**
 * Loads a config with the command line's overrides, runs (or with `--resume` continues)
 * its experiment on `--threads`, and prints the summary.
 */
export async function runFromArgs(path: string, args: CommandArgs): Promise<ExperimentLog> {
  const loaded = await loadConfig(path, overridesFromArgs(args));
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
  console.log(
    `${log.experiment}: ${log.status}; log ${loaded.config.output.log_dir}/${log.experiment}.json, ` +
      `report ${loaded.config.output.log_dir}/${log.experiment}.html`,
  );
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
