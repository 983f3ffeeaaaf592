/**
 * Which Debian binary packages (bookworm, amd64) make up each distri package that `distri
 * bootstrap` builds, and how a Debian path moves into a distri package's layout.
 *
 * Package boundaries follow what the programs need at run time, not Debian's split:
 *  - gcc finds cc1, collect2 and crtbegin.o relative to its own binary (`out/bin/../libexec/gcc/…`,
 *    `out/bin/../lib/gcc/…`), so gcc-12, cpp-12, libgcc-12-dev and gcc-12-base are one package, and
 *    so are the runtime libraries libgcc-12-dev's `lib*.so` symlinks point at (libasan8, libgomp1, …).
 *  - Debian splits symlinks from their targets across packages (binutils' `as` →
 *    `x86_64-linux-gnu-as` in binutils-x86-64-linux-gnu), so binutils is seven Debian packages.
 *  A relative symlink whose target ends up in another distri package is reported at bootstrap time
 *  as a mistake in this table.
 *
 * `deps` are runtime deps the ELF pass cannot see (programs that exec others, headers that include
 * others'); the ELF pass adds the shared-library ones. The version of a distri package is the
 * upstream part of its `main` Debian package's version (epoch and Debian revision dropped), and the
 * revision is BOOTSTRAP_REV.
 */

export interface DistriFromDebian {
  /** distri's package name (as in distri's cbuilder deps). */
  name: string;
  /** The Debian packages unpacked into it; the first gives the version. */
  debs: string[];
  /** Runtime deps by distri name, besides those the ELF pass finds. */
  deps?: string[];
  /** Extra symlinks inside the package: [path, target] (e.g. bash's sh). */
  links?: [string, string][];
}

export const BOOTSTRAP_REV = 1;
export const BOOTSTRAP_ARCH = 'amd64';

export const DEBIAN_MAP: readonly DistriFromDebian[] = [
  { name: 'glibc', debs: ['libc6', 'libc6-dev', 'libc-dev-bin', 'libcrypt1', 'libcrypt-dev'], deps: ['linux'] },
  { name: 'linux', debs: ['linux-libc-dev'] },
  {
    name: 'gcc',
    debs: [
      'gcc-12',
      'cpp-12',
      'libgcc-12-dev',
      'gcc-12-base',
      'gcc',
      'cpp',
      'libcc1-0',
      'libisl23',
      'libasan8',
      'libatomic1',
      'libgomp1',
      'libitm1',
      'liblsan0',
      'libquadmath0',
      'libtsan2',
      'libubsan1',
    ],
    // gcc runs as and ld, and links crt1.o and libc from glibc.
    deps: ['binutils', 'glibc', 'gcc-libs'],
    // Debian makes cc with update-alternatives at install time; distri ships it.
    links: [['out/bin/cc', 'gcc']],
  },
  { name: 'gcc-libs', debs: ['libstdc++6', 'libgcc-s1'] },
  {
    name: 'binutils',
    debs: ['binutils', 'binutils-x86-64-linux-gnu', 'binutils-common', 'libbinutils', 'libctf0', 'libctf-nobfd0', 'libgprofng0'],
  },
  { name: 'mpc', debs: ['libmpc3'] },
  { name: 'mpfr', debs: ['libmpfr6'] },
  { name: 'gmp', debs: ['libgmp10'] },
  { name: 'zlib', debs: ['zlib1g', 'zlib1g-dev'] },
  { name: 'zstd', debs: ['libzstd1'] },
  { name: 'jansson', debs: ['libjansson4'] },
  { name: 'ncurses', debs: ['libncurses6', 'libncursesw6', 'libtinfo6', 'libncurses-dev', 'ncurses-bin', 'ncurses-base'] },
  // distri's bash is also /bin/sh (Debian's comes from dash).
  { name: 'bash', debs: ['bash'], links: [['out/bin/sh', 'bash']] },
  { name: 'readline', debs: ['libreadline8', 'readline-common'], deps: ['ncurses'] },
  { name: 'coreutils', debs: ['coreutils'] },
  { name: 'acl', debs: ['libacl1'] },
  { name: 'attr', debs: ['libattr1'] },
  { name: 'libselinux', debs: ['libselinux1'] },
  { name: 'pcre2', debs: ['libpcre2-8-0'] },
  { name: 'sed', debs: ['sed'] },
  { name: 'grep', debs: ['grep'] },
  { name: 'gawk', debs: ['gawk'], links: [['out/bin/awk', 'gawk']] }, // awk: an alternative in Debian
  { name: 'libsigsegv', debs: ['libsigsegv2'] },
  { name: 'diffutils', debs: ['diffutils'] },
  { name: 'file', debs: ['file', 'libmagic1', 'libmagic-mgc'] },
  { name: 'bzip2', debs: ['libbz2-1.0', 'bzip2'] },
  { name: 'xz', debs: ['xz-utils', 'liblzma5'] },
  { name: 'pkg-config', debs: ['pkgconf', 'pkgconf-bin', 'libpkgconf3'] },
  { name: 'make', debs: ['make'] },
  { name: 'findutils', debs: ['findutils'] },
  { name: 'tar', debs: ['tar'] },
  { name: 'gzip', debs: ['gzip'] },
  { name: 'patch', debs: ['patch'] },
  { name: 'perl', debs: ['perl', 'perl-base', 'perl-modules-5.36', 'libperl5.36'] },
  { name: 'db', debs: ['libdb5.3'] },
  { name: 'gdbm', debs: ['libgdbm6', 'libgdbm-compat4'] },
];

