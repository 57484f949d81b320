/** Validation of parsed YAML documents in either format, with file-and-key error messages. */
import { ConfigError, zodProblems } from "./errors.ts";
import { type EthConfig, EthConfigSchema, isEthDocument, mapEthConfig } from "./eth.ts";
import { type ExperimentConfig, ExperimentConfigSchema } from "./schema.ts";

/** A config ready for the runner, with what it came from. */
export interface LoadedConfig {
  /** The file it was read from (or another label for in-memory text). */
  source: string;
  /** `ours`, or `eth` for the original ETH format (mapped to ours). */
  format: "ours" | "eth";
  /** The validated, resolved config. */
  config: ExperimentConfig;
  /** Our-format document before defaults (ETH: the mapped one), overrides applied; overrides edit this. */
  document: Record<string, unknown>;
  /** The ETH dict exactly as the YAML parses it (for the log's `config` field); null for our format. */
  eth: Record<string, unknown> | null;
  /** Overrides applied so far, as `key.path=value`. */
  overrides: string[];
}

/** Validates a document in our format; throws one ConfigError naming `source` and every bad key. */
export function parseExperimentConfig(document: unknown, source: string): ExperimentConfig {
  const result = ExperimentConfigSchema.safeParse(document, { reportInput: true });
  if (!result.success) throw new ConfigError(source, zodProblems(result.error));
  return result.data;
}

/** Validates a document in the ETH format; throws one ConfigError naming `source` and every bad key. */
export function parseEthConfig(document: unknown, source: string): EthConfig {
  const result = EthConfigSchema.safeParse(document, { reportInput: true });
  if (!result.success) throw new ConfigError(source, zodProblems(result.error));
  return result.data;
}

function isMapping(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/**
 * Validates a parsed YAML document of either format (ETH when it has any of
 * the ETH-only top-level keys) and maps ETH configs to ours.
 */
export function parseConfigDocument(document: unknown, source: string): LoadedConfig {
  if (!isMapping(document)) {
    throw new ConfigError(source, [
      `(top level): expected a mapping of config keys, got ${JSON.stringify(document)}`,
    ]);
  }
  if (isEthDocument(document)) {
    const eth = parseEthConfig(document, source);
    const mapped = mapEthConfig(eth) as Record<string, unknown>;
    const config = parseExperimentConfig(mapped, `${source} (mapped from the ETH format)`);
    return { source, format: "eth", config, document: mapped, eth: document, overrides: [] };
  }
  const config = parseExperimentConfig(document, source);
  return {
    source,
    format: "ours",
    config,
    document: structuredClone(document),
    eth: null,
    overrides: [],
  };
}
