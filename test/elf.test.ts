// Our ELF reader against readelf on real binaries of this machine (a PIE program, libc, the loader,
// an object file, and programs compiled here: static, with RUNPATH, with RPATH and a SONAME), on
// truncated, garbage and mutated files (a SquashfsError with a code, never anything else), and the
// ELF pass of a package build (lib farm, runtime packages, $ORIGIN, debug split with objcopy).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import fc from 'fast-check';

import { SquashfsError } from '../src/errors';
import { bufferSource, parseElf, readElfFile, type ElfInfo } from '../src/elf/elf';
import { elfPass } from '../src/build/elf-pass';
import { splitDebugInfo } from '../src/build/debug-split';
import { skipUnless } from './oracle/tools';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'distri-elf-test-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function sh(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** What readelf says about a file, in our reader's terms. */
function readelfView(file: string) {
  const h = sh('readelf', ['-h', '-W', file]);
  const type = /Type:\s+(\w+)/.exec(h)![1];
  const machine = /Machine:\s+(.+)/.exec(h)![1]!.trim();
  const entry = Number(/Entry point address:\s+(0x[0-9a-f]+)/.exec(h)![1]);
  const phnum = Number(/Number of program headers:\s+(\d+)/.exec(h)![1]);
  const shnum = Number(/Number of section headers:\s+(\d+)/.exec(h)![1]);
  const l = sh('readelf', ['-l', '-W', file]);
  const interp = /Requesting program interpreter: ([^\]]+)\]/.exec(l)?.[1];
  const d = sh('readelf', ['-d', '-W', file]);
  const needed = [...d.matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) => m[1]);
  const soname = /\(SONAME\)\s+Library soname: \[([^\]]+)\]/.exec(d)?.[1];
  const runpath = /\(RUNPATH\)\s+Library runpath: \[([^\]]+)\]/.exec(d)?.[1]?.split(':') ?? [];
  const rpath = /\(RPATH\)\s+Library rpath: \[([^\]]+)\]/.exec(d)?.[1]?.split(':') ?? [];
  const n = sh('readelf', ['-n', '-W', file]);
  const buildId = /Build ID: ([0-9a-f]+)/.exec(n)?.[1];
  const s = sh('readelf', ['-S', '-W', file]);
  // Section 0 has an empty name, which readelf prints as blanks before its type: left out.
  const sections = [...s.matchAll(/^\s*\[\s*(\d+)\]\s+(\S+)/gm)].filter((m) => m[1] !== '0').map((m) => m[2]);
  return { type, machine, entry, phnum, shnum, interp, needed, soname, runpath, rpath, buildId, sections, dynamic: /Dynamic section at offset/.test(d) };
}

const TYPE_NAMES: Record<number, string> = { 1: 'REL', 2: 'EXEC', 3: 'DYN' };

function compare(file: string, ours: ElfInfo): void {
  const want = readelfView(file);
  assert.equal(TYPE_NAMES[ours.type], want.type, `${file}: type`);
  if (want.machine.includes('X86-64')) assert.equal(ours.machine, 62, `${file}: machine`);
  assert.equal(ours.entry, want.entry, `${file}: entry`);
  assert.equal(ours.programHeaders.length, want.phnum, `${file}: program headers`);
  assert.equal(ours.sections.length, want.shnum, `${file}: sections`);
  // readelf -S prints section 0's empty name as nothing: compare the named ones in order.
  assert.deepEqual(
    ours.sections.map((x) => x.name).filter((x) => x !== ''),
    want.sections.filter((x) => x !== ''),
    `${file}: section names`,
  );
  assert.equal(ours.interp, want.interp, `${file}: PT_INTERP`);
  assert.equal(ours.dynamic, want.dynamic, `${file}: PT_DYNAMIC`);
  assert.deepEqual(ours.needed, want.needed, `${file}: DT_NEEDED`);
  assert.equal(ours.soname, want.soname, `${file}: DT_SONAME`);
  assert.deepEqual(ours.runpath, want.runpath, `${file}: DT_RUNPATH`);
  assert.deepEqual(ours.rpath, want.rpath, `${file}: DT_RPATH`);
  assert.equal(ours.buildId, want.buildId, `${file}: build-id`);
}

