/**
 * A package's runtime deps, found after its build (distri's rules; the ELF part is the ELF pass's):
 *
 *  - the packages providing the shared libraries its ELF files need (src/build/elf-pass.ts);
 *  - every `#!/ro/<full>/…` shebang of a program in `out/bin` (a perl script needs that perl);
 *  - for each of its own `.pc` files, the packages shipping the `.pc` files named in `Requires:`
 *    and `Requires.private:` (`pkg-config --cflags` of the package needs them all);
 *  - the builder's language runtime (perl, python3) and the recipe's `runtime_dep`;
 * minus the package itself, then closed over the deps' own runtime deps, sorted.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parsePackageName } from '../store/package-name';

/**
 * Module names of a pkg-config `Requires` value: separated by commas and/or whitespace, each
 * optionally followed by an operator (`<`, `<=`, `=`, `!=`, `>=`, `>`) and a version, which are
 * dropped: `gdk-3.0 atk >= 2.15.1 cairo,cairo-gobject` → gdk-3.0 atk cairo cairo-gobject.
 * Operators may touch their neighbours (`atk>=2.15`).
 */
export function pkgConfigRequires(value: string): string[] {
  const tokens = value.match(/[<>!]=?|=|[^\s,<>!=]+/g) ?? [];
  const out: string[] = [];
  for (let i = 0; i < tokens.length; i++) {
    if (/^[<>!=]/.test(tokens[i]!)) {
      i++; // the version after the operator
      continue;
    }
    out.push(tokens[i]!);
  }
  return out;
}

/** The modules a `.pc` file's Requires and Requires.private name, with its `${var}`s expanded. */
export function pcFileRequires(text: string): string[] {
  const vars = new Map<string, string>();
  const expand = (s: string, depth = 0): string => (depth > 10 ? s : s.replace(/\$\{([A-Za-z0-9_.]+)\}/g, (w, n: string) => (vars.has(n) ? expand(vars.get(n)!, depth + 1) : w)));
  const out: string[] = [];
  // A line ending in a backslash continues on the next.
  for (const line of text.replace(/\\\r?\n/g, ' ').split(/\r?\n/)) {
    const v = /^\s*([A-Za-z0-9_.]+)\s*=(.*)$/.exec(line);
    if (v) {
      vars.set(v[1]!, v[2]!.trim());
      continue;
    }
    const k = /^\s*(Requires|Requires\.private)\s*:(.*)$/.exec(line);
    if (k) out.push(...pkgConfigRequires(expand(k[2]!)));
  }
  return [...new Set(out)];
}

/** The package's own `.pc` files (out/lib/pkgconfig, out/share/pkgconfig). */
export function ownPcFiles(pkgRoot: string): string[] {
  const files: string[] = [];
  for (const d of ['out/lib/pkgconfig', 'out/share/pkgconfig', 'out/lib64/pkgconfig']) {
    const dir = path.join(pkgRoot, d);
    let names: string[];
    try {
      names = fs.readdirSync(dir).sort();
    } catch {
      continue;
    }
    for (const n of names) if (n.endsWith('.pc')) files.push(path.join(dir, n));
  }
  return files;
}

/** Full names in `#!/ro/<full>/…` shebangs of the regular files in out/bin (sorted, unique). */
export function shebangDeps(pkgRoot: string): string[] {
  const dir = path.join(pkgRoot, 'out/bin');
  const found = new Set<string>();
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  const buf = Buffer.alloc(512);
  for (const n of names) {
    const p = path.join(dir, n);
    if (!fs.lstatSync(p).isFile()) continue;
    const fd = fs.openSync(p, 'r');
    let len: number;
    try {
      len = fs.readSync(fd, buf, 0, buf.length, 0);
    } finally {
      fs.closeSync(fd);
    }
    const head = buf.subarray(0, len).toString('latin1');
    if (!head.startsWith('#!')) continue;
    const line = head.slice(2).split('\n')[0]!.trim();
    const m = /^\/ro\/([^/\s]+)\//.exec(line);
    if (!m) continue;
    const name = parsePackageName(m[1]!);
    if (name && name.upstream !== '') found.add(name.full);
  }
  return [...found].sort();
}

export interface RuntimeDepInput {
  fullName: string;
  pkgRoot: string;
  /** Full names from the ELF pass. */
  elfPkgs: readonly string[];
  /** The package that ships `<module>.pc`, among the build deps; undefined when none does. */
  pcProvider(module: string): string | undefined;
  /** Full names of the builder's language runtime and the recipe's runtime_dep (already resolved). */
  declared: readonly string[];
  /** Transitive closure over runtime deps (store metas). */
  closure(roots: readonly string[]): string[];
  log(line: string): void;
}

/** The runtime deps of the module comment: direct ones, and their closure (sorted, no self). */
export function collectRuntimeDeps(i: RuntimeDepInput): { direct: string[]; closure: string[] } {
  const direct = new Set<string>(i.elfPkgs);
  for (const s of shebangDeps(i.pkgRoot)) direct.add(s);
  const ownModules = new Set(ownPcFiles(i.pkgRoot).map((f) => path.basename(f, '.pc')));
  for (const pc of ownPcFiles(i.pkgRoot)) {
    for (const mod of pcFileRequires(fs.readFileSync(pc, 'utf8'))) {
      if (ownModules.has(mod)) continue;
      const provider = i.pcProvider(mod);
      if (provider) direct.add(provider);
      else i.log(`${path.basename(pc)}: Requires ${mod}, which no build dep ships (not a runtime dep)`);
    }
  }
  for (const d of i.declared) direct.add(d);
  direct.delete(i.fullName);
  const sorted = [...direct].sort();
  const closure = i.closure(sorted).filter((d) => d !== i.fullName);
  return { direct: sorted, closure: [...new Set(closure)].sort() };
}
