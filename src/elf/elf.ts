/**
 * A reader for 64-bit little-endian ELF files (x86-64, aarch64, …): just what a package build needs
 * to know about a binary, the way `readelf -h -l -d -n -S` shows it:
 *
 *  - the ELF header (type, machine, where the program and section header tables are);
 *  - PT_INTERP, the dynamic loader a program asks for (`/lib64/ld-linux-x86-64.so.2`);
 *  - PT_DYNAMIC: DT_NEEDED (the shared libraries it links), DT_SONAME, DT_RUNPATH and DT_RPATH —
 *    their strings live in the dynamic string table, which DT_STRTAB gives as a *virtual address*,
 *    mapped back to a file offset through the PT_LOAD segments;
 *  - the GNU build-id (NT_GNU_BUILD_ID), from a PT_NOTE segment, or from a SHT_NOTE section in files
 *    without program headers (object files, split debug files);
 *  - the section headers with their names (from the section-name string table).
 *
 * Every file is untrusted (a package may ship anything that starts with \x7fELF): each offset and
 * size is read as a 64-bit number, rejected above 2^53, and checked against the file before it is
 * used; counts are checked against the bytes they would occupy before anything is allocated; strings
 * end within their table. A bad file throws SquashfsError (BAD_MAGIC, UNSUPPORTED, CORRUPT,
 * OUT_OF_BOUNDS) naming the structure and the file offset; nothing else is ever thrown.
 */
import * as fs from 'node:fs';
import { SquashfsError, type ErrorCode } from '../errors';

/** Positional reads over a file or a buffer. */
export interface ElfSource {
  readonly size: number;
  /** Exactly `length` bytes at `offset` (callers check bounds first). */
  read(offset: number, length: number): Uint8Array;
}

export const ELF_MAGIC = [0x7f, 0x45, 0x4c, 0x46];
const EHDR_SIZE = 64;
const PHDR_SIZE = 56;
const SHDR_SIZE = 64;
const DYN_SIZE = 16;

export const PT = { LOAD: 1, DYNAMIC: 2, INTERP: 3, NOTE: 4 } as const;
export const DT = { NULL: 0, NEEDED: 1, STRTAB: 5, STRSZ: 10, SONAME: 14, RPATH: 15, RUNPATH: 29 } as const;
const SHT_NOTE = 7;
const SHT_NOBITS = 8;
const NT_GNU_BUILD_ID = 3;
const PN_XNUM = 0xffff;
const SHN_XINDEX = 0xffff;
/** Limits that keep a hostile header from making us do unbounded work. */
const MAX_STRING = 64 * 1024;
const MAX_NOTES_BYTES = 16 << 20;
const MAX_STRTAB = 256 << 20;

export const ET_NAMES: Record<number, string> = { 0: 'NONE', 1: 'REL', 2: 'EXEC', 3: 'DYN', 4: 'CORE' };

export interface ProgramHeader {
  type: number;
  flags: number;
  offset: number;
  vaddr: number;
  filesz: number;
  memsz: number;
}

export interface SectionHeader {
  name: string;
  type: number;
  offset: number;
  size: number;
  link: number;
  info: number;
}

export interface ElfInfo {
  /** e_type: 1 REL, 2 EXEC, 3 DYN (shared objects and PIE programs), 4 CORE. */
  type: number;
  machine: number;
  entry: number;
  programHeaders: ProgramHeader[];
  sections: SectionHeader[];
  /** PT_INTERP without its NUL, or undefined. */
  interp?: string;
  /** Whether there is a PT_DYNAMIC segment (a static program has none). */
  dynamic: boolean;
  needed: string[];
  soname?: string;
  /** DT_RUNPATH and DT_RPATH, split at ':' (empty entries dropped). */
  runpath: string[];
  rpath: string[];
  /** The GNU build-id as lower-case hex. */
  buildId?: string;
}

function fail(code: ErrorCode, structure: string, offset: number | undefined, message: string): never {
  throw new SquashfsError(code, message, structure, offset);
}

