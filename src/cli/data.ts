/** `data`: download CIFAR archives with checksums, make long-tail splits. */
import { dataFetchCommand } from "../data/fetch.ts";
import { makeLtCommand } from "../data/make_lt_command.ts";
import type { Command } from "./commands.ts";
import { UsageError } from "./errors.ts";

const USAGE = "data fetch cifar10|cifar100 [--dir D] [--format python|binary] | " +
  "data make-lt --dataset cifar10|cifar100 --imbalance R --seed S --out DIR [--data-dir D]";

/** The data command: `fetch` and `make-lt`. */
export const dataCommand: Command = {
  name: "data",
  summary: "download CIFAR with checksums (fetch), or make long-tail splits (make-lt)",
  usage:
    "fetch cifar10|cifar100 [--dir D] [--format python|binary]  |  make-lt --dataset D --imbalance R --seed S --out DIR",
  passThrough: true,
  async run(args) {
    const [sub, ...rest] = args.positionals;
    if (sub === "make-lt") {
      const result = await makeLtCommand(rest);
      console.log(
        `per-class counts (class order ${result.classOrder.join(" ")}): ${result.counts.join(" ")}`,
      );
      console.log(
        `sizes: D_i ${result.sizes.longTail}, D_b ${result.sizes.balanced}, S_b ${result.sizes.fewShot}`,
      );
      return;
    }
    if (sub === "fetch") {
      const { parseArgs } = await import("node:util");
      const { values, positionals } = parseArgs({
        args: rest,
        options: {
          dir: { type: "string", default: "data" },
          format: { type: "string", default: "python" },
        },
        allowPositionals: true,
        strict: true,
      });
      const dataset = positionals[0];
      if (dataset !== "cifar10" && dataset !== "cifar100") {
        throw new UsageError(
          `data fetch: expected cifar10 or cifar100, got ${dataset ?? "nothing"}`,
        );
      }
      if (values.format !== "python" && values.format !== "binary") {
        throw new UsageError(
          `data fetch --format: expected python or binary, got ${values.format}`,
        );
      }
      const result = await dataFetchCommand({ dataset, dir: values.dir!, format: values.format });
      console.log(`${dataset}: ${result.folder}${result.downloaded ? " (downloaded)" : ""}`);
      return;
    }
    throw new UsageError(`usage: ${USAGE}`);
  },
};
