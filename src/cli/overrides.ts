/** The config-override options shared by `run` and `plan`. */
import type { ConfigOverrides } from "../config/mod.ts";
import { type CommandArgs, type CommandOption, numberOption } from "./args.ts";

/** `--set key=value` (repeatable), `--epochs`, `--device`, `--threads`, `--data-dir`. */
export const configOverrideOptions: Record<string, CommandOption> = {
  set: {
    type: "string",
    multiple: true,
    description: "override a config value, e.g. --set train.batch_size=128",
  },
  epochs: { type: "string", description: "override train.epochs" },
  device: { type: "string", description: "override device: cpu, cuda or auto" },
  threads: {
    type: "string",
    description: "override runtime.threads: CPU threads for ONNX Runtime (0: the default)",
  },
  "data-dir": { type: "string", description: "override data.dir" },
};

/** Reads the override options of a parsed command line. */
export function overridesFromArgs(args: CommandArgs): ConfigOverrides {
  return {
    set: (args.values.set as string[] | undefined) ?? [],
    epochs: numberOption(args, "epochs"),
    device: args.values.device as string | undefined,
    threads: numberOption(args, "threads"),
    dataDir: args.values["data-dir"] as string | undefined,
  };
}