/** Whether the first bytes are the ELF magic (cheap test before parsing). */
export function hasElfMagic(head: Uint8Array): boolean {
  return head.length >= 4 && ELF_MAGIC.every((b, i) => head[i] === b);
}

class Reader {
  constructor(private readonly src: ElfSource) {}

  get size(): number {
    return this.src.size;
  }

  /** `length` bytes at `offset`, after checking they lie inside the file. */
  bytes(offset: number, length: number, structure: string): Uint8Array {
    if (!(Number.isSafeInteger(offset) && Number.isSafeInteger(length) && offset >= 0 && length >= 0 && offset + length <= this.src.size)) {
      fail('OUT_OF_BOUNDS', structure, offset, `${length} bytes at offset ${offset} are outside the file (${this.src.size} bytes)`);
    }
    const b = this.src.read(offset, length);
    if (b.length !== length) fail('IO', structure, offset, `short read: ${b.length} of ${length} bytes`);
    return b;
  }
}

function view(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

/** A 64-bit field as a number; values above 2^53 cannot be file offsets or sizes here. */
function u64(dv: DataView, at: number, structure: string, fileOffset: number, field: string): number {
  const v = dv.getBigUint64(at, true);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) fail('OVERFLOW', structure, fileOffset + at, `${field} 0x${v.toString(16)} is beyond 2^53`);
  return Number(v);
}

/** The NUL-terminated string at `index` of a string table held in `table` (at file offset `tableAt`). */
function cString(table: Uint8Array, tableAt: number, index: number, structure: string): string {
  if (!(index >= 0 && index < table.length)) fail('OUT_OF_BOUNDS', structure, tableAt, `string index ${index} is outside the table (${table.length} bytes)`);
  const nul = table.indexOf(0, index);
  if (nul < 0 || nul - index > MAX_STRING) fail('CORRUPT', structure, tableAt + index, `string at index ${index} is not NUL-terminated within its table`);
  return Buffer.from(table.buffer, table.byteOffset + index, nul - index).toString('utf8');
}

