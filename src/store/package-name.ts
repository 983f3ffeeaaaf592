/**
 * Package names. A distri package is identified by its *full name*
 * `<pkg>-<arch>-<upstream>-<rev>`, e.g. `glibc-amd64-2.31-4`: the package, the architecture it was
 * built for, the upstream version and the distri revision, an integer that only goes up across
 * rebuilds (even when the upstream version changes: `8.2.0-3` may be followed by `8.3.0-4`).
 * `<pkg>-<arch>` alone (`bash-amd64`) names "the newest revision of bash for amd64".
 *
 * Full names turn up inside longer strings: store file names (`less-amd64-530-2.squashfs`), relative
 * symlink targets (`../libxslt-amd64-1.1.32-1/bin/xslt-config`) and shebang lines
 * (`#!/ro/perl-amd64-5.30.2-5/bin/perl`). parsePackageName finds the name in all of them.
 */

/** The architectures distri builds for. An arch token is what separates pkg from version. */
export const ARCHITECTURES = ['amd64', 'i686', 'arm64'] as const;
export type Arch = (typeof ARCHITECTURES)[number];

export interface PackageName {
  /** The package, e.g. `glibc`, `gcc-i686` (earlier arch tokens belong to the package). */
  readonly pkg: string;
  readonly arch: Arch;
  /** Upstream version, e.g. `2.31`; `""` for a bare `<pkg>-<arch>`. Never interpreted here. */
  readonly upstream: string;
  /** distri revision; 0 when the name carries none (`less-amd64-530`). */
  readonly rev: number;
  /** The name exactly as found, without file suffixes: `glibc-amd64-2.31-4`, `bash-amd64`. */
  readonly full: string;
}

/** File suffixes of store files: the image, its meta, and a build log. */
const FILE_SUFFIXES = ['.squashfs', '.meta.textproto', '.log'] as const;

/**
 * Transport compression that may follow a file suffix (`less-amd64-530-17.squashfs.gz`, as a mirror
 * serves it). Stripped only right after a file suffix, so an upstream version ending in `.xz` or
 * similar is never cut.
 */
const TRANSPORT_SUFFIXES = ['.gz', '.xz', '.zst', '.bz2', '.lz4'] as const;

/**
 * A revision is a positive decimal integer without leading zero. `08` is not a revision (distri
 * parsed revisions with Go's base-0 rule, in which `08` is invalid octal), so
 * `foo-amd64-1.2.3-08` has upstream `1.2.3-08` and rev 0. `0` is not one either (revisions start at
 * 1; distri kept a `-0` in upstream). Revisions beyond 2^53 are not exact numbers: not a revision.
 */
const REVISION = /^[1-9][0-9]*$/;

const ARCH_SET: ReadonlySet<string> = new Set(ARCHITECTURES);

function stripFileSuffix(component: string): string {
  for (const t of TRANSPORT_SUFFIXES) {
    if (component.endsWith(t)) {
      const inner = component.slice(0, -t.length);
      if (FILE_SUFFIXES.some((s) => inner.endsWith(s))) component = inner;
      break;
    }
  }
  for (const s of FILE_SUFFIXES) {
    if (component.endsWith(s)) return component.slice(0, -s.length);
  }
  return component;
}

/**
 * Parses one candidate component (suffixes already stripped). The LAST arch token splits pkg from
 * version, so `gcc-i686-amd64-8.2.0-3` is pkg `gcc-i686`, arch amd64.
 */
function parseComponent(full: string): PackageName | null {
  const parts = full.split('-');
  for (let i = parts.length - 1; i > 0; i--) {
    const token = parts[i] ?? '';
    if (!ARCH_SET.has(token)) continue;
    const pkg = parts.slice(0, i).join('-');
    if (pkg === '') return null;
    const arch = token as Arch;
    const version = parts.slice(i + 1);
    if (version.length === 0) return { pkg, arch, upstream: '', rev: 0, full };
    if (version.length === 1 && version[0] === '') return null; // `bash-amd64-`: a dash with no version
    const last = version[version.length - 1] ?? '';
    if (version.length > 1 && REVISION.test(last) && Number.isSafeInteger(Number(last))) {
      return { pkg, arch, upstream: version.slice(0, -1).join('-'), rev: Number(last), full };
    }
    return { pkg, arch, upstream: version.join('-'), rev: 0, full };
  }
  return null;
}

/**
 * Finds and parses the package name in a full name, file name, path or shebang line.
 *
 * The string is split into components at `/` and whitespace; the first component of the form
 * `<pkg>-<arch>-<version>` is the name (with `.squashfs`, `.meta.textproto`, `.log` and a transport
 * suffix such as `.squashfs.gz` removed). Only when there is none is the first bare
 * `<pkg>-<arch>` component taken.
 *
 * Returns null for strings that hold no package name (`README`, `amd64-1`, `-amd64-1`): callers
 * scanning a store directory or a script skip those; a caller that requires a name (`install FOO`)
 * reports the null in its own words.
 */
export function parsePackageName(s: string): PackageName | null {
  let bare: PackageName | null = null;
  for (const component of s.split(/[/\s]+/)) {
    const parsed = parseComponent(stripFileSuffix(component));
    if (parsed === null) continue;
    if (parsed.upstream !== '') return parsed;
    bare ??= parsed;
  }
  return bare;
}

/** `<pkg>-<arch>`: the identity shared by all revisions of one package, e.g. `less-amd64`. */
export function pkgArch(name: Pick<PackageName, 'pkg' | 'arch'>): string {
  return `${name.pkg}-${name.arch}`;
}

/** True for a bare `<pkg>-<arch>` (meaning "newest"), false for a fully versioned name. */
export function isBareName(name: PackageName): boolean {
  return name.upstream === '' && name.rev === 0;
}

/** Builds the full name: `<pkg>-<arch>-<upstream>-<rev>`, without `-<rev>` when rev is 0. */
export function formatPackageName(name: Omit<PackageName, 'full'>): string {
  let s = pkgArch(name);
  if (name.upstream !== '') s += `-${name.upstream}`;
  if (name.rev > 0) s += `-${name.rev}`;
  return s;
}