const compiled: Record<string, string> = {};
const C_PROG = '#include <stdio.h>\nint main(void) { puts("hi"); return 0; }\n';
const C_LIB = 'int twice(int x) { return 2 * x; }\n';

describe('ELF reader against readelf', { skip: skipUnless('ELF oracle', 'readelf', 'gcc') }, () => {
  before(() => {
    fs.writeFileSync(path.join(tmp, 'p.c'), C_PROG);
    fs.writeFileSync(path.join(tmp, 'l.c'), C_LIB);
    const cc = (out: string, ...args: string[]) => {
      sh('gcc', ['-o', path.join(tmp, out), ...args]);
      compiled[out] = path.join(tmp, out);
    };
    cc('runpath', path.join(tmp, 'p.c'), '-Wl,--enable-new-dtags,-rpath,/ro/x-amd64-1-1/lib:$ORIGIN/../lib');
    cc('rpath', path.join(tmp, 'p.c'), '-Wl,--disable-new-dtags,-rpath,/opt/a:/opt/b');
    cc('libtwice.so.1', '-shared', '-fPIC', '-Wl,-soname,libtwice.so.1', path.join(tmp, 'l.c'));
    cc('nobuildid', path.join(tmp, 'p.c'), '-Wl,--build-id=none');
    cc('debug', '-g', path.join(tmp, 'p.c'));
    // A static program: needs libc.a (libc6-dev); skipped from the list when it is not there.
    try {
      cc('static', '-static', path.join(tmp, 'p.c'));
    } catch {
      // no static libc
    }
  });

  const system = ['/bin/ls', '/lib/x86_64-linux-gnu/libc.so.6', '/lib64/ld-linux-x86-64.so.2', '/usr/lib/x86_64-linux-gnu/crt1.o', '/usr/bin/local-extract'];
  for (const f of system) {
    it(`${f} reads as readelf shows it`, { skip: fs.existsSync(f) ? undefined : `${f} not on this machine` }, () => {
      compare(f, readElfFile(f));
    });
  }
  for (const name of ['runpath', 'rpath', 'libtwice.so.1', 'nobuildid', 'debug', 'static']) {
    it(`a program compiled here (${name}) reads as readelf shows it`, () => {
      const f = compiled[name];
      if (!f) return; // static: no libc.a here (said in before())
      const info = readElfFile(f);
      compare(f, info);
      // Spot checks that readelf agreeing with us is not agreeing on nothing.
      if (name === 'runpath') assert.deepEqual(info.runpath, ['/ro/x-amd64-1-1/lib', '$ORIGIN/../lib']);
      if (name === 'rpath') assert.deepEqual(info.rpath, ['/opt/a', '/opt/b']);
      if (name === 'libtwice.so.1') assert.equal(info.soname, 'libtwice.so.1');
      if (name === 'static') assert.equal(info.interp, undefined);
      if (name === 'nobuildid') assert.equal(info.buildId, undefined);
    });
  }
  it('a static program has no PT_INTERP and no DT_NEEDED', () => {
    if (!compiled.static) return;
    const info = readElfFile(compiled.static);
    assert.equal(info.interp, undefined);
    assert.deepEqual(info.needed, []);
    assert.match(info.buildId ?? '', /^[0-9a-f]{40}$/);
  });
});

/** Runs parse on bytes; returns the SquashfsError, or undefined when it parsed. Anything else fails. */
function parseOrError(b: Uint8Array): SquashfsError | undefined {
  try {
    parseElf(bufferSource(b));
    return undefined;
  } catch (e) {
    assert.ok(e instanceof SquashfsError, `not a SquashfsError: ${String(e)}`);
    assert.ok(e.structure, 'the error names a structure');
    return e;
  }
}

