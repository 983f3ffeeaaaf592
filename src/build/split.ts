/**
 * split_package: parts of the installed tree become packages of their own (e.g. a library split
 * off a big program). For each split, in recipe order, every path of the main package root matching
 * a claim's glob (relative to the package root, e.g. `out/lib/libfoo.so*`) moves to the split's
 * root — at the same relative path, or into the claim's `dir` — and a relative symlink to its new
 * place stays behind. The roots are siblings (`…/<full>` and `…/<split-full>`), as the packages are
 * in /ro, so the symlink resolves there. The main package gets a runtime dep on each split that
 * claimed something.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { SplitPackage } from './recipe';

function globRegex(component: string): RegExp {
  let re = '^';
  for (let i = 0; i < component.length; i++) {
    const c = component[i]!;
    if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const end = component.indexOf(']', i + 1);
      if (end < 0) re += '\\[';
      else {
        re +=
          '[' +
          component
            .slice(i + 1, end)
            .replace(/^!/, '^')
            .replace(/\\/g, '\\\\') +
          ']';
        i = end;
      }
    } else re += c.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return new RegExp(re + '$');
}

/** Paths below root matching a `/`-separated glob (`*`, `?`, `[…]` per component), sorted. */
export function globPaths(root: string, glob: string): string[] {
  let current = [''];
  for (const comp of glob.split('/').filter((c) => c !== '' && c !== '.')) {
    const next: string[] = [];
    const re = /[*?[]/.test(comp) ? globRegex(comp) : undefined;
    for (const rel of current) {
      const dir = path.join(root, rel);
      if (!re) {
        if (fs.lstatSync(path.join(dir, comp), { throwIfNoEntry: false })) next.push(path.join(rel, comp));
        continue;
      }
      let names: string[] = [];
      try {
        names = fs.readdirSync(dir);
      } catch {
        // not a directory
      }
      for (const n of names.sort()) if (re.test(n) && !(n.startsWith('.') && !comp.startsWith('.'))) next.push(path.join(rel, n));
    }
    current = next;
  }
  return current.filter((c) => c !== '');
}

export interface SplitResult {
  name: string;
  fullName: string;
  root: string;
  moved: string[];
}

/** Moves the claimed files; returns one result per split package (in recipe order). */
export function splitPackages(o: { pkgRoot: string; version: string; arch: string; splits: readonly SplitPackage[]; log(l: string): void }): SplitResult[] {
  const results: SplitResult[] = [];
  const parent = path.dirname(o.pkgRoot);
  for (const s of o.splits) {
    const fullName = `${s.name}-${o.arch}-${o.version}`;
    const root = path.join(parent, fullName);
    fs.rmSync(root, { recursive: true, force: true });
    fs.mkdirSync(root, { recursive: true });
    const moved: string[] = [];
    for (const claim of s.claim) {
      for (const rel of globPaths(o.pkgRoot, claim.glob)) {
        const from = path.join(o.pkgRoot, rel);
        const to = claim.dir ? path.join(root, claim.dir, path.basename(rel)) : path.join(root, rel);
        fs.mkdirSync(path.dirname(to), { recursive: true });
        fs.renameSync(from, to);
        fs.symlinkSync(path.relative(path.dirname(from), to), from);
        moved.push(rel);
        o.log(`${s.name}: claims ${rel}`);
      }
    }
    results.push({ name: s.name, fullName, root, moved });
  }
  return results;
}
