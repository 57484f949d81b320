/**
 * Just enough of an ELF64 reader to answer what the dynamic loader would ask
 * of a shared library (which libraries it needs, where it looks for them) and
 * to find a section such as `.nv_fatbin`. Reads by offset, so a 230 MB CUDA
 * provider costs a few small reads, and needs no `readelf`/`ldd` on the host.
 */

/** A section header of an ELF file. */
export interface ElfSection {
  name: string;
  type: number;
  /** File offset of the section's bytes. */
  offset: number;
  size: number;
  /** Virtual address once loaded (0 for sections that are not loaded). */
  address: number;
}

/** What the dynamic section of a shared library or executable says. */
export interface ElfDynamicInfo {
  /** DT_NEEDED entries, in order: the libraries the loader must find. */
  needed: string[];
  /** DT_SONAME, when present. */
  soname?: string;
  /** DT_RUNPATH folders (colon-separated in the file), `$ORIGIN` not expanded. */
  runpath: string[];
  /** DT_RPATH folders (searched before LD_LIBRARY_PATH when there is no RUNPATH). */
  rpath: string[];
}

const DT_NULL = 0;
const DT_NEEDED = 1;
const DT_STRTAB = 5;
const DT_SONAME = 14;
const DT_RPATH = 15;
const DT_RUNPATH = 29;
const PT_LOAD = 1;
const PT_DYNAMIC = 2;

/** Reads byte ranges of a file without loading it whole. */
class RangeReader {
  private constructor(
    private readonly file: Deno.FsFile,
    readonly path: string,
    readonly size: number,
  ) {}

  static async open(path: string): Promise<RangeReader> {
    const file = await Deno.open(path, { read: true });
    const { size } = await file.stat();
    return new RangeReader(file, path, size);
  }

  async read(offset: number, length: number): Promise<DataView> {
    if (offset < 0 || offset + length > this.size) {
      throw new Error(
        `${this.path}: malformed ELF file (reads ${length} bytes at ${offset}, file has ${this.size})`,
      );
    }
    const bytes = new Uint8Array(length);
    await this.file.seek(offset, Deno.SeekMode.Start);
    let filled = 0;
    while (filled < length) {
      const n = await this.file.read(bytes.subarray(filled));
      if (n === null) throw new Error(`${this.path}: unexpected end of file at ${offset + filled}`);
      filled += n;
    }
    return new DataView(bytes.buffer);
  }

  async cString(offset: number, maxLength = 4096): Promise<string> {
    const view = await this.read(offset, Math.min(maxLength, this.size - offset));
    const bytes = new Uint8Array(view.buffer);
    const end = bytes.indexOf(0);
    if (end < 0) throw new Error(`${this.path}: unterminated string at ${offset}`);
    return new TextDecoder().decode(bytes.subarray(0, end));
  }

  close(): void {
    this.file.close();
  }
}

interface ElfHeader {
  phoff: number;
  phentsize: number;
  phnum: number;
  shoff: number;
  shentsize: number;
  shnum: number;
  shstrndx: number;
}

async function readHeader(reader: RangeReader): Promise<ElfHeader> {
  if (reader.size < 64) throw new Error(`${reader.path}: not an ELF file (${reader.size} bytes)`);
  const ident = await reader.read(0, 64);
  const magic = ident.getUint32(0, false);
  if (magic !== 0x7f454c46) throw new Error(`${reader.path}: not an ELF file (no \\x7fELF magic)`);
  if (ident.getUint8(4) !== 2) {
    throw new Error(`${reader.path}: a 32-bit ELF file; expected a 64-bit one`);
  }
  if (ident.getUint8(5) !== 1) {
    throw new Error(`${reader.path}: a big-endian ELF file; expected little-endian`);
  }
  return {
    phoff: Number(ident.getBigUint64(0x20, true)),
    shoff: Number(ident.getBigUint64(0x28, true)),
    phentsize: ident.getUint16(0x36, true),
    phnum: ident.getUint16(0x38, true),
    shentsize: ident.getUint16(0x3a, true),
    shnum: ident.getUint16(0x3c, true),
    shstrndx: ident.getUint16(0x3e, true),
  };
}

