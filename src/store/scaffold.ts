/**
 * `distri scaffold URL`, the pure part: guess a new package's name and upstream version from its
 * source URL (the command then downloads it, hashes it and writes `pkgs/<name>/build.textproto`).
 *
 * - GitHub archive URLs name the project in the path and the version in the tag:
 *   `github.com/traviscross/mtr/archive/v0.92.tar.gz` → mtr 0.92
 *   (also `…/archive/refs/tags/v0.92.tar.gz`; a `v` before a digit is dropped).
 * - Everything else names both in the file name, `<name>-<version>.<archive suffix>` or
 *   `<name>_<version>…` (Debian style): `whois_5.4.2.tar.xz` → whois 5.4.2,
 *   `libXxf86vm-1.1.4.tar.bz2` → libxxf86vm 1.1.4. `_` reads as `-`; the name is lower-cased.
 *   Debian's `<name>_<version>.orig.tar.*` drops the `.orig`: `hello_2.10.orig.tar.gz` → hello 2.10.
 *   The split is at the last `-` followed by a digit (or by `v` and a digit), so versions may contain
 *   dashes (`foo-1.2-rc1` → foo 1.2-rc1) and names may contain digits after a dash
 *   (`foo-2-bar-1.0` → foo-2-bar 1.0). Without such a dash, at the last `-` (what distri did).
 * Returns null when the URL has no `<name>-<version>` shape (the command then asks for -name and
 * -version).
 */

export interface ScaffoldGuess {
  readonly name: string;
  readonly version: string;
}

/** Archive suffixes, longest first so `.tar.gz` wins over `.gz`. */
const ARCHIVE_SUFFIXES = ['.tar.gz', '.tar.xz', '.tar.bz2', '.tar.zst', '.tar.lz', '.tar.lzma', '.tar.Z', '.tgz', '.txz', '.tbz2', '.tbz', '.tzst', '.tar', '.zip', '.gz', '.xz', '.bz2', '.zst'];

export function trimArchiveSuffix(file: string): string {
  for (const s of ARCHIVE_SUFFIXES) if (file.toLowerCase().endsWith(s.toLowerCase())) return file.slice(0, -s.length);
  return file;
}

function dropV(version: string): string {
  return /^v[0-9]/.test(version) ? version.slice(1) : version;
}

/** Splits a URL (with or without scheme) into host and path segments, ignoring query and fragment. */
function urlSegments(url: string): { host: string; segments: string[] } {
  const bare = url.replace(/[?#].*$/, '').replace(/^[A-Za-z][A-Za-z0-9+.-]*:\/\//, '');
  const [host = '', ...segments] = bare.split('/');
  return { host: host.toLowerCase(), segments: segments.filter((s) => s !== '') };
}

function decodePercent(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s; // a stray `%` is just a character
  }
}

/** Guesses `{ name, version }` from a source URL, or null (see the module comment). */
export function guessFromUrl(url: string): ScaffoldGuess | null {
  const { host, segments } = urlSegments(url);
  if (host === 'github.com' || host === 'www.github.com') {
    const archive = segments.indexOf('archive');
    if (archive === 2 && segments.length > 3) {
      const name = segments[1] ?? '';
      const version = dropV(trimArchiveSuffix(segments[segments.length - 1] ?? ''));
      return version === '' ? null : { name: name.toLowerCase(), version };
    }
  }
  const file = segments[segments.length - 1];
  if (file === undefined) return null;
  // Debian's source archives: `hello_2.10.orig.tar.gz` is upstream's hello-2.10.tar.gz.
  const base = trimArchiveSuffix(decodePercent(file))
    .replace(/\.orig$/, '')
    .replace(/_/g, '-');
  const m = /^(.+)-(v?[0-9].*)$/.exec(base) ?? /^(.+)-(.+)$/.exec(base);
  const [, name, version] = m ?? [];
  if (name === undefined || version === undefined) return null;
  return { name: name.toLowerCase(), version: dropV(version) };
}
