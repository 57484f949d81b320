/**
 * The config files of `run` and `sweep`: YAML files named on the command line (directly, by
 * folder or by glob), and the check that no two runs would write the same log.
 */
import type { LoadedConfig } from "../config/mod.ts";
import { runPaths } from "../train/paths.ts";
import type { FileKind } from "../util/find_files.ts";
import { UsageError } from "./errors.ts";

/** What `run` (and `sweep`) take from folders and globs: YAML configs. */
export const CONFIG_FILES: FileKind = {
  extensions: [".yaml", ".yml"],
  what: "config files (.yaml, .yml)",
};

/** Refuses two configs that would write the same log; `source` names each in the message. */
export function checkDistinctLogs(
  configs: readonly Pick<LoadedConfig, "config" | "source">[],
): void {
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
