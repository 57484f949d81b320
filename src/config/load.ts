/** Reading config files of either format from disk. */
import { parse as parseYaml } from "yaml";
import { ConfigError } from "./errors.ts";
import { isEthDocument } from "./eth.ts";
import { applyOverrides, type ConfigOverrides } from "./overrides.ts";
import { type LoadedConfig, parseConfigDocument } from "./parse.ts";

function parseYamlText(text: string, source: string, version: "1.1" | "1.2"): unknown {
  try {
    return parseYaml(text, { version });
  } catch (error) {
    throw new ConfigError(source, [`not valid YAML: ${(error as Error).message}`]);
  }
}

/**
 * Parses config text of either format. ETH files are read as YAML 1.1, as
 * PyYAML reads them (so `True`, `yes`, `None` come out as in the original's dict).
 */
export function parseConfigText(text: string, source: string): LoadedConfig {
  let document = parseYamlText(text, source, "1.2");
  if (isEthDocument(document)) document = parseYamlText(text, source, "1.1");
  return parseConfigDocument(document, source);
}

/**
 * Reads, validates and maps a config file (our format or ETH), then applies
 * overrides. Throws one ConfigError naming the file and every bad key path.
 */
export async function loadConfig(path: string, overrides?: ConfigOverrides): Promise<LoadedConfig> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    throw new ConfigError(path, [`cannot read the config file (${(error as Error).message})`]);
  }
  const loaded = parseConfigText(text, path);
  return overrides === undefined ? loaded : applyOverrides(loaded, overrides);
}
