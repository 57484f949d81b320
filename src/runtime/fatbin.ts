/**
 * CUDA fat binaries inside a shared library (the `.nv_fatbin` section): list
 * the device-code images per GPU architecture, and blank the images a given
 * GPU will never load.
 *
 * The section holds containers (16-byte header, magic 0xBA55ED50, then the
 * size of what follows); each container holds entries (a header of 64 bytes
 * or more giving kind, architecture and payload size, then the payload padded
 * to 8 bytes). Layout as documented by public reverse engineering of
 * cuobjdump (e.g. nvopen-tools' FORMAT_SPECIFICATION.md).
 *
 * Pruning does not move anything: the runtime registers every container by
 * its address, so the file keeps its size and every header, and only the
 * payloads of the other architectures are overwritten with zeros. xz then
 * compresses those zeros to almost nothing.
 */
import { elfSections } from "./elf.ts";

/** One device-code image in a fat binary. */
export interface FatbinEntry {
  /** Index of the container holding it. */
  container: number;
  kind: "ptx" | "elf" | "other";
  /** Architecture number: 90 for sm_90 / compute_90. */
  arch: number;
  /** File offset of the payload. */
  payloadOffset: number;
  /** Payload bytes including the padding to 8 bytes. */
  payloadSize: number;
}

/** Summary of one architecture's images. */
export interface FatbinArchSummary {
  arch: number;
  elfEntries: number;
  elfBytes: number;
  ptxEntries: number;
  ptxBytes: number;
}

const FATBIN_MAGIC = 0xba55ed50;
const CONTAINER_HEADER = 16;
const ENTRY_HEADER_MIN = 64;
const READ_CHUNK = 1 << 20;

/** Lists the device-code images of `path`'s `.nv_fatbin` section. */
export async function fatbinEntries(path: string): Promise<FatbinEntry[]> {
  const section = (await elfSections(path)).find((s) => s.name === ".nv_fatbin");
  if (!section) throw new Error(`${path}: no .nv_fatbin section (no CUDA device code to prune)`);
  const file = await Deno.open(path, { read: true });
  try {
    const read = async (offset: number, length: number): Promise<DataView> => {
      const bytes = new Uint8Array(length);
      await file.seek(offset, Deno.SeekMode.Start);
      let filled = 0;
      while (filled < length) {
        const n = await file.read(bytes.subarray(filled, Math.min(length, filled + READ_CHUNK)));
        if (n === null) throw new Error(`${path}: .nv_fatbin runs past the end of the file`);
        filled += n;
      }
      return new DataView(bytes.buffer);
    };
    const end = section.offset + section.size;
    const entries: FatbinEntry[] = [];
    let at = section.offset;
    let container = 0;
    while (at + CONTAINER_HEADER <= end) {
      const head = await read(at, CONTAINER_HEADER);
      const magic = head.getUint32(0, true);
      if (magic !== FATBIN_MAGIC) {
        // Containers are 8-byte aligned; the gaps between them are zeros.
        if (magic === 0) {
          at += 8;
          continue;
        }
        throw new Error(
          `${path}: unknown fat-binary container magic 0x${
            magic.toString(16)
          } at file offset ${at}`,
        );
      }
      const headerSize = head.getUint16(6, true);
      const bodySize = Number(head.getBigUint64(8, true));
      const containerEnd = at + headerSize + bodySize;
      if (containerEnd > end) {
        throw new Error(`${path}: fat-binary container at ${at} runs past .nv_fatbin`);
      }
      let entryAt = at + headerSize;
      while (entryAt + ENTRY_HEADER_MIN <= containerEnd) {
        const e = await read(entryAt, ENTRY_HEADER_MIN);
        const kindCode = e.getUint16(0, true);
        const entryHeaderSize = e.getUint32(4, true);
        const payloadSize = Number(e.getBigUint64(8, true));
        if (entryHeaderSize < ENTRY_HEADER_MIN) {
          throw new Error(
            `${path}: fat-binary entry at ${entryAt} has header size ${entryHeaderSize}`,
          );
        }
        entries.push({
          container,
          kind: kindCode === 1 ? "ptx" : kindCode === 2 || kindCode === 0x10 ? "elf" : "other",
          arch: e.getUint32(28, true),
          payloadOffset: entryAt + entryHeaderSize,
          payloadSize,
        });
        entryAt += entryHeaderSize + payloadSize;
      }
      if (entryAt !== containerEnd) {
        throw new Error(
          `${path}: fat-binary container at ${at} ends at ${entryAt}, header says ${containerEnd}`,
        );
      }
      at = containerEnd;
      container++;
    }
    return entries;
  } finally {
    file.close();
  }
}

