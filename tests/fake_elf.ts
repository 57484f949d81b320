/**
 * Small synthetic ELF64 shared libraries for the runtime tests: a dynamic
 * section with DT_NEEDED / DT_RUNPATH entries and, optionally, an
 * `.nv_fatbin` section with one container per given group of device images.
 */

/** One device-code image of a fake fat binary. */
export interface FakeImage {
  kind: "elf" | "ptx";
  arch: number;
  /** Payload size in bytes; the payload repeats the byte `arch`. */
  size: number;
}

/** What to put in a fake library. */
export interface FakeElfSpec {
  needed?: string[];
  runpath?: string;
  /** Fat-binary containers, each a list of images. */
  fatbin?: FakeImage[][];
}

const align8 = (n: number) => Math.ceil(n / 8) * 8;

function fatbinBytes(containers: FakeImage[][]): Uint8Array {
  const chunks: Uint8Array[] = [];
  for (const images of containers) {
    const body = images.reduce((n, img) => n + 64 + align8(img.size), 0);
    const head = new DataView(new ArrayBuffer(16));
    head.setUint32(0, 0xba55ed50, true);
    head.setUint16(4, 1, true);
    head.setUint16(6, 16, true);
    head.setBigUint64(8, BigInt(body), true);
    chunks.push(new Uint8Array(head.buffer));
    for (const img of images) {
      const entry = new DataView(new ArrayBuffer(64));
      entry.setUint16(0, img.kind === "ptx" ? 1 : 2, true);
      entry.setUint16(2, 0x0101, true);
      entry.setUint32(4, 64, true);
      entry.setBigUint64(8, BigInt(align8(img.size)), true);
      entry.setUint32(16, img.size, true);
      entry.setUint32(28, img.arch, true);
      chunks.push(new Uint8Array(entry.buffer));
      const payload = new Uint8Array(align8(img.size));
      payload.fill(img.arch, 0, img.size);
      chunks.push(payload);
    }
  }
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** Bytes of an ELF64 little-endian shared object matching `spec`. */
export function fakeElf(spec: FakeElfSpec = {}): Uint8Array {
  const encoder = new TextEncoder();
  // .dynstr
  const strings = [""];
  const offsetOf = (s: string) =>
    strings.slice(0, strings.indexOf(s)).reduce((n, x) => n + x.length + 1, 0);
  for (const s of [...(spec.needed ?? []), ...(spec.runpath ? [spec.runpath] : [])]) {
    strings.push(s);
  }
  const dynstr = encoder.encode(strings.join("\0") + "\0");
  const fatbin = fatbinBytes(spec.fatbin ?? []);
  const shstr = encoder.encode("\0.dynstr\0.dynamic\0.nv_fatbin\0.shstrtab\0");
  const shName = { dynstr: 1, dynamic: 9, fatbin: 18, shstrtab: 29 };

  const phoff = 64;
  const phnum = 2;
  const dynstrOff = phoff + phnum * 56;
  const dynEntries: [number, number][] = [
    ...(spec.needed ?? []).map((n) => [1, offsetOf(n)] as [number, number]),
    ...(spec.runpath ? [[29, offsetOf(spec.runpath)] as [number, number]] : []),
    [5, dynstrOff], // DT_STRTAB: virtual address == file offset here
    [0, 0],
  ];
  const dynamicOff = align8(dynstrOff + dynstr.length);
  const dynamicSize = dynEntries.length * 16;
  const fatbinOff = align8(dynamicOff + dynamicSize);
  const shstrOff = fatbinOff + fatbin.length;
  const shoff = align8(shstrOff + shstr.length);
  const sections = [
    { name: 0, type: 0, offset: 0, size: 0, link: 0 },
    { name: shName.dynstr, type: 3, offset: dynstrOff, size: dynstr.length, link: 0 },
    { name: shName.dynamic, type: 6, offset: dynamicOff, size: dynamicSize, link: 1 },
    { name: shName.fatbin, type: 1, offset: fatbinOff, size: fatbin.length, link: 0 },
    { name: shName.shstrtab, type: 3, offset: shstrOff, size: shstr.length, link: 0 },
  ];
  const total = shoff + sections.length * 64;
  const bytes = new Uint8Array(total);
  const v = new DataView(bytes.buffer);
  bytes.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1], 0);
  v.setUint16(0x10, 3, true); // ET_DYN
  v.setUint16(0x12, 62, true); // x86-64
  v.setUint32(0x14, 1, true);
  v.setBigUint64(0x20, BigInt(phoff), true);
  v.setBigUint64(0x28, BigInt(shoff), true);
  v.setUint16(0x34, 64, true);
  v.setUint16(0x36, 56, true);
  v.setUint16(0x38, phnum, true);
  v.setUint16(0x3a, 64, true);
  v.setUint16(0x3c, sections.length, true);
  v.setUint16(0x3e, 4, true);
  const phdr = (i: number, type: number, offset: number, size: number) => {
    const at = phoff + i * 56;
    v.setUint32(at, type, true);
    v.setBigUint64(at + 0x08, BigInt(offset), true);
    v.setBigUint64(at + 0x10, BigInt(offset), true);
    v.setBigUint64(at + 0x18, BigInt(offset), true);
    v.setBigUint64(at + 0x20, BigInt(size), true);
    v.setBigUint64(at + 0x28, BigInt(size), true);
  };
  phdr(0, 1, 0, total); // PT_LOAD of the whole file
  phdr(1, 2, dynamicOff, dynamicSize); // PT_DYNAMIC
  bytes.set(dynstr, dynstrOff);
  dynEntries.forEach(([tag, value], i) => {
    v.setBigInt64(dynamicOff + i * 16, BigInt(tag), true);
    v.setBigUint64(dynamicOff + i * 16 + 8, BigInt(value), true);
  });
  bytes.set(fatbin, fatbinOff);
  bytes.set(shstr, shstrOff);
  sections.forEach((s, i) => {
    const at = shoff + i * 64;
    v.setUint32(at, s.name, true);
    v.setUint32(at + 4, s.type, true);
    v.setBigUint64(at + 0x18, BigInt(s.offset), true);
    v.setBigUint64(at + 0x20, BigInt(s.size), true);
    v.setUint32(at + 0x28, s.link, true);
  });
  return bytes;
}