async function readSections(reader: RangeReader, header: ElfHeader): Promise<ElfSection[]> {
  if (header.shnum === 0 || header.shoff === 0) return [];
  const table = await reader.read(header.shoff, header.shnum * header.shentsize);
  const raw = Array.from({ length: header.shnum }, (_, i) => {
    const at = i * header.shentsize;
    return {
      nameOffset: table.getUint32(at, true),
      type: table.getUint32(at + 4, true),
      address: Number(table.getBigUint64(at + 0x10, true)),
      offset: Number(table.getBigUint64(at + 0x18, true)),
      size: Number(table.getBigUint64(at + 0x20, true)),
    };
  });
  const names = raw[header.shstrndx];
  if (!names) {
    throw new Error(`${reader.path}: section-name table index ${header.shstrndx} out of range`);
  }
  const nameBytes = new Uint8Array((await reader.read(names.offset, names.size)).buffer);
  const decoder = new TextDecoder();
  return raw.map((s) => {
    const end = nameBytes.indexOf(0, s.nameOffset);
    const name = decoder.decode(nameBytes.subarray(s.nameOffset, end < 0 ? undefined : end));
    return { name, type: s.type, offset: s.offset, size: s.size, address: s.address };
  });
}

/** Lists the section headers of an ELF64 little-endian file. */
export async function elfSections(path: string): Promise<ElfSection[]> {
  const reader = await RangeReader.open(path);
  try {
    return await readSections(reader, await readHeader(reader));
  } finally {
    reader.close();
  }
}

/**
 * Reads the dynamic section the way the loader does: through the program
 * headers (PT_DYNAMIC, with DT_STRTAB mapped through the PT_LOAD segments), so
 * it also works on files whose section headers were stripped.
 */
export async function elfDynamicInfo(path: string): Promise<ElfDynamicInfo> {
  const reader = await RangeReader.open(path);
  try {
    const header = await readHeader(reader);
    const phdrs = await reader.read(header.phoff, header.phnum * header.phentsize);
    const loads: { vaddr: number; offset: number; filesz: number }[] = [];
    let dynamic: { offset: number; size: number } | undefined;
    for (let i = 0; i < header.phnum; i++) {
      const at = i * header.phentsize;
      const type = phdrs.getUint32(at, true);
      const offset = Number(phdrs.getBigUint64(at + 0x08, true));
      const vaddr = Number(phdrs.getBigUint64(at + 0x10, true));
      const filesz = Number(phdrs.getBigUint64(at + 0x20, true));
      if (type === PT_LOAD) loads.push({ vaddr, offset, filesz });
      if (type === PT_DYNAMIC) dynamic = { offset, size: filesz };
    }
    const info: ElfDynamicInfo = { needed: [], runpath: [], rpath: [] };
    if (!dynamic) return info; // a static executable or an object file: needs nothing
    const table = await reader.read(dynamic.offset, dynamic.size);
    const entries: { tag: number; value: number }[] = [];
    let strtabAddress: number | undefined;
    for (let at = 0; at + 16 <= dynamic.size; at += 16) {
      const tag = Number(table.getBigInt64(at, true));
      const value = Number(table.getBigUint64(at + 8, true));
      if (tag === DT_NULL) break;
      if (tag === DT_STRTAB) strtabAddress = value;
      entries.push({ tag, value });
    }
    if (strtabAddress === undefined) throw new Error(`${path}: dynamic section without DT_STRTAB`);
    const segment = loads.find((l) =>
      strtabAddress! >= l.vaddr && strtabAddress! < l.vaddr + l.filesz
    );
    if (!segment) {
      throw new Error(
        `${path}: DT_STRTAB address 0x${strtabAddress.toString(16)} is in no PT_LOAD segment`,
      );
    }
    const strtab = segment.offset + (strtabAddress - segment.vaddr);
    for (const { tag, value } of entries) {
      if (tag === DT_NEEDED) info.needed.push(await reader.cString(strtab + value));
      else if (tag === DT_SONAME) info.soname = await reader.cString(strtab + value);
      else if (tag === DT_RUNPATH) {
        info.runpath.push(...splitPath(await reader.cString(strtab + value)));
      } else if (tag === DT_RPATH) {
        info.rpath.push(...splitPath(await reader.cString(strtab + value)));
      }
    }
    return info;
  } finally {
    reader.close();
  }
}

function splitPath(value: string): string[] {
  return value.split(":").filter((p) => p.length > 0);
}