/** Parses the headers, PT_INTERP, PT_DYNAMIC and the build-id of an ELF64 little-endian file. */
export function parseElf(src: ElfSource): ElfInfo {
  const r = new Reader(src);
  const EH = 'ELF header';
  if (src.size < 4 || !hasElfMagic(r.bytes(0, 4, EH))) fail('BAD_MAGIC', EH, 0, 'not an ELF file (no \\x7fELF magic)');
  if (src.size < EHDR_SIZE) fail('OUT_OF_BOUNDS', EH, 0, `file of ${src.size} bytes is shorter than the 64-byte ELF64 header`);
  const h = r.bytes(0, EHDR_SIZE, EH);
  const dv = view(h);
  if (h[4] !== 2) fail('UNSUPPORTED', EH, 4, h[4] === 1 ? '32-bit ELF (ELFCLASS32); only ELF64 is read' : `bad ELF class ${h[4]}`);
  if (h[5] !== 1) fail('UNSUPPORTED', EH, 5, h[5] === 2 ? 'big-endian ELF (ELFDATA2MSB); only little-endian is read' : `bad ELF data encoding ${h[5]}`);
  if (h[6] !== 1) fail('CORRUPT', EH, 6, `ELF version ${h[6]} is not 1`);
  const type = dv.getUint16(16, true);
  const machine = dv.getUint16(18, true);
  const entry = Number(dv.getBigUint64(24, true) & BigInt(Number.MAX_SAFE_INTEGER));
  const phoff = u64(dv, 32, EH, 0, 'e_phoff');
  const shoff = u64(dv, 40, EH, 0, 'e_shoff');
  const ehsize = dv.getUint16(52, true);
  const phentsize = dv.getUint16(54, true);
  let phnum = dv.getUint16(56, true);
  const shentsize = dv.getUint16(58, true);
  let shnum = dv.getUint16(60, true);
  let shstrndx = dv.getUint16(62, true);
  if (ehsize < EHDR_SIZE) fail('CORRUPT', EH, 52, `e_ehsize ${ehsize} is smaller than 64`);

  // Section 0 carries the real counts when they do not fit in 16 bits.
  let section0: DataView | undefined;
  if (shoff !== 0) {
    if (shentsize < SHDR_SIZE) fail('CORRUPT', EH, 58, `e_shentsize ${shentsize} is smaller than 64`);
    section0 = view(r.bytes(shoff, SHDR_SIZE, 'section header'));
    if (shnum === 0) shnum = u64(section0, 32, 'section header', shoff, 'sh_size (section count)');
    if (shstrndx === SHN_XINDEX) shstrndx = section0.getUint32(40, true);
  } else {
    shnum = 0;
  }
  if (phnum === PN_XNUM) {
    if (!section0) fail('CORRUPT', EH, 56, 'e_phnum is PN_XNUM but there is no section 0 to hold the count');
    phnum = section0.getUint32(44, true);
  }

  const programHeaders: ProgramHeader[] = [];
  if (phnum > 0) {
    if (phentsize < PHDR_SIZE) fail('CORRUPT', EH, 54, `e_phentsize ${phentsize} is smaller than 56`);
    if (phnum * phentsize > src.size - Math.min(phoff, src.size)) {
      fail('OUT_OF_BOUNDS', 'program header', phoff, `${phnum} program headers of ${phentsize} bytes at ${phoff} do not fit in the file (${src.size} bytes)`);
    }
    const table = r.bytes(phoff, phnum * phentsize, 'program header');
    const tv = view(table);
    for (let i = 0; i < phnum; i++) {
      const at = i * phentsize;
      programHeaders.push({
        type: tv.getUint32(at, true),
        flags: tv.getUint32(at + 4, true),
        offset: u64(tv, at + 8, 'program header', phoff, 'p_offset'),
        vaddr: u64(tv, at + 16, 'program header', phoff, 'p_vaddr'),
        filesz: u64(tv, at + 32, 'program header', phoff, 'p_filesz'),
        memsz: u64(tv, at + 40, 'program header', phoff, 'p_memsz'),
      });
    }
  }

  const sections = readSections(r, shoff, shnum, shentsize, shstrndx);
  const info: ElfInfo = { type, machine, entry, programHeaders, sections, dynamic: false, needed: [], runpath: [], rpath: [] };

  // A split debug file keeps the program headers but not the bytes (p_filesz 0): nothing to read.
  const interp = programHeaders.find((p) => p.type === PT.INTERP && p.filesz > 0);
  if (interp) {
    const S = 'PT_INTERP';
    if (interp.filesz > 4096) fail('CORRUPT', S, interp.offset, `interpreter path of ${interp.filesz} bytes`);
    const b = r.bytes(interp.offset, interp.filesz, S);
    const nul = b.indexOf(0);
    if (nul < 0) fail('CORRUPT', S, interp.offset, 'interpreter path is not NUL-terminated');
    info.interp = Buffer.from(b.buffer, b.byteOffset, nul).toString('utf8');
  }

  const dyn = programHeaders.find((p) => p.type === PT.DYNAMIC && p.filesz > 0);
  if (dyn) {
    info.dynamic = true;
    readDynamic(r, dyn, programHeaders, info);
  }

  info.buildId = findBuildId(r, programHeaders, sections);
  return info;
}

