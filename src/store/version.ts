/**
 * "Newest": which of several revisions of a package wins. The distri revision decides (it only goes
 * up, across upstream versions); upstream versions only break ties, including between names that
 * carry no revision at all (rev 0). **fix**: distri compared such names as plain strings, so
 * `99-1` sorted after `100-2`; here upstream versions are compared naturally.
 *
 * The natural upstream order (compareUpstream), in the spirit of dpkg's version compare:
 * - A version is read as tokens: digit runs (compared numerically, any length: `1.10` > `1.9`,
 *   `100` > `99`, `007` = `7`), letter runs (compared case-insensitively), and `~`. Every other
 *   character (`.`, `-`, `_`, `+`, …) only separates tokens: `1.2` and `1-2` are equal here.
 * - Tokens are compared left to right; where one version has run out of tokens it has an "end"
 *   token. At one position the kinds rank
 *     `~`  <  pre-release word  <  end  <  other word  <  number
 *   so `1.0~rc1` < `1.0rc1` < `1.0` < `1.0a` < `1.0.1`. The pre-release words are `dev`, `alpha`,
 *   `beta`, `pre`, `rc` (ranked in that order, before any number that follows them):
 *   `1.0-beta2` < `1.0rc1` < `1.0`. Any other word is a post-release marker, as in OpenSSL's `1.0.2a`.
 * - Versions that are equal by these rules (`1.2` vs `1-2`, `7` vs `007`) are ordered by plain
 *   string comparison, so the order is total and Array.sort gives one answer for any input order.
 */
import { pkgArch, type PackageName } from './package-name';

const PRE_RELEASE = ['dev', 'alpha', 'beta', 'pre', 'rc'] as const;

/** Rank of a token kind at one position; lower sorts first. */
const enum Rank {
  Tilde = 0,
  PreRelease = 1,
  End = 2,
  Word = 3,
  Number = 4,
}

interface Token {
  readonly rank: Rank;
  /** Number: digits without leading zeros. Word: lower-cased. Pre-release: its index, as text. */
  readonly key: string;
}

const END: Token = { rank: Rank.End, key: '' };

function tokenize(version: string): Token[] {
  const tokens: Token[] = [];
  const re = /([0-9]+)|([A-Za-z]+)|(~)/g;
  for (let m = re.exec(version); m !== null; m = re.exec(version)) {
    if (m[1] !== undefined) {
      tokens.push({ rank: Rank.Number, key: m[1].replace(/^0+/, '') });
    } else if (m[2] !== undefined) {
      const word = m[2].toLowerCase();
      const pre = (PRE_RELEASE as readonly string[]).indexOf(word);
      tokens.push(pre >= 0 ? { rank: Rank.PreRelease, key: String(pre) } : { rank: Rank.Word, key: word });
    } else {
      tokens.push({ rank: Rank.Tilde, key: '' });
    }
  }
  return tokens;
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function compareTokens(a: Token, b: Token): number {
  if (a.rank !== b.rank) return a.rank - b.rank;
  // Numbers: more digits (leading zeros already gone) means bigger; same length compares as text.
  if (a.rank === Rank.Number && a.key.length !== b.key.length) return a.key.length - b.key.length;
  return compareStrings(a.key, b.key);
}

/** Natural order of two upstream versions (see the module comment). Total: 0 only when a === b. */
export function compareUpstream(a: string, b: string): number {
  if (a === b) return 0;
  const ta = tokenize(a);
  const tb = tokenize(b);
  const n = Math.max(ta.length, tb.length);
  for (let i = 0; i < n; i++) {
    const c = compareTokens(ta[i] ?? END, tb[i] ?? END);
    if (c !== 0) return Math.sign(c);
  }
  return compareStrings(a, b);
}

/**
 * Orders revisions of one package from oldest to newest: rev first, then upstream naturally, then
 * the full name as text (so names that differ only in spelling still have a fixed order). For use
 * with Array.sort; comparing different packages is allowed but means nothing beyond determinism.
 */
export function comparePackageVersions(a: PackageName, b: PackageName): number {
  if (a.rev !== b.rev) return a.rev < b.rev ? -1 : 1;
  return compareUpstream(a.upstream, b.upstream) || compareStrings(a.full, b.full);
}

/** The newest of the given names (by comparePackageVersions), or undefined for none. */
export function newest<T extends PackageName>(names: Iterable<T>): T | undefined {
  let best: T | undefined;
  for (const n of names) if (best === undefined || comparePackageVersions(n, best) > 0) best = n;
  return best;
}

/** The newest revision of every `<pkg>-<arch>` among names, keyed by `<pkg>-<arch>`. */
export function newestByPackage<T extends PackageName>(names: Iterable<T>): Map<string, T> {
  const best = new Map<string, T>();
  for (const n of names) {
    const key = pkgArch(n);
    const current = best.get(key);
    if (current === undefined || comparePackageVersions(n, current) > 0) best.set(key, n);
  }
  return best;
}
