/** Config errors: every problem of a file in one Error, each naming the key path. */
import type { z } from "zod";

/**
 * An invalid config file. One problem: the message is
 * `file: key.path: what was expected, got what`; several: a `file: N problems`
 * line, then one indented `key.path: ...` line each.
 */
export class ConfigError extends Error {
  /** The file (or other source) the problems were found in. */
  readonly file: string;
  /** The problems without the file prefix, e.g. `loss.temperature: expected number, got "abc"`. */
  readonly problems: readonly string[];

  /** Builds the error from a file name and its problems (at least one). */
  constructor(file: string, problems: readonly string[]) {
    super(
      problems.length === 1
        ? `${file}: ${problems[0]}`
        : [`${file}: ${problems.length} problems`, ...problems.map((p) => `  ${p}`)].join("\n"),
    );
    this.name = "ConfigError";
    this.file = file;
    this.problems = problems;
  }
}

/** A short, quoted rendering of a value for error messages. */
export function describeValue(value: unknown): string {
  if (value === undefined) return "nothing";
  if (Array.isArray(value)) return truncate(JSON.stringify(value));
  if (value !== null && typeof value === "object") {
    return `a mapping with keys ${Object.keys(value).join(", ") || "(none)"}`;
  }
  return truncate(JSON.stringify(value) ?? String(value));
}

function truncate(text: string): string {
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/** Renders a key path as `a.b[0].c`; the empty path is `(top level)`. */
export function keyPath(path: readonly PropertyKey[]): string {
  let text = "";
  for (const segment of path) {
    if (typeof segment === "number") text += `[${segment}]`;
    else text += text === "" ? String(segment) : `.${String(segment)}`;
  }
  return text === "" ? "(top level)" : text;
}

/** One or more problem lines for one zod issue (parsed with `reportInput: true`). */
export function formatIssue(
  issue: z.core.$ZodIssue,
  prefix: readonly PropertyKey[] = [],
): string[] {
  const path = [...prefix, ...issue.path];
  const where = keyPath(path);
  const input = (issue as { input?: unknown }).input;
  switch (issue.code) {
    case "invalid_type":
      if (input === undefined) return [`${where}: missing (expected ${issue.expected})`];
      return [`${where}: expected ${issue.expected}, got ${describeValue(input)}`];
    case "unrecognized_keys":
      return issue.keys.map((key) => `${keyPath([...path, key])}: unknown key`);
    case "invalid_value":
      // A schema's own message (e.g. why only `true` is accepted) says more than the values.
      if (!issue.message.startsWith("Invalid")) {
        return [`${where}: ${issue.message}, got ${describeValue(input)}`];
      }
      return [
        `${where}: expected ${issue.values.map((v) => JSON.stringify(v)).join(" | ")}, got ${
          describeValue(input)
        }`,
      ];
    case "invalid_union": {
      const discriminator = (issue as { discriminator?: string }).discriminator;
      const options = (issue as { options?: unknown[] }).options;
      if (discriminator !== undefined && options !== undefined) {
        const given = input !== null && typeof input === "object"
          ? (input as Record<string, unknown>)[discriminator]
          : input;
        return [
          `${where}: expected ${options.map((v) => JSON.stringify(v)).join(" | ")}, got ${
            describeValue(given)
          }`,
        ];
      }
      return [`${where}: ${issue.message}, got ${describeValue(input)}`];
    }
    case "too_small":
    case "too_big":
    case "not_multiple_of":
    case "invalid_format":
      return [`${where}: ${lowerFirst(issue.message)}, got ${describeValue(input)}`];
    default:
      if (input === undefined || issue.message.includes(", got ")) {
        return [`${where}: ${issue.message}`];
      }
      return [`${where}: ${issue.message}, got ${describeValue(input)}`];
  }
}

function lowerFirst(text: string): string {
  return text.charAt(0).toLowerCase() + text.slice(1);
}

/** All problem lines of a zod error, in issue order. */
export function zodProblems(error: z.ZodError, prefix: readonly PropertyKey[] = []): string[] {
  return error.issues.flatMap((issue) => formatIssue(issue, prefix));
}
