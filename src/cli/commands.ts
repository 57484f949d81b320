/**
 * The CLI's subcommands: each names its options and a run function.
 */
import { UsageError } from "./errors.ts";
import { quickstartCommand } from "./quickstart.ts";
import { exportGraphsCommand } from "./export_graphs.ts";
import { dataCommand } from "./data.ts";
import { benchCommand } from "./bench.ts";
import { planCommand } from "./plan.ts";
import { runCommand } from "./run.ts";
import { setupCudaCommand } from "./setup_cuda.ts";
import { packGpuCommand } from "./pack_gpu.ts";
import { analyseCommand } from "./analyse.ts";
import { reportCommand } from "./report.ts";
import { sweepCommand } from "./sweep.ts";

/** One option of a command. */
export interface CommandOption {
  type: "string" | "boolean";
  description: string;
  default?: string | boolean;
  multiple?: boolean;
  short?: string;
}

/** Parsed arguments handed to a command. */
export interface CommandArgs {
  positionals: string[];
  values: Record<string, unknown>;
}

/** A subcommand of `mod.ts`. */
export interface Command {
  name: string;
  summary: string;
  usage?: string;
  options?: Record<string, CommandOption>;
  /** Hand the raw arguments to `run` as positionals (the command parses its own flags). */
  passThrough?: boolean;
  run(args: CommandArgs): Promise<number | void>;
}

/** Reads a string option, throwing a usage error naming it when it is not a number. */
export function numberOption(args: CommandArgs, name: string): number | undefined {
  const raw = args.values[name];
  if (raw === undefined) return undefined;
  const value = Number(raw);
  if (!Number.isFinite(value)) throw new UsageError(`--${name}: expected a number, got "${raw}"`);
  return value;
}

/** Every subcommand, in help order. */
export const COMMANDS: Command[] = [
  runCommand,
  sweepCommand,
  quickstartCommand,
  exportGraphsCommand,
  planCommand,
  dataCommand,
  benchCommand,
  analyseCommand,
  reportCommand,
  setupCudaCommand,
  packGpuCommand,
];
