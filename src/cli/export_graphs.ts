/** `export-graphs`: write the ONNX graphs of a config for Netron and ORT. */
import { NotImplementedError } from "./errors.ts";
import type { Command } from "./commands.ts";

/** The export-graphs command. */
export const exportGraphsCommand: Command = {
  name: "export-graphs",
  summary: "write the training, eval and optimizer graphs of a config to graphs/<name>/",
  usage: "[config.yaml]",
  run() {
    throw new NotImplementedError("the `export-graphs` command", 4);
  },
};
