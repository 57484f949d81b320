/**
 * Command-line overrides: `--set key.path=value` (value parsed as YAML) and
 * the shorthands `--epochs`, `--device`, `--threads`, `--data-dir`. They edit our-format
 * document (after ETH mapping) and the result is validated again, so an
 * unknown key or a bad value is an error naming the key path.
 */
import { parse as parseYaml } from "yaml";
import { ConfigError, keyPath } from "./errors.ts";
import { type LoadedConfig, parseExperimentConfig } from "./parse.ts";
import { VARIANT_KEYS } from "./schema.ts";

/** Overrides as the CLI collects them. */
export interface ConfigOverrides {
  /** `key.path=value` items, applied in order (array items: `a.b[0]=1` or `a.b.0=1`). */
  set?: readonly string[];
  /** Shorthand for `train.epochs=N`. */
  epochs?: number;
  /** Shorthand for `device=D`. */
  device?: string;
  /** Shorthand for `runtime.threads=T`. */
  threads?: number;
  /** Shorthand for `data.dir=D`. */
  dataDir?: string;
}

/** One parsed `--set` item. */
export interface SetOverride {
  /** Keys and array indices from the root. */
  path: (string | number)[];
  /** The YAML-parsed value. */
  value: unknown;
  /** How the user wrote it, for messages. */
  label: string;
}

/** Splits `a.b[0].c` (or `a.b.0.c`) into keys and indices; throws on empty segments. */
export function parseKeyPath(text: string, label: string): (string | number)[] {
  const path: (string | number)[] = [];
  for (const part of text.split(".")) {
    const match = /^([^[\]]*)((?:\[\d+\])*)$/.exec(part);
    if (match === null || (match[1] === "" && match[2] === "")) {
      throw new ConfigError(label, [
        `"${text}": expected a key path such as loss.temperature or a.b[0]`,
      ]);
    }
    if (match[1] !== "") path.push(/^\d+$/.test(match[1]) ? Number(match[1]) : match[1]);
    for (const index of match[2].matchAll(/\[(\d+)\]/g)) path.push(Number(index[1]));
  }
  return path;
}

/** Parses `key.path=value`; the value is YAML (`0.3`, `sdclr`, `[10, 20]`, `null`, `{k: 20}`). */
export function parseSetOverride(item: string): SetOverride {
  const label = `--set ${item}`;
  const equals = item.indexOf("=");
  if (equals <= 0) throw new ConfigError(label, [`expected key.path=value, got "${item}"`]);
  const path = parseKeyPath(item.slice(0, equals).trim(), label);
  let value: unknown;
  try {
    value = parseYaml(item.slice(equals + 1));
  } catch (error) {
    throw new ConfigError(label, [
      `${keyPath(path)}: value is not valid YAML (${(error as Error).message})`,
    ]);
  }
  return { path, value, label };
}

function isMapping(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/**
 * Sets `path` in `document`. A missing (or non-mapping) intermediate section
 * is first copied from the resolved config, so overriding one default key of
 * a section keeps its other defaults; changing a discriminator (`loss.type`,
 * `augmentation.recipe`, ...) drops the keys the new variant does not have.
 */
function setInDocument(
  document: Record<string, unknown>,
  resolved: unknown,
  override: SetOverride,
): void {
  const { path, value, label } = override;
  let node: unknown = document;
  let shadow: unknown = resolved;
  for (let i = 0; i < path.length - 1; i++) {
    const key = path[i];
    const container = node as Record<string | number, unknown>;
    shadow = (shadow as Record<string | number, unknown> | null)?.[key];
    if (typeof key === "number") {
      if (!Array.isArray(node) || key >= node.length) {
        throw new ConfigError(label, [`${keyPath(path.slice(0, i + 1))}: no such list item`]);
      }
    } else if (!isMapping(container[key]) && !Array.isArray(container[key])) {
      if (isMapping(shadow) || Array.isArray(shadow)) container[key] = structuredClone(shadow);
      else if (container[key] === undefined || container[key] === null) container[key] = {};
      else {
        throw new ConfigError(label, [
          `${keyPath(path.slice(0, i + 1))}: is ${JSON.stringify(container[key])}, not a mapping`,
        ]);
      }
    }
    node = container[key];
  }
  const last = path[path.length - 1];
  if (typeof last === "number") {
    if (!Array.isArray(node) || last >= node.length) {
      throw new ConfigError(label, [`${keyPath(path)}: no such list item`]);
    }
    node[last] = value;
    return;
  }
  if (!isMapping(node)) {
    throw new ConfigError(label, [`${keyPath(path.slice(0, -1))}: not a mapping`]);
  }
  const variants = VARIANT_KEYS[path.join(".")];
  const previous = node[last] ?? (shadow as Record<string, unknown> | null)?.[last];
  if (
    variants !== undefined && typeof value === "string" && value !== previous &&
    variants[value] !== undefined
  ) {
    for (const key of Object.keys(node)) if (!variants[value].includes(key)) delete node[key];
  }
  node[last] = value;
}

/**
 * Applies overrides (all `--set` items in order, then `--epochs`, `--device`,
 * `--threads`, `--data-dir`) and validates the result; throws one ConfigError naming the
 * source, the overrides and each bad key path.
 */
export function applyOverrides(loaded: LoadedConfig, overrides: ConfigOverrides): LoadedConfig {
  const items = (overrides.set ?? []).map(parseSetOverride);
  if (overrides.epochs !== undefined) {
    items.push({
      path: ["train", "epochs"],
      value: overrides.epochs,
      label: `--epochs ${overrides.epochs}`,
    });
  }
  if (overrides.device !== undefined) {
    items.push({
      path: ["device"],
      value: overrides.device,
      label: `--device ${overrides.device}`,
    });
  }
  if (overrides.threads !== undefined) {
    items.push({
      path: ["runtime", "threads"],
      value: overrides.threads,
      label: `--threads ${overrides.threads}`,
    });
  }
  if (overrides.dataDir !== undefined) {
    items.push({
      path: ["data", "dir"],
      value: overrides.dataDir,
      label: `--data-dir ${overrides.dataDir}`,
    });
  }
  if (items.length === 0) return loaded;
  const document = structuredClone(loaded.document);
  for (const item of items) setInDocument(document, loaded.config, item);
  const source = `${loaded.source} (with ${items.map((item) => item.label).join(", ")})`;
  const config = parseExperimentConfig(document, source);
  const applied = items.map((item) => `${keyPath(item.path)}=${JSON.stringify(item.value)}`);
  return { ...loaded, config, document, overrides: [...loaded.overrides, ...applied] };
}
