/**
 * The text `distri scaffold` writes: a new build.textproto for a source URL, or an existing one
 * with `source`, `hash` and the upstream part of `version` replaced. When any of them changed the
 * revision goes up by one (a new revision of the package); when nothing changed the text is
 * returned as it was, so a second run is a no-op. Only the three string literals are touched:
 * comments, order and every other field stay as the author wrote them.
 */
import { SquashfsError } from '../errors';
import { parsePackageName } from '../store/package-name';
import { parseTextProto, quoteString, type TextField } from '../store/textproto';
import { RECIPE_FILE } from './recipe';

export type ScaffoldBuilder = 'cbuilder' | 'perlbuilder';

/** CPAN sources get the perl builder and a `perl-` name, as in distri. */
export function isCpanUrl(url: string): boolean {
  return /^[a-z+]+:\/\/([^/]*\.)?(cpan\.org|metacpan\.org|cpan\.metacpan\.org)\//i.test(url) || /\/CPAN\/authors\//.test(url);
}

export function newRecipeText(o: { source: string; hash: string; version: string; builder: ScaffoldBuilder }): string {
  const q = (v: string) => quoteString(v, RECIPE_FILE);
  return `source: ${q(o.source)}\nhash: ${q(o.hash)}\nversion: ${q(`${o.version}-1`)}\n\n${o.builder}: {}\n\n# build dependencies:\n`;
}

/** Splits `<upstream>-<rev>` (rev 0 when there is none), the way package names are read. */
export function splitVersion(version: string): { upstream: string; rev: number } {
  const n = parsePackageName(`x-amd64-${version}`);
  return n ? { upstream: n.upstream, rev: n.rev } : { upstream: version, rev: 0 };
}

/**
 * The existing recipe with source, hash and upstream version replaced and the revision bumped if
 * anything changed. Returns `{ text, changed }`.
 */
export function updateRecipeText(existing: string, o: { source: string; hash: string; version: string }, file = RECIPE_FILE): { text: string; changed: boolean } {
  const fields = parseTextProto(existing, RECIPE_FILE);
  const one = (name: string): TextField => {
    const found = fields.filter((f) => f.name === name);
    if (found.length !== 1 || found[0]!.value.kind !== 'string') {
      throw new SquashfsError('INVALID_ARGUMENT', `${file}: want exactly one ${name}: "…" line to update, found ${found.length}`, RECIPE_FILE);
    }
    return found[0]!;
  };
  const cur = { source: one('source'), hash: one('hash'), version: one('version') };
  const value = (f: TextField) => (f.value as { value: string }).value;
  const { upstream, rev } = splitVersion(value(cur.version));
  const changed = value(cur.source) !== o.source || value(cur.hash) !== o.hash || upstream !== o.version;
  if (!changed) return { text: existing, changed };
  const want = new Map<TextField, string>([
    [cur.source, o.source],
    [cur.hash, o.hash],
    [cur.version, `${o.version}-${Math.max(rev, 0) + 1}`],
  ]);
  const lines = existing.split('\n');
  for (const [f, v] of want) {
    const line = lines[f.line - 1]!;
    // The literal is the first quoted string after the field name on its line.
    const head = line.slice(0, f.column - 1 + f.name.length);
    const rest = line.slice(head.length);
    const lit = /^(\s*:?\s*)("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')/.exec(rest);
    if (!lit) throw new SquashfsError('INVALID_ARGUMENT', `${file}:${f.line}: the value of ${f.name} must be one string on the same line to be updated`, RECIPE_FILE);
    lines[f.line - 1] = head + lit[1] + quoteString(v, RECIPE_FILE) + rest.slice(lit[0].length);
  }
  return { text: lines.join('\n'), changed };
}