/** What the bootstrap leaves out of every package: documentation and Debian's own bookkeeping. */
export const DROPPED_PREFIXES: readonly string[] = [
  'usr/share/doc/',
  'usr/share/man/',
  'usr/share/info/',
  'usr/share/lintian/',
  'usr/share/bug/',
  'usr/share/bash-completion/',
  'usr/share/doc-base/',
  'usr/share/gdb/',
];

const MULTIARCH = 'x86_64-linux-gnu';

/**
 * A Debian path (relative, no leading slash: `usr/lib/x86_64-linux-gnu/libc.so`) → its path in the
 * distri package (`out/lib/libc.so`), or null when it is dropped.
 *
 *   usr/bin, bin → out/bin          usr/sbin, sbin → out/sbin
 *   usr/lib/<multiarch>/X, lib/<multiarch>/X (files, and pkgconfig/) → out/lib/X
 *   usr/lib/<multiarch>/<dir>/…  (perl's, gconv, …) → out/lib/<multiarch>/<dir>/…, because the
 *       programs have that absolute path compiled in and find it as /usr/lib → /ro/lib
 *   usr/lib, lib → out/lib          lib64 → out/lib64        usr/include → out/include
 *   usr/libexec → out/libexec       usr/share → out/share    etc → etc
 *   any other usr/X or X → out/X
 */
export function mapDebianPath(p: string): string | null {
  p = p.replace(/^\.?\/+/, '').replace(/\/+$/, '');
  if (p === '' || p === '.') return '';
  if (DROPPED_PREFIXES.some((d) => p + '/' === d || p.startsWith(d))) return null;
  const parts = p.split('/');
  if (parts[0] === 'etc') return p;
  if (parts[0] === 'usr') parts.shift();
  if (parts.length === 0) return 'out';
  const [top, ...rest] = parts;
  if (top === 'lib' && rest[0] === MULTIARCH) {
    const below = rest.slice(1);
    if (below.length === 0) return 'out/lib';
    if (below.length === 1 || below[0] === 'pkgconfig') return ['out', 'lib', ...below].join('/');
    return ['out', 'lib', MULTIARCH, ...below].join('/');
  }
  return ['out', top, ...rest].join('/');
}

/** The upstream version from a Debian version: `1:1.2.13.dfsg-1` → `1.2.13.dfsg`. */
export function upstreamOf(debianVersion: string): string {
  let v = debianVersion.replace(/^[0-9]+:/, '');
  const dash = v.lastIndexOf('-');
  if (dash > 0) v = v.slice(0, dash);
  // A distri full name splits at '-'; keep the version one token.
  return v.replace(/[^A-Za-z0-9.+]/g, '.');
}

export function fullNameOf(name: string, debianVersion: string): string {
  return `${name}-${BOOTSTRAP_ARCH}-${upstreamOf(debianVersion)}-${BOOTSTRAP_REV}`;
}
