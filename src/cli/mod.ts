/**
 * The command-line interface: every subcommand of `mod.ts`.
 * @module
 */
export { type Command, type CommandArgs, COMMANDS } from "./commands.ts";
export { UsageError } from "./errors.ts";
