/**
 * Optimizers as graph updates: SGD (momentum, Nesterov), Adam (L2), AdamW and
 * LARS. Each adds the update of a parameter to the training-step graph; the
 * learning rate and step count are per-step scalar inputs computed on the host.
 *
 * @module
 */
import { createAdam } from "./adam.ts";
import { createLars } from "./lars.ts";
import { createSgd } from "./sgd.ts";
import {
  type GraphOptimizer,
  OPTIMIZER_KINDS,
  type OptimizerConfig,
  type OptimizerKind,
} from "./types.ts";

export * from "./types.ts";
export { createAdam } from "./adam.ts";
export { createLars } from "./lars.ts";
export { createSgd } from "./sgd.ts";

/**
 * Reads an optimizer name (case-insensitive, e.g. `Adam` from an ETH config);
 * throws naming `key` and the allowed values when it is not one of {@link OPTIMIZER_KINDS}.
 */
export function parseOptimizerName(value: unknown, key = "optimizer"): OptimizerKind {
  const name = typeof value === "string" ? value.trim().toLowerCase() : undefined;
  if (name !== undefined && (OPTIMIZER_KINDS as readonly string[]).includes(name)) {
    return name as OptimizerKind;
  }
  throw new Error(
    `${key}: unknown optimizer ${JSON.stringify(value)}, expected one of ${
      OPTIMIZER_KINDS.join(", ")
    }`,
  );
}

/**
 * Builds the graph optimizer of a config; checks every value and throws an
 * Error naming `where.<key>` and the expected range on a bad one.
 */
export function createOptimizer(config: OptimizerConfig, where = "optimizer"): GraphOptimizer {
  const kind = parseOptimizerName((config as { kind?: unknown })?.kind, `${where}.kind`);
  switch (kind) {
    case "sgd":
      return createSgd(config as Extract<OptimizerConfig, { kind: "sgd" }>, where);
    case "adam":
    case "adamw":
      return createAdam({
        ...(config as Extract<OptimizerConfig, { kind: "adam" | "adamw" }>),
        kind,
      }, where);
    case "lars":
      return createLars(config as Extract<OptimizerConfig, { kind: "lars" }>, where);
  }
}
