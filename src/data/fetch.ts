/**
 * `data fetch`: downloads an official CIFAR archive when the user asks, verifies its MD5, and
 * unpacks it. Offline, it fails with one message that says where to put the files by hand.
 * Downloads go to a temporary file renamed on success; a failed download or unpack leaves nothing
 * behind.
 */

import { createHash } from "node:crypto";
import * as tar from "tar";
import { CIFAR_FOLDERS, type CifarFormat, type CifarName, findCifarFiles } from "./cifar.ts";
import { exists } from "./files.ts";

/** Official archive names and MD5 sums (as torchvision lists them). */
export const CIFAR_ARCHIVES: Record<
  CifarName,
  Partial<Record<CifarFormat, { file: string; md5: string }>>
> = {
  cifar10: {
    python: { file: "cifar-10-python.tar.gz", md5: "c58f30108f718f92721af3b95e74349a" },
    binary: { file: "cifar-10-binary.tar.gz", md5: "c32a1d4ab5d03f1284b67883e8d87530" },
  },
  cifar100: {
    python: { file: "cifar-100-python.tar.gz", md5: "eb9058c3a382ffc7106e4002c42a8d85" },
  },
};

/** Where the official archives are served. */
export const CIFAR_BASE_URL = "https://www.cs.toronto.edu/~kriz";

/** Options of {@link dataFetchCommand}. */
export interface DataFetchOptions {
  dataset: CifarName;
  /** Folder that receives the archive and the unpacked official folder. */
  dir: string;
  /** Default "python". */
  format?: CifarFormat;
  /** Default {@link CIFAR_BASE_URL}. */
  baseUrl?: string;
  /** @internal Expected MD5 instead of the official one (tests serve small archives). */
  expectedMd5?: string;
  /** Progress messages (default: console.error). */
  log?: (message: string) => void;
}

/** What {@link dataFetchCommand} did. */
export interface DataFetchResult {
  /** The unpacked official folder. */
  folder: string;
  archive: string;
  downloaded: boolean;
}

async function md5OfFile(path: string): Promise<string> {
  const hash = createHash("md5");
  using file = await Deno.open(path);
  for await (const chunk of file.readable) hash.update(chunk);
  return hash.digest("hex");
}

async function download(
  url: string,
  temp: string,
  manual: string,
  log: (m: string) => void,
): Promise<string> {
  let response: Response;
  try {
    response = await fetch(url);
  } catch (error) {
    throw new Error(`cannot download ${url} (${(error as Error).message}). ${manual}`);
  }
  if (!response.ok || !response.body) {
    await response.body?.cancel();
    throw new Error(
      `cannot download ${url}: HTTP ${response.status} ${response.statusText}. ${manual}`,
    );
  }
  const declared = Number(response.headers.get("content-length") ?? NaN);
  log(
    `downloading ${url}${Number.isFinite(declared) ? ` (${(declared / 1e6).toFixed(1)} MB)` : ""}`,
  );
  const hash = createHash("md5");
  let received = 0;
  const file = await Deno.open(temp, { write: true, createNew: true });
  try {
    for await (const chunk of response.body) {
      hash.update(chunk);
      received += chunk.length;
      let written = 0;
      while (written < chunk.length) written += await file.write(chunk.subarray(written));
    }
  } catch (error) {
    throw new Error(
      `download of ${url} broke off after ${received} bytes (${
        (error as Error).message
      }). ${manual}`,
    );
  } finally {
    file.close();
  }
  if (Number.isFinite(declared) && received !== declared) {
    throw new Error(`download of ${url} is truncated: ${received} of ${declared} bytes. ${manual}`);
  }
  return hash.digest("hex");
}

async function unpack(archive: string, dir: string, folder: string): Promise<void> {
  const staging = `${dir}/.unpack-${crypto.randomUUID().slice(0, 8)}`;
  await Deno.mkdir(staging);
  try {
    try {
      await tar.x({ file: archive, cwd: staging, strict: true });
    } catch (error) {
      throw new Error(`${archive}: corrupt or truncated archive (${(error as Error).message})`);
    }
    if (!(await exists(`${staging}/${folder}`))) {
      throw new Error(`${archive}: the archive holds no ${folder}/ folder`);
    }
    await Deno.rename(`${staging}/${folder}`, `${dir}/${folder}`);
  } finally {
    await Deno.remove(staging, { recursive: true }).catch(() => {});
  }
}

async function alreadyUnpacked(
  dataset: CifarName,
  dir: string,
  format: CifarFormat,
): Promise<boolean> {
  try {
    const folder = `${dir}/${CIFAR_FOLDERS[dataset][format]}`;
    if (!(await exists(folder))) return false;
    await findCifarFiles({ dataset, split: "train", dir: folder, format });
    await findCifarFiles({ dataset, split: "test", dir: folder, format });
    return true;
  } catch {
    return false;
  }
}

/**
 * Makes `dir/<official folder>` (e.g. `data/cifar-10-batches-py`) from the official archive:
 * nothing to do if it is there; an archive already in `dir` is verified and unpacked; otherwise
 * it is downloaded (MD5-checked) first.
 */
export async function dataFetchCommand(options: DataFetchOptions): Promise<DataFetchResult> {
  const { dataset, dir } = options;
  const format = options.format ?? "python";
  const log = options.log ?? ((message: string) => console.error(message));
  const entry = CIFAR_ARCHIVES[dataset]?.[format];
  if (!entry) {
    throw new Error(`data fetch: no known ${format} archive for ${dataset} (use --format python)`);
  }
  const folder = CIFAR_FOLDERS[dataset][format];
  const md5 = options.expectedMd5 ?? entry.md5;
  const archive = `${dir}/${entry.file}`;
  const url = `${options.baseUrl ?? CIFAR_BASE_URL}/${entry.file}`;
  const result = { folder: `${dir}/${folder}`, archive, downloaded: false };
  if (await alreadyUnpacked(dataset, dir, format)) {
    log(`${dir}/${folder} is already there`);
    return result;
  }
  const manual = `If this machine is offline, download ${url} elsewhere and put it at ${archive} ` +
    `(md5 ${md5}), or unpack it so that ${dir}/${folder}/ exists, then run the command again.`;
  await Deno.mkdir(dir, { recursive: true });

  if (await exists(archive)) {
    const found = await md5OfFile(archive);
    if (found !== md5) {
      throw new Error(`${archive} has md5 ${found}, expected ${md5}: delete it and fetch again`);
    }
  } else {
    const temp = `${archive}.${crypto.randomUUID().slice(0, 8)}.tmp`;
    try {
      const found = await download(url, temp, manual, log);
      if (found !== md5) {
        throw new Error(
          `${url}: downloaded file has md5 ${found}, expected ${md5} (corrupt download?)`,
        );
      }
      await Deno.rename(temp, archive);
      result.downloaded = true;
    } finally {
      await Deno.remove(temp).catch(() => {});
    }
  }
  try {
    await unpack(archive, dir, folder);
  } catch (error) {
    if (result.downloaded) await Deno.remove(archive).catch(() => {});
    throw error;
  }
  log(`unpacked ${archive} into ${dir}/${folder}`);
  return result;
}