describe('ELF reader on bad input', () => {
  const ls = fs.readFileSync('/bin/ls');
  const put64 = (b: Buffer, at: number, v: bigint) => {
    const c = Buffer.from(b);
    c.writeBigUInt64LE(v, at);
    return c;
  };

  it('not ELF: empty, text, a SquashFS image', () => {
    for (const b of [Buffer.alloc(0), Buffer.from('#!/bin/sh\necho hi\n'), Buffer.from('hsqs' + '\0'.repeat(100))]) {
      assert.equal(parseOrError(b)?.code, 'BAD_MAGIC');
    }
  });
  it('the magic and nothing else, or a header cut short: OUT_OF_BOUNDS in the ELF header', () => {
    for (const n of [4, 5, 16, 63]) {
      const e = parseOrError(ls.subarray(0, n));
      assert.equal(e?.code, 'OUT_OF_BOUNDS');
      assert.equal(e?.structure, 'ELF header');
    }
  });
  it('32-bit and big-endian files are UNSUPPORTED, a bad version CORRUPT', () => {
    const c32 = Buffer.from(ls);
    c32[4] = 1;
    assert.equal(parseOrError(c32)?.code, 'UNSUPPORTED');
    const be = Buffer.from(ls);
    be[5] = 2;
    assert.equal(parseOrError(be)?.code, 'UNSUPPORTED');
    const v = Buffer.from(ls);
    v[6] = 9;
    assert.equal(parseOrError(v)?.code, 'CORRUPT');
  });
  it('offsets beyond 2^53 or beyond the file are refused before anything is read there', () => {
    assert.equal(parseOrError(put64(ls, 32, 1n << 62n))?.code, 'OVERFLOW'); // e_phoff
    assert.equal(parseOrError(put64(ls, 32, BigInt(ls.length - 10)))?.code, 'OUT_OF_BOUNDS');
    assert.equal(parseOrError(put64(ls, 40, BigInt(ls.length + 4096)))?.code, 'OUT_OF_BOUNDS'); // e_shoff
    const many = Buffer.from(ls);
    many.writeUInt16LE(0xfffe, 56); // e_phnum: 65534 headers of 56 bytes do not fit in ls
    assert.equal(parseOrError(many)?.code, 'OUT_OF_BOUNDS');
    const small = Buffer.from(ls);
    small.writeUInt16LE(8, 54); // e_phentsize smaller than a program header
    assert.equal(parseOrError(small)?.code, 'CORRUPT');
  });
  it('a PT_DYNAMIC whose DT_STRTAB maps to no segment is OUT_OF_BOUNDS in the dynamic section', () => {
    const info = parseElf(bufferSource(ls));
    const dyn = info.programHeaders.find((p) => p.type === 2)!;
    const b = Buffer.from(ls);
    for (let at = dyn.offset; at < dyn.offset + dyn.filesz; at += 16) {
      if (b.readBigInt64LE(at) === 5n) b.writeBigUInt64LE(0x7fff_0000_0000n, at + 8); // DT_STRTAB
    }
    const e = parseOrError(b);
    assert.equal(e?.code, 'OUT_OF_BOUNDS');
    assert.equal(e?.structure, 'dynamic section');
  });
  it('a DT_NEEDED index past DT_STRSZ is refused, not read from whatever follows', () => {
    const info = parseElf(bufferSource(ls));
    const dyn = info.programHeaders.find((p) => p.type === 2)!;
    const b = Buffer.from(ls);
    let strsz = 0n;
    for (let at = dyn.offset; at < dyn.offset + dyn.filesz; at += 16) if (b.readBigInt64LE(at) === 10n) strsz = b.readBigUInt64LE(at + 8);
    assert.ok(strsz > 0n);
    // Just past the table: still inside the same PT_LOAD segment (.gnu.version follows), so only
    // DT_STRSZ tells that it is not a string of this table.
    for (let at = dyn.offset; at < dyn.offset + dyn.filesz; at += 16) {
      if (b.readBigInt64LE(at) === 1n) b.writeBigUInt64LE(strsz + 2n, at + 8);
    }
    assert.equal(parseOrError(b)?.code, 'OUT_OF_BOUNDS');
  });
  it('a note whose name size is near 2^32 is OUT_OF_BOUNDS, not a wrapped negative offset', () => {
    const info = parseElf(bufferSource(ls));
    const note = info.programHeaders.find((p) => p.type === 4)!;
    for (const namesz of [0xffffffff, 0xfffffffd, 0xfffffff4]) {
      const b = Buffer.from(ls);
      b.writeUInt32LE(namesz, note.offset);
      const e = parseOrError(b);
      assert.equal(e?.code, 'OUT_OF_BOUNDS');
      assert.equal(e?.structure, 'note');
    }
  });
  it('every truncation of a real program either parses or fails with a code', () => {
    const cuts = new Set<number>([64, 120, 200, 1000, 4096, ls.length - 1, ls.length - 100]);
    for (let n = 0; n < ls.length; n += 997) cuts.add(n);
    for (const n of cuts) parseOrError(ls.subarray(0, n));
    // Cut inside the section headers at the end: readelf also fails there, and so do we.
    assert.ok(parseOrError(ls.subarray(0, ls.length - 1)));
  });
  it('random mutations of a real program never throw anything but SquashfsError (fast-check)', () => {
    const small = fs.readFileSync(fs.existsSync('/usr/bin/true') ? '/usr/bin/true' : '/bin/true');
    fc.assert(
      fc.property(fc.array(fc.record({ at: fc.nat({ max: small.length - 1 }), byte: fc.integer({ min: 0, max: 255 }) }), { minLength: 1, maxLength: 12 }), (muts) => {
        const b = Buffer.from(small);
        for (const m of muts) b[m.at] = m.byte;
        parseOrError(b);
      }),
      { numRuns: 400, seed: 11 },
    );
    // Mutations concentrated on the headers, where the offsets and counts are.
    fc.assert(
      fc.property(fc.array(fc.record({ at: fc.nat({ max: 64 + 13 * 56 }), byte: fc.integer({ min: 0, max: 255 }) }), { minLength: 1, maxLength: 6 }), (muts) => {
        const b = Buffer.from(small);
        for (const m of muts) b[m.at] = m.byte;
        parseOrError(b);
      }),
      { numRuns: 800, seed: 12 },
    );
  });
  it('garbage after the magic never throws anything but SquashfsError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 600 }), (tail) => {
        parseOrError(Buffer.concat([Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]), tail]));
      }),
      { numRuns: 500, seed: 13 },
    );
  });
});

