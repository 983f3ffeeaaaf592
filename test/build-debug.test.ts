// distri build's debug split, for real, against the bootstrap store: a program with DWARF debug
// info (compiled here with -g, shipped in a source tarball, installed by a build_step) is split
// only when binutils is among the build deps, and then with the deps' own objcopy, run in the
// sandbox through /ro. The builds run with a PATH that holds only tar, mount and umount, so the host's
// /usr/bin/objcopy cannot be what splits (the old code split only when the host had one).
// The main image keeps what distri leaves there: a `debug` symlink to the debug tree's root.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { runCli, type CliResult } from './helpers/real-build';
import { bootstrapStore } from './helpers/bootstrap';
import { isRoot, skipUnless } from './oracle/tools';
import { Image } from '../src/reader/image';
import { bufferSource, parseElf, type ElfInfo } from '../src/elf/elf';

function gate(): string | undefined {
  const tools = skipUnless('build-debug', isRoot(), 'gcc', 'tar', 'unshare');
  if (tools) return tools;
  const b = bootstrapStore();
  if (!b.ok) {
    console.warn(`\u001b[33mSKIP build-debug: ${b.why}\u001b[0m`);
    return b.why;
  }
  return undefined;
}
const why = gate();

const VERSION = '1.0-1';

describe('distri build: debug info split with the build deps’ objcopy', { skip: why }, () => {
  let tmp = '';
  let store = '';
  const built = new Map<string, CliResult>();
  const full = (pkg: string) => `${pkg}-amd64-${VERSION}`;
  const out = (pkg: string) => path.join(tmp, 'out', pkg);

  before(async () => {
    const b = bootstrapStore();
    store = 'store' in b ? b.store : '';
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'build-debug-'));
    const top = path.join(tmp, 'src', 'dbgprog-1.0');
    fs.mkdirSync(top, { recursive: true });
    fs.writeFileSync(path.join(tmp, 'prog.c'), 'static int twice(int x) { return 2 * x; }\nint main(int argc, char **argv) { (void)argv; return twice(argc) - 2; }\n');
    const cc = spawnSync('gcc', ['-g', '-O0', '-Wl,--build-id', '-o', path.join(top, 'dbgprog'), path.join(tmp, 'prog.c')], { encoding: 'utf8' });
    assert.equal(cc.status, 0, cc.stderr);
    const tarball = path.join(tmp, 'dbgprog-1.0.tar');
    const t = spawnSync('tar', ['-cf', tarball, '-C', path.join(tmp, 'src'), 'dbgprog-1.0'], { encoding: 'utf8' });
    assert.equal(t.status, 0, t.stderr);
    const sha = createHash('sha256').update(fs.readFileSync(tarball)).digest('hex');
    // The only host tools the builds may find on PATH: tar to unpack the source, mount and umount
    // for the /ro daemon. No objcopy.
    const hostBin = path.join(tmp, 'host-bin');
    fs.mkdirSync(hostBin);
    for (const tool of ['tar', 'mount', 'umount']) {
      const where = spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).stdout.trim();
      assert.ok(where, `${tool} not found`);
      fs.symlinkSync(where, path.join(hostBin, tool));
    }
    const recipe = (deps: string[]) =>
      [
        `source: "${pathToFileURL(tarball)}"`,
        `hash: "${sha}"`,
        `version: "${VERSION}"`,
        ...deps.map((d) => `dep: "${d}"`),
        'build_step: {',
        '  argv: "/bin/sh"',
        '  argv: "-c"',
        '  argv: "mkdir -p ${DISTRI_DESTDIR}${DISTRI_PREFIX}/bin && cp ${DISTRI_SOURCEDIR}/dbgprog ${DISTRI_DESTDIR}${DISTRI_PREFIX}/bin/"',
        '}',
        '',
      ].join('\n');
    const recipes: Record<string, string[]> = { nodebug: ['bash', 'coreutils'], withdebug: ['bash', 'coreutils', 'binutils'] };
    for (const [pkg, deps] of Object.entries(recipes)) {
      fs.mkdirSync(path.join(tmp, 'pkgs', pkg), { recursive: true });
      fs.writeFileSync(path.join(tmp, 'pkgs', pkg, 'build.textproto'), recipe(deps));
    }
    const env = { PATH: hostBin, HOME: tmp };
    await Promise.all(
      Object.keys(recipes).map(async (pkg) => {
        built.set(pkg, await runCli(['build', '--distriroot', tmp, '--pkg', pkg, '--store', store, '--jobs', '1', '--out', out(pkg)], tmp, env));
      }),
    );
  });
  after(() => {
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  /** The ELF file at `rel` of an image, parsed with our reader. */
  const elfIn = (image: string, rel: string): ElfInfo => {
    const img = Image.open(image);
    try {
      return parseElf(bufferSource(img.read(img.resolve(rel))));
    } finally {
      img.close();
    }
  };
  const hasDebug = (e: ElfInfo) => e.sections.some((s) => s.name === '.debug_info');

  it('without binutils among the deps, nothing is split', () => {
    const r = built.get('nodebug')!;
    assert.equal(r.status, 0, r.stderr.slice(-3000));
    assert.ok(!/debug info/.test(r.stderr), r.stderr);
    assert.ok(!fs.existsSync(path.join(out('nodebug'), 'debug')));
    const image = path.join(out('nodebug'), `${full('nodebug')}.squashfs`);
    assert.ok(hasDebug(elfIn(image, 'out/bin/dbgprog')), 'the program keeps its debug info');
    const img = Image.open(image);
    try {
      assert.throws(() => img.resolve('debug'));
    } finally {
      img.close();
    }
  });

  it('with binutils, the store’s objcopy splits (the host’s is not on PATH)', () => {
    const r = built.get('withdebug')!;
    assert.equal(r.status, 0, r.stderr.slice(-3000));
    const main = path.join(out('withdebug'), `${full('withdebug')}.squashfs`);
    const prog = elfIn(main, 'out/bin/dbgprog');
    const id = prog.buildId!;
    assert.match(id, /^[0-9a-f]{6,}$/);
    assert.match(r.stderr, new RegExp(`elf: out/bin/dbgprog: debug info → debug/\\.build-id/${id.slice(0, 2)}/${id.slice(2)}\\.debug`));
    assert.ok(!hasDebug(prog), 'stripped');
    assert.ok(prog.sections.some((s) => s.name === '.gnu_debuglink'));
    const debugImage = path.join(out('withdebug'), 'debug', `${full('withdebug')}.squashfs`);
    assert.match(r.stderr, new RegExp(`debug info in ${debugImage.replace(/[.+]/g, '\\$&')}`));
    const dbg = elfIn(debugImage, `debug/.build-id/${id.slice(0, 2)}/${id.slice(2)}.debug`);
    assert.ok(hasDebug(dbg), 'the debug file has the DWARF');
    assert.equal(dbg.buildId, id);
  });

  it('the main image has distri’s `debug` link to the debug tree', () => {
    const img = Image.open(path.join(out('withdebug'), `${full('withdebug')}.squashfs`));
    try {
      const link = img.resolve('debug');
      assert.equal(link.kind, 'symlink');
      assert.equal(img.readlink(link), `../${full('withdebug')}-debug/debug`);
    } finally {
      img.close();
    }
  });
});