function readSections(r: Reader, shoff: number, shnum: number, shentsize: number, shstrndx: number): SectionHeader[] {
  const S = 'section header';
  if (shnum === 0) return [];
  if (shnum * shentsize > r.size - Math.min(shoff, r.size)) {
    fail('OUT_OF_BOUNDS', S, shoff, `${shnum} section headers of ${shentsize} bytes at ${shoff} do not fit in the file (${r.size} bytes)`);
  }
  const table = view(r.bytes(shoff, shnum * shentsize, S));
  const raw: (SectionHeader & { nameIndex: number })[] = [];
  for (let i = 0; i < shnum; i++) {
    const at = i * shentsize;
    raw.push({
      name: '',
      nameIndex: table.getUint32(at, true),
      type: table.getUint32(at + 4, true),
      offset: u64(table, at + 24, S, shoff, 'sh_offset'),
      size: u64(table, at + 32, S, shoff, 'sh_size'),
      link: table.getUint32(at + 40, true),
      info: table.getUint32(at + 44, true),
    });
  }
  if (shstrndx !== 0) {
    if (shstrndx >= shnum) fail('OUT_OF_BOUNDS', 'ELF header', 62, `e_shstrndx ${shstrndx} is not below the section count ${shnum}`);
    const strtab = raw[shstrndx]!;
    if (strtab.type === SHT_NOBITS || strtab.offset + strtab.size > r.size) {
      fail('OUT_OF_BOUNDS', 'section name table', strtab.offset, `section name table of ${strtab.size} bytes at ${strtab.offset} is outside the file`);
    }
    // Read the whole name table once (bounded by the file), then cut names out of it.
    const names = r.bytes(strtab.offset, strtab.size, 'section name table');
    for (const s of raw) {
      if (s.nameIndex === 0) continue;
      if (s.nameIndex >= names.length) fail('OUT_OF_BOUNDS', 'section name table', strtab.offset + s.nameIndex, `section name index ${s.nameIndex} is outside the table (${names.length} bytes)`);
      const nul = names.indexOf(0, s.nameIndex);
      if (nul < 0) fail('CORRUPT', 'section name table', strtab.offset + s.nameIndex, 'section name is not NUL-terminated');
      s.name = Buffer.from(names.buffer, names.byteOffset + s.nameIndex, nul - s.nameIndex).toString('utf8');
    }
  }
  return raw.map(({ nameIndex: _n, ...s }) => s);
}

/** The file offset of virtual address `addr`, through the PT_LOAD segment that maps it from the file. */
function vaddrToOffset(phdrs: ProgramHeader[], addr: number): number | undefined {
  for (const p of phdrs) {
    if (p.type === PT.LOAD && addr >= p.vaddr && addr - p.vaddr < p.filesz) return p.offset + (addr - p.vaddr);
  }
  return undefined;
}

function readDynamic(r: Reader, dyn: ProgramHeader, phdrs: ProgramHeader[], info: ElfInfo): void {
  const S = 'dynamic section';
  const count = Math.floor(dyn.filesz / DYN_SIZE);
  const table = view(r.bytes(dyn.offset, count * DYN_SIZE, S));
  const needed: number[] = [];
  const runpath: number[] = [];
  const rpath: number[] = [];
  let soname: number | undefined;
  let strtab: number | undefined;
  let strsz: number | undefined;
  for (let i = 0; i < count; i++) {
    const at = i * DYN_SIZE;
    const tag = table.getBigInt64(at, true);
    if (tag === 0n) break; // DT_NULL ends the table
    if (tag > 0x7fffffffn || tag < 0n) continue; // OS- and processor-specific tags: not ours
    const val = table.getBigUint64(at + 8, true);
    const small = val <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(val) : -1;
    switch (Number(tag)) {
      case DT.NEEDED:
        needed.push(small);
        break;
      case DT.SONAME:
        soname = small;
        break;
      case DT.RUNPATH:
        runpath.push(small);
        break;
      case DT.RPATH:
        rpath.push(small);
        break;
      case DT.STRTAB:
        strtab = small;
        break;
      case DT.STRSZ:
        strsz = small;
        break;
    }
  }
  if (needed.length + runpath.length + rpath.length === 0 && soname === undefined) return;
  if (strtab === undefined || strtab < 0) fail('CORRUPT', S, dyn.offset, 'DT_NEEDED/DT_SONAME/DT_RUNPATH without a DT_STRTAB');
  const start = vaddrToOffset(phdrs, strtab);
  if (start === undefined) fail('OUT_OF_BOUNDS', S, dyn.offset, `DT_STRTAB 0x${strtab.toString(16)} is not in any PT_LOAD segment`);
  // The table ends at DT_STRSZ, at the end of its segment, and at the end of the file, whichever is first.
  const seg = phdrs.find((p) => p.type === PT.LOAD && strtab >= p.vaddr && strtab - p.vaddr < p.filesz)!;
  let end = Math.min(seg.offset + seg.filesz, r.size);
  if (strsz !== undefined && strsz >= 0) end = Math.min(end, start + strsz);
  if (end - start > MAX_STRTAB) fail('OVERFLOW', 'dynamic string table', start, `string table of ${end - start} bytes`);
  const strings = r.bytes(start, end - start, 'dynamic string table');
  const str = (i: number): string => cString(strings, start, i, 'dynamic string table');
  info.needed = needed.map(str);
  if (soname !== undefined) info.soname = str(soname);
  info.runpath = runpath.flatMap((i) => str(i).split(':')).filter((s) => s !== '');
  info.rpath = rpath.flatMap((i) => str(i).split(':')).filter((s) => s !== '');
}

