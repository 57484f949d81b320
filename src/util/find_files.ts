/** Files named on a command line: as given, by directory, or by glob pattern. */
import { glob } from "node:fs/promises";
import { join } from "node:path";

const GLOB_CHARS = /[*?[\]{}]/;

/** Which files {@link findFiles} collects from directories and patterns. */
export interface FileKind {
  /** File name endings that count, e.g. [".json"]. */
  extensions: readonly string[];
  /** How error messages name them, e.g. ".json logs". */
  what: string;
}

/**
 * The files named by `inputs`: files as given, directories by their files of `kind`,
 * glob patterns (`*`, `?`, `[...]`, `{a,b}`, `**`) by what they match (files of `kind` only);
 * sorted naturally within each input (split2 before split10), duplicates dropped.
 * An input that names nothing is an error naming it.
 */
export async function findFiles(inputs: readonly string[], kind: FileKind): Promise<string[]> {
  const fits = (path: string) => kind.extensions.some((ext) => path.endsWith(ext));
  const found = new Set<string>();
  for (const input of inputs) {
    let matches: string[] = [];
    if (GLOB_CHARS.test(input)) {
      for await (const path of glob(input)) if (fits(path)) matches.push(path);
      if (matches.length === 0) throw new Error(`${input}: no ${kind.what} match this pattern`);
    } else {
      let info: Deno.FileInfo;
      try {
        info = await Deno.stat(input);
      } catch {
        throw new Error(`${input}: no such file or directory`);
      }
      if (info.isDirectory) {
        for await (const entry of Deno.readDir(input)) {
          if (entry.isFile && fits(entry.name)) matches.push(join(input, entry.name));
        }
        if (matches.length === 0) throw new Error(`${input}: a directory without ${kind.what}`);
      } else {
        matches = [input];
      }
    }
    matches.sort(new Intl.Collator("en", { numeric: true }).compare);
    for (const path of matches) found.add(path);
  }
  return [...found];
}
