/**
 * Command-line entry of the toolkit.
 *
 *   deno run -A mod.ts <subcommand> [options]
 *   deno run -A mod.ts --help
 *
 * @module
 */
import { parseArgs } from "node:util";
import { type Command, COMMANDS } from "./src/cli/commands.ts";
import { UsageError } from "./src/cli/errors.ts";

function usage(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  const lines = COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`);
  return [
    "contrastive-onnx: contrastive self-supervised pretraining trained through ONNX Runtime",
    "",
    "usage: deno run -A mod.ts <command> [options]",
    "       deno run -A mod.ts <config.yaml>... [options]   (same as `run <config.yaml>...`)",
    "",
    "commands:",
    ...lines,
    "",
    "`deno run -A mod.ts <command> --help` shows a command's options.",
  ].join("\n");
}

function commandHelp(command: Command): string {
  const opts = Object.entries(command.options ?? {}).map(([name, o]) => {
    const flag = `--${name}${o.type === "string" ? " <value>" : ""}`;
    return `  ${flag.padEnd(26)} ${o.description}${
      o.default !== undefined ? ` (default ${o.default})` : ""
    }`;
  });
  return [
    `usage: deno run -A mod.ts ${command.name} ${command.usage ?? ""}`.trimEnd(),
    "",
    command.summary,
    "",
    ...opts,
  ]
    .join("\n");
}

/** Runs the CLI on `args`; returns the process exit code. */
export async function main(args: string[]): Promise<number> {
  let [name, ...rest] = args;
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    console.log(usage());
    return name === undefined ? 2 : 0;
  }
  if (/\.ya?ml$/i.test(name)) {
    rest = [name, ...rest];
    name = "run";
  }
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) {
    console.error(`error: unknown command "${name}"; run with --help for the list`);
    return 2;
  }
  try {
    if (command.passThrough && !rest.includes("--help") && !rest.includes("-h")) {
      return (await command.run({ positionals: rest, values: {} })) ?? 0;
    }
    const options = Object.fromEntries(
      Object.entries(command.options ?? {}).map(([k, o]) => [
        k,
        {
          type: o.type,
          ...(o.multiple ? { multiple: true } : {}),
          ...(o.short ? { short: o.short } : {}),
        },
      ]),
    );
    const parsed = parseArgs({
      args: rest,
      options: { ...options, help: { type: "boolean", short: "h" } },
      allowPositionals: true,
      strict: true,
    });
    if (parsed.values.help) {
      console.log(commandHelp(command));
      return 0;
    }
    const values: Record<string, unknown> = {};
    for (const [k, o] of Object.entries(command.options ?? {})) {
      values[k] = (parsed.values as Record<string, unknown>)[k] ?? o.default;
    }
    return (await command.run({ positionals: parsed.positionals, values })) ?? 0;
  } catch (e) {
    const err = e as Error;
    const isUsage = err instanceof UsageError ||
      (err as { code?: string }).code?.startsWith("ERR_PARSE_ARGS");
    console.error(`error: ${err.message}`);
    if (Deno.env.get("CONTRASTIVE_DEBUG")) console.error(err.stack);
    return isUsage ? 2 : 1;
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
