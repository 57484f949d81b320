/**
 * `analyse <logs, directories or globs...> [--json] [--all]`: mean ± std per
 * method/config over seeds and splits, compared with the papers' values.
 */
import { analyseRuns, findLogFiles, formatAnalysis, readRunLog } from "../report/mod.ts";
import type { Command } from "./commands.ts";
import { UsageError } from "./errors.ts";

/** The analyse command. */
export const analyseCommand: Command = {
  name: "analyse",
  summary: "summarise experiment logs: mean ± std over seeds/splits per config, vs. the papers",
  usage: "<log.json | directory | 'glob'>... [--json] [--all]",
  options: {
    json: { type: "boolean", description: "print the analysis as one JSON object" },
    all: { type: "boolean", description: "include runs that did not finish" },
  },
  async run(args) {
    if (args.positionals.length === 0) {
      throw new UsageError(
        "analyse: give logs, directories or quoted globs, e.g. `analyse experiment_logs`",
      );
    }
    const paths = await findLogFiles(args.positionals);
    const runs = [];
    for (const path of paths) runs.push(await readRunLog(path));
    const analysis = analyseRuns(runs, { includeUnfinished: Boolean(args.values.all) });
    console.log(args.values.json ? JSON.stringify(analysis, null, 2) : formatAnalysis(analysis));
  },
};