describe('ELF pass', { skip: skipUnless('ELF pass', 'gcc', 'readelf', 'objcopy') }, () => {
  const pkg = path.join(tmp, 'pkg');
  const dep = path.join(tmp, 'ro', 'libtwice-amd64-1-1', 'out', 'lib');
  const logs: string[] = [];
  let result: ReturnType<typeof elfPass>;
  before(async () => {
    fs.mkdirSync(path.join(pkg, 'out', 'bin'), { recursive: true });
    fs.mkdirSync(path.join(pkg, 'out', 'lib', 'plugins'), { recursive: true });
    fs.mkdirSync(dep, { recursive: true });
    fs.writeFileSync(path.join(tmp, 'l2.c'), C_LIB);
    fs.writeFileSync(path.join(tmp, 'u.c'), 'int twice(int);\nint main(void) { return twice(0); }\n');
    sh('gcc', ['-shared', '-fPIC', '-Wl,-soname,libtwice.so.1', '-o', path.join(dep, 'libtwice.so.1'), path.join(tmp, 'l2.c')]);
    sh('gcc', ['-g', '-o', path.join(pkg, 'out', 'bin', 'user'), path.join(tmp, 'u.c'), '-Wl,--no-as-needed', path.join(dep, 'libtwice.so.1')]);
    // A plugin that finds its helper library beside it through $ORIGIN, and one that needs a
    // library no dep has.
    sh('gcc', ['-shared', '-fPIC', '-Wl,-soname,libhelper.so', '-o', path.join(pkg, 'out', 'lib', 'plugins', 'libhelper.so'), path.join(tmp, 'l2.c')]);
    sh('gcc', [
      '-shared',
      '-fPIC',
      '-o',
      path.join(pkg, 'out', 'lib', 'plugins', 'plugin.so'),
      path.join(tmp, 'l2.c'),
      '-L' + path.join(pkg, 'out', 'lib', 'plugins'),
      '-Wl,--no-as-needed',
      '-lhelper',
      '-Wl,-rpath,$ORIGIN',
    ]);
    sh('gcc', ['-shared', '-fPIC', '-o', path.join(pkg, 'out', 'lib', 'needs-missing.so'), path.join(tmp, 'l2.c'), '-Wl,--no-as-needed', path.join(dep, 'libtwice.so.1'), '-Wl,-soname,x']);
    fs.copyFileSync(path.join(dep, 'libtwice.so.1'), path.join(tmp, 'libnowhere.so.7'));
    fs.writeFileSync(path.join(pkg, 'out', 'bin', 'broken'), Buffer.concat([Buffer.from('\x7fELF\x02\x01\x01'), Buffer.alloc(30)]));
    fs.writeFileSync(path.join(pkg, 'out', 'bin', 'script'), '#!/bin/sh\necho hi\n');
    result = elfPass({
      pkgRoot: pkg,
      fullName: 'user-amd64-1-1',
      libDirs: [
        { pkg: 'user-amd64-1-1', dir: path.join(pkg, 'out', 'lib') },
        { pkg: 'libtwice-amd64-1-1', dir: dep },
        { pkg: 'glibc-amd64-2.36-1', dir: '/lib/x86_64-linux-gnu', rel: 'out/lib' },
      ],
      debug: true,
      log: (l) => logs.push(l),
    });
    // The split itself, run here with the host's objcopy (a build runs it in its sandbox with the
    // deps' binutils: build-debug.test.ts).
    await splitDebugInfo({
      pkgRoot: pkg,
      insideRoot: pkg,
      objcopy: 'objcopy',
      files: result.debugFiles,
      run: async (argv) => {
        const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'buffer' });
        return { code: r.status, output: Buffer.concat([r.stdout, r.stderr]) };
      },
      log: (l) => logs.push(l),
    });
  });

  it('runtime packages are the ones whose libraries are needed, without the package itself', () => {
    assert.deepEqual(result.runtimePkgs, ['glibc-amd64-2.36-1', 'libtwice-amd64-1-1']);
  });
  it('lib/ holds one /ro symlink per needed library, and nothing for $ORIGIN ones', () => {
    const lib = path.join(pkg, 'lib');
    assert.equal(fs.readlinkSync(path.join(lib, 'libtwice.so.1')), '/ro/libtwice-amd64-1-1/out/lib/libtwice.so.1');
    assert.equal(fs.readlinkSync(path.join(lib, 'libc.so.6')), '/ro/glibc-amd64-2.36-1/out/lib/libc.so.6');
    assert.ok(!fs.existsSync(path.join(lib, 'libhelper.so')), 'found beside the plugin through $ORIGIN');
    assert.deepEqual(result.unresolved, []);
  });
  it('a file with the magic that is not valid ELF is logged and skipped', () => {
    assert.ok(
      logs.some((l) => l.includes('out/bin/broken') && l.includes('OUT_OF_BOUNDS')),
      logs.join('\n'),
    );
  });
  it('only files with a build-id and debug sections are listed for the debug split', () => {
    assert.deepEqual(
      result.debugFiles.map((f) => f.rel),
      ['out/bin/user'],
    );
  });
  it('debug info moves to debug/.build-id/xx/rest.debug; the program keeps a debuglink and still runs', () => {
    const info = readElfFile(path.join(pkg, 'out', 'bin', 'user'));
    const id = info.buildId!;
    const dbg = path.join(pkg, 'debug', '.build-id', id.slice(0, 2), `${id.slice(2)}.debug`);
    assert.ok(fs.existsSync(dbg), dbg);
    assert.ok(readElfFile(dbg).sections.some((s) => s.name === '.debug_info'));
    assert.ok(!info.sections.some((s) => s.name === '.debug_info'), 'stripped');
    assert.ok(info.sections.some((s) => s.name === '.gnu_debuglink'));
    const r = spawnSync(path.join(pkg, 'out', 'bin', 'user'), { env: { LD_LIBRARY_PATH: dep } });
    assert.equal(r.status, 0);
  });
  it('a needed library in no lib dir is reported as unresolved', () => {
    const other = path.join(tmp, 'pkg2');
    fs.mkdirSync(path.join(other, 'out', 'lib'), { recursive: true });
    fs.copyFileSync(path.join(pkg, 'out', 'lib', 'needs-missing.so'), path.join(other, 'out', 'lib', 'x.so'));
    const r = elfPass({ pkgRoot: other, fullName: 'x-amd64-1-1', libDirs: [{ pkg: 'glibc-amd64-2.36-1', dir: '/lib/x86_64-linux-gnu', rel: 'out/lib' }], log: () => undefined });
    assert.deepEqual(r.unresolved, [{ file: 'out/lib/x.so', soname: 'libtwice.so.1' }]);
    assert.deepEqual(r.runtimePkgs, ['glibc-amd64-2.36-1']);
  });
});
