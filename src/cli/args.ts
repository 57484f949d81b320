/**
 * Parsed command-line arguments and options, apart from the command table (commands.ts), so
 * that modules the commands import can read options without importing every command.
 */
import { UsageError } from "./errors.ts";

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

/** Reads a string option, throwing a usage error naming it when it is not a number. */
export function numberOption(args: CommandArgs, name: string): number | undefined {
  const raw = args.values[name];
  if (raw === undefined) return undefined;
  const value = Number(raw);
  if (!Number.isFinite(value)) throw new UsageError(`--${name}: expected a number, got "${raw}"`);
  return value;
}
