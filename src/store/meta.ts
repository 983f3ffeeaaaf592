/**
 * Package metadata: the `<full>.meta.textproto` file next to every image in a store. The fields
 * that matter (distri's Meta message; everything else is ignored, as protobuf ignores unknown
 * fields):
 *
 *   runtime_dep: "glibc-amd64-2.31-4"   # repeated; already the transitive closure, fully versioned
 *   source_pkg: "bash"                  # the build recipe that produced this package
 *   version: "5.0-4"                    # `<upstream>-<rev>`
 *   runtime_union: < dir: "lib/irssi/modules" pkg: "irssi-amd64-1.1.1-3" >   # repeated
 *   input_digest: "<hex>"               # hash of the build inputs
 *
 * `runtime_union { dir, pkg }` declared by package P means: listing `/ro/<pkg>/out/<dir>` shows
 * pkg's own entries plus P's `out/<dir>` entries (plugins installed into another package's tree).
 *
 * A missing scalar reads as "" (proto3 default); a singular field given twice is an error, as in
 * protobuf's own text parser; a known field with the wrong kind of value (`version: 5`,
 * `runtime_union: "x"`) is an error. Errors are SquashfsError CORRUPT in structure
 * "meta.textproto" with `line:column` at the start of the message.
 */
import { parseTextProto, quoteString, textProtoError, type TextField } from './textproto';

export const META_STRUCTURE = 'meta.textproto';

export interface RuntimeUnion {
  /** Directory below `out/`, e.g. `lib/irssi/modules`. */
  readonly dir: string;
  /** Full name of the package whose `out/<dir>` is extended. */
  readonly pkg: string;
}

export interface Meta {
  readonly runtimeDep: readonly string[];
  readonly sourcePkg: string;
  readonly version: string;
  readonly runtimeUnion: readonly RuntimeUnion[];
  readonly inputDigest: string;
}

function fail(f: TextField, message: string): never {
  throw textProtoError(META_STRUCTURE, f.line, f.column, message);
}

function stringValue(f: TextField): string {
  if (f.value.kind !== 'string') fail(f, `field ${f.name} wants a string, got ${f.value.kind === 'message' ? 'a message' : f.value.text}`);
  return f.value.value;
}

/** Reads the singular string fields named in `names` and nothing else; repeats are errors. */
function singularStrings<K extends string>(fields: readonly TextField[], names: readonly K[]): Record<K, string> {
  const out = {} as Record<K, string>;
  const seen = new Set<string>();
  for (const name of names) out[name] = '';
  for (const f of fields) {
    if (!(names as readonly string[]).includes(f.name)) continue;
    if (seen.has(f.name)) fail(f, `non-repeated field ${f.name} is given twice`);
    seen.add(f.name);
    out[f.name as K] = stringValue(f);
  }
  return out;
}

function runtimeUnion(f: TextField): RuntimeUnion {
  if (f.value.kind !== 'message') fail(f, 'field runtime_union wants a message < dir: "…" pkg: "…" >');
  return singularStrings(f.value.fields, ['dir', 'pkg']);
}

/** Parses a meta.textproto document. Throws SquashfsError CORRUPT (line:column) on bad input. */
export function parseMeta(text: string): Meta {
  const fields = parseTextProto(text, META_STRUCTURE);
  const scalars = singularStrings(fields, ['source_pkg', 'version', 'input_digest']);
  return {
    runtimeDep: fields.filter((f) => f.name === 'runtime_dep').map(stringValue),
    sourcePkg: scalars.source_pkg,
    version: scalars.version,
    runtimeUnion: fields.filter((f) => f.name === 'runtime_union').map(runtimeUnion),
    inputDigest: scalars.input_digest,
  };
}

/**
 * Writes meta in the layout distri uses (one field per line, runtime_union as `< … >`), leaving out
 * empty scalars. parseMeta(formatMeta(m)) equals m for every m whose strings are valid Unicode.
 */
export function formatMeta(meta: Meta): string {
  const q = (s: string): string => quoteString(s, META_STRUCTURE);
  const lines: string[] = [];
  for (const dep of meta.runtimeDep) lines.push(`runtime_dep: ${q(dep)}`);
  if (meta.sourcePkg !== '') lines.push(`source_pkg: ${q(meta.sourcePkg)}`);
  if (meta.version !== '') lines.push(`version: ${q(meta.version)}`);
  for (const u of meta.runtimeUnion) lines.push(`runtime_union: < dir: ${q(u.dir)} pkg: ${q(u.pkg)} >`);
  if (meta.inputDigest !== '') lines.push(`input_digest: ${q(meta.inputDigest)}`);
  return lines.map((l) => l + '\n').join('');
}