/** Bytes of device code per architecture, sorted by architecture. */
export function summarizeFatbin(entries: FatbinEntry[]): FatbinArchSummary[] {
  const byArch = new Map<number, FatbinArchSummary>();
  for (const e of entries) {
    const s = byArch.get(e.arch) ??
      { arch: e.arch, elfEntries: 0, elfBytes: 0, ptxEntries: 0, ptxBytes: 0 };
    if (e.kind === "ptx") {
      s.ptxEntries++;
      s.ptxBytes += e.payloadSize;
    } else {
      s.elfEntries++;
      s.elfBytes += e.payloadSize;
    }
    byArch.set(e.arch, s);
  }
  return [...byArch.values()].sort((a, b) => a.arch - b.arch);
}

/** NVIDIA GPU architectures (compute capability × 10) that CUDA 12 and 13 know. */
export const KNOWN_SM_ARCHS = [
  50,
  52,
  53,
  60,
  61,
  62,
  70,
  72,
  75,
  80,
  86,
  87,
  88,
  89,
  90,
  100,
  101,
  103,
  110,
  120,
  121,
];

/** Parses "sm_90" (or "90", "sm_90a") into 90; throws naming the value when it is no known architecture. */
export function parseSmArch(value: string): number {
  const match = /^(?:sm_)?(\d{2,3})[af]?$/.exec(value.trim());
  if (!match) throw new Error(`--arch: expected a GPU architecture like sm_90, got "${value}"`);
  const arch = Number(match[1]);
  if (!KNOWN_SM_ARCHS.includes(arch)) {
    throw new Error(
      `--arch: unknown GPU architecture "${value}"; known: ${
        KNOWN_SM_ARCHS.map((a) => `sm_${a}`).join(", ")
      }`,
    );
  }
  return arch;
}

/**
 * Whether a GPU of architecture `gpu` can run a cubin built for `cubin`: the
 * same major version and a minor version not above the GPU's.
 */
export function cubinRunsOn(cubin: number, gpu: number): boolean {
  return Math.floor(cubin / 10) === Math.floor(gpu / 10) && cubin % 10 <= gpu % 10;
}

/**
 * Chooses the images a GPU of architecture `gpu` loads: in each container the
 * cubin of the highest architecture it can run, or, failing one, the PTX of
 * the highest architecture not above its own (which the driver JIT-compiles).
 */
export function entriesToKeep(entries: FatbinEntry[], gpu: number): Set<FatbinEntry> {
  const best = new Map<number, { arch: number; kind: FatbinEntry["kind"] }>();
  const better = (e: FatbinEntry, current?: { arch: number; kind: FatbinEntry["kind"] }) => {
    const rank = (kind: FatbinEntry["kind"]) => (kind === "ptx" ? 0 : 1);
    return !current || rank(e.kind) > rank(current.kind) ||
      (rank(e.kind) === rank(current.kind) && e.arch > current.arch);
  };
  for (const e of entries) {
    const usable = e.kind === "ptx" ? e.arch <= gpu : e.kind === "elf" && cubinRunsOn(e.arch, gpu);
    if (usable && better(e, best.get(e.container))) {
      best.set(e.container, { arch: e.arch, kind: e.kind });
    }
  }
  return new Set(entries.filter((e) => {
    const chosen = best.get(e.container);
    return chosen !== undefined && chosen.arch === e.arch && chosen.kind === e.kind;
  }));
}

/** What {@link pruneFatbin} did. */
export interface PruneResult {
  keptEntries: number;
  keptBytes: number;
  blankedEntries: number;
  blankedBytes: number;
}

/**
 * Copies `source` to `target` with the payloads of every image that a GPU of
 * architecture `gpu` would not load overwritten by zeros. Throws when the
 * library holds no code that GPU can run, naming the architectures it has.
 */
export async function pruneFatbin(
  source: string,
  target: string,
  gpu: number,
): Promise<PruneResult> {
  const entries = await fatbinEntries(source);
  const keep = entriesToKeep(entries, gpu);
  // PTX alone would mean JIT-compiling every kernel at start-up: not a bundle worth making.
  if (![...keep].some((e) => e.kind === "elf")) {
    const archs = summarizeFatbin(entries).map((s) => `sm_${s.arch}`).join(", ");
    throw new Error(`--arch sm_${gpu}: ${source} has no device code for it (it has ${archs})`);
  }
  await Deno.copyFile(source, target);
  const zeros = new Uint8Array(READ_CHUNK);
  const result: PruneResult = { keptEntries: 0, keptBytes: 0, blankedEntries: 0, blankedBytes: 0 };
  const file = await Deno.open(target, { write: true });
  try {
    for (const e of entries) {
      if (keep.has(e)) {
        result.keptEntries++;
        result.keptBytes += e.payloadSize;
        continue;
      }
      result.blankedEntries++;
      result.blankedBytes += e.payloadSize;
      await file.seek(e.payloadOffset, Deno.SeekMode.Start);
      let left = e.payloadSize;
      while (left > 0) {
        const n = await file.write(zeros.subarray(0, Math.min(left, zeros.length)));
        left -= n;
      }
    }
  } finally {
    file.close();
  }
  return result;
}
