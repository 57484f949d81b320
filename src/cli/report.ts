/** `report <log.json> [--out file.html]`: (re)writes the HTML report of a log. */
import { readRunLog, writeReport } from "../report/mod.ts";
import type { Command } from "./commands.ts";
import { UsageError } from "./errors.ts";

/** The report command. */
export const reportCommand: Command = {
  name: "report",
  summary: "write the self-contained HTML report (plots, tables) of an experiment log",
  usage: "<log.json> [--out report.html]",
  options: {
    out: { type: "string", description: "where to write (default: the log's path with .html)" },
  },
  async run(args) {
    const [path, ...extra] = args.positionals;
    if (!path || extra.length > 0) {
      throw new UsageError("report: give one log, e.g. `report experiment_logs/quickstart.json`");
    }
    const out = (args.values.out as string | undefined) ?? path.replace(/(\.json)?$/i, ".html");
    const { log } = await readRunLog(path);
    await writeReport(out, log);
    console.log(`report written to ${out} (${(await Deno.stat(out)).size} bytes)`);
  },
};
