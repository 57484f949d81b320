/**
 * Reading experiment logs: ours (`experiment_logs/<experiment>.json` as the
 * runner writes it) and the original ETH logs (only `experiment`, `config`,
 * `average_training_loss_per_epoch`, `model_scores`; Python wrote NaN for a
 * diverged loss, which plain JSON cannot read).
 */
import JSON5 from "json5";
import { z } from "zod";
import { type ExperimentConfig, parseConfigDocument } from "../config/mod.ts";
import { zodProblems } from "../config/errors.ts";
import type { ExperimentLog } from "../train/log.ts";
import { findFiles } from "../util/find_files.ts";

/** The ETH fields every log has. */
type EthFields = "experiment" | "config" | "average_training_loss_per_epoch" | "model_scores";

/**
 * A log as read: the ETH fields always, ours when the runner wrote it.
 * Numbers that were NaN (or null in our JSON) are NaN here.
 */
export type LogRecord = Pick<ExperimentLog, EthFields> & Partial<Omit<ExperimentLog, EthFields>>;

/** A log, where it came from, and the config it ran. */
export interface RunLog {
  /** The file it was read from. */
  path: string;
  /** `ours`: written by our runner (any config format); `eth-original`: an original ETH log. */
  source: "ours" | "eth-original";
  log: LogRecord;
  /** The resolved config in our format (ETH originals: mapped from their `config`). */
  config: ExperimentConfig;
}

/**
 * A number, NaN or ±Infinity (Python's tokens) or null (how JSON.stringify
 * writes NaN); null reads as NaN.
 */
const numberOrNaN = z.unknown()
  .refine((v) => v === null || typeof v === "number", { message: "expected a number or null" })
  .transform((v) => (v === null ? NaN : v as number));
const mapping = z.record(z.string(), z.unknown());
const evaluationRecord = z.looseObject({
  epoch: z.number(),
  accuracy: numberOrNaN,
  details: mapping,
});

/** The fields the analysis and the report read; other fields pass through untouched. */
const LogSchema = z.looseObject({
  experiment: z.string().min(1),
  config: mapping,
  average_training_loss_per_epoch: z.array(numberOrNaN),
  model_scores: z.array(numberOrNaN),
  status: z.string().optional(),
  config_format: z.enum(["ours", "eth"]).optional(),
  resolved_config: mapping.optional(),
  overrides: z.array(z.string()).optional(),
  mu_per_epoch: z.array(z.number().nullable()).optional(),
  lr_per_epoch: z.array(numberOrNaN).optional(),
  views_per_second_per_epoch: z.array(numberOrNaN).optional(),
  seconds_per_epoch: z.array(numberOrNaN).optional(),
  wall_time_seconds: z.number().optional(),
  epochs: z.array(z.looseObject({ epoch: z.number() })).optional(),
  evaluations: z.array(evaluationRecord).optional(),
  random_init_evaluation: evaluationRecord.nullable().optional(),
  data: mapping.nullable().optional(),
  environment: mapping.optional(),
});

/** Parses JSON, falling back to JSON5 for Python's NaN / Infinity tokens. */
function parseJson(text: string, path: string): unknown {
  try {
    return JSON.parse(text);
  } catch (strictError) {
    try {
      return JSON5.parse(text);
    } catch {
      throw new Error(
        `${path}: not an experiment log: not JSON (${(strictError as Error).message})`,
      );
    }
  }
}

/**
 * Validates a parsed log document; the error names `path` and each bad key.
 * The config comes from `resolved_config` (ours) or is mapped from the ETH
 * `config` dict (original ETH logs).
 */
export function parseRunLog(document: unknown, path: string): RunLog {
  if (document === null || typeof document !== "object" || Array.isArray(document)) {
    throw new Error(
      `${path}: not an experiment log: expected a JSON object, got ${typeof document}`,
    );
  }
  const result = LogSchema.safeParse(document, { reportInput: true });
  if (!result.success) {
    const problems = zodProblems(result.error);
    throw new Error(
      `${path}: not an experiment log (expected experiment, config, ` +
        `average_training_loss_per_epoch, model_scores): ${problems.join("; ")}`,
    );
  }
  const log = result.data as unknown as LogRecord;
  if (log.resolved_config !== undefined) {
    return {
      path,
      source: "ours",
      log,
      config: log.resolved_config as unknown as ExperimentConfig,
    };
  }
  let config: ExperimentConfig;
  try {
    config = parseConfigDocument(log.config, `${path} (config)`).config;
  } catch (error) {
    throw new Error(
      `${path}: an experiment log without resolved_config whose config is not an ETH config: ${
        (error as Error).message
      }`,
    );
  }
  return { path, source: "eth-original", log, config };
}

/** Reads and validates one log file. */
export async function readRunLog(path: string): Promise<RunLog> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    throw new Error(`${path}: cannot read the log: ${(error as Error).message}`);
  }
  return parseRunLog(parseJson(text, path), path);
}

/**
 * The log files named by `inputs`: files as given, directories by their
 * `*.json` files, glob patterns (`*`, `?`, `[...]`, `{a,b}`, `**`) by what
 * they match (`.json` files only); sorted within each input, duplicates dropped. An input that
 * names nothing is an error naming it.
 */
export async function findLogFiles(inputs: readonly string[]): Promise<string[]> {
  return await findFiles(inputs, { extensions: [".json"], what: ".json files" });
}
