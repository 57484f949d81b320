/**
 * The CLI's subcommands: each names its options and a run function.
 */
import type { CommandArgs, CommandOption } from "./args.ts";
export { type CommandArgs, type CommandOption, numberOption } from "./args.ts";
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