/** NT_GNU_BUILD_ID from the notes: PT_NOTE segments first, else SHT_NOTE sections. */
function findBuildId(r: Reader, phdrs: ProgramHeader[], sections: SectionHeader[]): string | undefined {
  const areas = phdrs.filter((p) => p.type === PT.NOTE).map((p) => ({ offset: p.offset, size: p.filesz }));
  if (areas.length === 0) for (const s of sections) if (s.type === SHT_NOTE) areas.push({ offset: s.offset, size: s.size });
  for (const a of areas) {
    const id = buildIdInNotes(r, a.offset, a.size);
    if (id !== undefined) return id;
  }
  return undefined;
}

function buildIdInNotes(r: Reader, offset: number, size: number): string | undefined {
  const S = 'note';
  if (size > MAX_NOTES_BYTES) fail('OVERFLOW', S, offset, `note area of ${size} bytes`);
  const b = r.bytes(offset, size, S);
  const dv = view(b);
  let at = 0;
  const align4 = (n: number) => (n + 3) & ~3;
  while (at + 12 <= b.length) {
    const namesz = dv.getUint32(at, true);
    const descsz = dv.getUint32(at + 4, true);
    const type = dv.getUint32(at + 8, true);
    const nameAt = at + 12;
    const descAt = nameAt + align4(namesz);
    const next = descAt + align4(descsz);
    if (descAt + descsz > b.length) fail('OUT_OF_BOUNDS', S, offset + at, `note of ${namesz}+${descsz} bytes runs past its area (${size} bytes)`);
    if (type === NT_GNU_BUILD_ID && namesz === 4 && b[nameAt] === 0x47 && b[nameAt + 1] === 0x4e && b[nameAt + 2] === 0x55 && b[nameAt + 3] === 0) {
      if (descsz === 0) fail('CORRUPT', S, offset + at, 'empty GNU build-id');
      return Buffer.from(b.buffer, b.byteOffset + descAt, descsz).toString('hex');
    }
    at = next;
  }
  return undefined;
}

/** An ElfSource over bytes in memory. */
export function bufferSource(b: Uint8Array): ElfSource {
  return { size: b.length, read: (o, n) => b.subarray(o, o + n) };
}

/** Parses the ELF file at `path`, reading only the parts it needs. */
export function readElfFile(path: string): ElfInfo {
  let fd: number;
  try {
    fd = fs.openSync(path, 'r');
  } catch (e) {
    throw new SquashfsError('IO', `cannot open: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, 'ELF header');
  }
  try {
    const size = fs.fstatSync(fd).size;
    return parseElf({
      size,
      read(offset, length) {
        const out = Buffer.alloc(length);
        let done = 0;
        while (done < length) {
          let n: number;
          try {
            n = fs.readSync(fd, out, done, length - done, offset + done);
          } catch (e) {
            throw new SquashfsError('IO', `read failed: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, 'ELF file', offset + done);
          }
          if (n === 0) break;
          done += n;
        }
        return out.subarray(0, done);
      },
    });
  } finally {
    fs.closeSync(fd);
  }
}

/** Whether the file at `path` starts with the ELF magic (false for unreadable or short files). */
export function isElfFile(path: string): boolean {
  let fd: number | undefined;
  try {
    fd = fs.openSync(path, 'r');
    const b = Buffer.alloc(4);
    return fs.readSync(fd, b, 0, 4, 0) === 4 && hasElfMagic(b);
  } catch {
    return false;
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}
