/**
 * `distri bootstrap [--store DIR] [--cache DIR] [--json] [--check]`: a store of distri packages
 * (gcc, binutils, glibc, make, bash, coreutils, … under distri's names) made from Debian's binary
 * packages (src/build/bootstrap.ts), so that `distri build --store DIR` has a toolchain.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Command } from 'commander';
import { bootstrap, defaultCache, type BootstrapResult } from '../../build/bootstrap';
import { DEBIAN_MAP } from '../../build/debian-map';
import { mountStore, runInRoot } from '../../build/root';
import { closure, glibcOf, listStore } from '../../build/store-closure';
import { SquashfsError } from '../../errors';
import { reportError } from '../common';
import { DEFAULT_STORE } from './fuse';

interface Flags {
  store: string;
  cache?: string;
  json?: boolean;
  check?: boolean;
}

const HELLO = '#include <stdio.h>\nint main(void) { printf("hello from the bootstrap store\\n"); return 0; }\n';

/**
 * The doc's check: gcc compiles and links a C program inside the root (with the glibc package's
 * loader as the interpreter) and the program runs there. Returns its output.
 */
export async function checkToolchain(store: string): Promise<string> {
  const pkgs = listStore(store);
  const shown = closure(pkgs, ['gcc', 'bash', 'coreutils']);
  const glibc = glibcOf(pkgs, shown);
  if (!glibc) throw new SquashfsError('NOT_FOUND', 'no glibc package in the store');
  const src = fs.mkdtempSync(path.join(os.tmpdir(), 'distri-check-'));
  fs.writeFileSync(path.join(src, 'hello.c'), HELLO);
  const mount = await mountStore({ store, pkgs: shown });
  try {
    const ldflags = `-Wl,--dynamic-linker=/ro/${glibc}/out/lib/ld-linux-x86-64.so.2`;
    const r = await runInRoot(
      { roMount: mount.mountpoint, glibc, binds: [{ host: src, inside: '/src' }] },
      { argv: ['sh', '-c', `gcc ${ldflags} -o /tmp/hello /src/hello.c && /tmp/hello`], env: { PATH: '/ro/bin:/bin' }, cwd: '/tmp', stdio: 'pipe' },
    );
    const out = r.output?.toString() ?? '';
    if (r.code !== 0) throw new SquashfsError('IO', `gcc in the root failed (status ${r.code ?? r.signal}): ${out.trim()}`);
    return out;
  } finally {
    await mount.stop();
    fs.rmSync(src, { recursive: true, force: true });
  }
}

function mb(n: number): string {
  return `${(n / 1e6).toFixed(1)} MB`;
}

export function register(program: Command): void {
  program
    .command('bootstrap')
    .description("make a toolchain store (gcc, binutils, glibc, make, bash, coreutils, …) from Debian's binary packages")
    .option('--store <dir>', 'where the packages go (image + meta each); reused when already complete', DEFAULT_STORE)
    .option('--cache <dir>', 'downloaded .deb files (and private apt lists when needed)', defaultCache())
    .option('--json', 'print the result as JSON: packages, runtime deps, sizes, problems, seconds')
    .option('--check', 'afterwards, compile and run a hello world with gcc inside the root (as `distri run` would)')
    .addHelpText(
      'after',
      [
        '',
        `Makes ${DEBIAN_MAP.length} distri packages (full names <pkg>-amd64-<upstream>-1) from the Debian packages named in`,
        "src/build/debian-map.ts: apt-get download (the machine's apt state is left alone), dpkg-deb -x,",
        'paths moved under out/ (usr/bin → out/bin, usr/lib/x86_64-linux-gnu → out/lib, usr/include →',
        'out/include, usr/share → out/share), bin/ links, the lib/ farm and runtime deps from our own',
        'ELF reader, images written uncompressed with 128 KiB blocks and no fragments. A relative',
        'symlink that points into another package is reported as a mapping mistake.',
        'Takes about a minute and ~80 MB of downloads the first time; a complete store is reused.',
        '',
        'Examples:',
        '  distri bootstrap --store /tmp/store',
        '  distri bootstrap --store /tmp/store --check',
        '  distri run --store /tmp/store -- gcc --version',
        "  distri bootstrap --store /tmp/store --json | jq -r '.packages[].full'",
      ].join('\n'),
    )
    .action(async (flags: Flags) => {
      const tty = process.stderr.isTTY === true;
      const t0 = Date.now();
      let result: BootstrapResult;
      try {
        result = await bootstrap({
          store: flags.store,
          cache: path.resolve(flags.cache ?? defaultCache()),
          progress: tty ? (l) => process.stderr.write(`distri bootstrap: ${((Date.now() - t0) / 1000).toFixed(0).padStart(3)} s  ${l}\n`) : undefined,
          warn: (l) => process.stderr.write(`distri: bootstrap: warning: ${l}\n`),
        });
      } catch (e) {
        reportError('bootstrap', e);
        return;
      }
      let check: string | undefined;
      if (flags.check) {
        try {
          if (tty) process.stderr.write('distri bootstrap: checking: gcc -o hello hello.c inside the root\n');
          check = (await checkToolchain(result.store)).trim();
        } catch (e) {
          reportError('bootstrap --check', e);
          return;
        }
      }
      const bytes = result.packages.reduce((s, p) => s + p.imageBytes, 0);
      if (flags.json) {
        process.stdout.write(JSON.stringify({ ...result, imageBytes: bytes, ...(check !== undefined ? { check } : {}) }, null, 2) + '\n');
        return;
      }
      const what = result.reused ? 'already complete' : `made in ${result.seconds.toFixed(1)} s (${mb(result.downloadedBytes)} downloaded, ${mb(result.debBytes)} of .deb files)`;
      process.stdout.write(`${result.store}: ${result.packages.length} packages, ${mb(bytes)} of images, ${what}\n`);
      for (const p of result.packages) process.stdout.write(`  ${p.full}  ← ${p.debs.map((d) => d.name).join(' ')}\n`);
      if (result.problems.length > 0) process.stdout.write(`${result.problems.length} problems reported (see above, or --json)\n`);
      if (check !== undefined) process.stdout.write(`check: ${check}\n`);
    });
}
