/**
 * Wrappers: `bin/<name>` for every program in `out/bin` and `out/sbin`. `/ro/bin` (the exchange
 * dir) links to these, so a program started from PATH runs with its package's search paths in
 * front: PATH, LD_LIBRARY_PATH, PERL5LIB, PYTHONPATH over the package and its runtime deps
 * (distri used the build deps here: **fix**), then exec's `/ro/<full>/out/bin/<name>` with the
 * caller's argv (argv[0] unchanged, so programs that look at their own name keep working).
 *
 * A wrapper is a tiny C program compiled in the sandbox by the build's own gcc against the glibc
 * package (distri compiled them too; an ELF wrapper can be a script's interpreter, a script cannot
 * on every kernel). Exceptions, as in distri:
 *  - `wrappers/<name>` in the package dir wins: its text, with `${DISTRI_…}` substituted;
 *  - bash's `sh` and `bash`, zsh's `zsh*` become relative symlinks (a wrapper would run a shell
 *    that wrappers themselves may need; a wrapped zsh does not know it is a login shell);
 *  - without gcc among the build deps (gomodbuilder), a `#!/bin/sh` script does the same job.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

export type WrapperPlan = { name: string; kind: 'custom'; text: string } | { name: string; kind: 'symlink'; target: string } | { name: string; kind: 'program'; real: string };

/** Which wrapper each program of out/bin and out/sbin gets (sorted; out/bin wins a name clash). */
export function planWrappers(o: { pkgRoot: string; pkg: string; fullName: string; pkgDir: string; substitute(s: string): string; log(l: string): void }): WrapperPlan[] {
  const plans = new Map<string, WrapperPlan>();
  for (const dir of ['bin', 'sbin']) {
    let names: string[];
    try {
      names = fs.readdirSync(path.join(o.pkgRoot, 'out', dir)).sort();
    } catch {
      continue;
    }
    for (const name of names) {
      if (plans.has(name)) {
        o.log(`out/${dir}/${name}: a program of that name is in out/bin already; bin/${name} wraps that one`);
        continue;
      }
      const custom = path.join(o.pkgDir, 'wrappers', name);
      if (fs.existsSync(custom)) {
        plans.set(name, { name, kind: 'custom', text: o.substitute(fs.readFileSync(custom, 'utf8')) });
      } else if ((o.pkg === 'bash' && (name === 'sh' || name === 'bash')) || (o.pkg === 'zsh' && (name === 'zsh' || name.startsWith('zsh-')))) {
        plans.set(name, { name, kind: 'symlink', target: `../out/${dir}/${name}` });
      } else {
        plans.set(name, { name, kind: 'program', real: `/ro/${o.fullName}/out/${dir}/${name}` });
      }
    }
  }
  return [...plans.values()];
}

const cString = (s: string): string => JSON.stringify(s); // ASCII paths: JSON's escapes are C's

/** The C source of one wrapper. */
export function wrapperSource(real: string, env: Record<string, string>): string {
  const sets = Object.entries(env)
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([k, v]) => `  prepend(${cString(k)}, ${cString(v)});`)
    .join('\n');
  return `/* distri wrapper: search paths of the package and its runtime deps, then the real program. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void prepend(const char *name, const char *dirs) {
  const char *old = getenv(name);
  if (old == NULL || old[0] == '\\0') {
    setenv(name, dirs, 1);
    return;
  }
  size_t n = strlen(dirs) + 1 + strlen(old) + 1;
  char *joined = malloc(n);
  if (joined == NULL) return;
  snprintf(joined, n, "%s:%s", dirs, old);
  setenv(name, joined, 1);
  free(joined);
}

int main(int argc, char *argv[]) {
  (void)argc;
${sets}
  execv(${cString(real)}, argv);
  fprintf(stderr, "%s: cannot run ${real.replace(/[%"\\]/g, '')}: ", argv[0]);
  perror(NULL);
  return 127;
}
`;
}

/** The script wrapper used where no compiler is at hand. */
export function wrapperScript(real: string, env: Record<string, string>): string {
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  const lines = Object.entries(env)
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([k, v]) => `${k}=${q(v)}"\${${k}:+:$${k}}"; export ${k}`);
  return `#!/bin/sh\n${lines.join('\n')}\nexec ${q(real)} "$@"\n`;
}

/** Writes the custom and symlink wrappers; returns the programs still to compile. */
export function writeSimpleWrappers(pkgRoot: string, plans: readonly WrapperPlan[]): Array<Extract<WrapperPlan, { kind: 'program' }>> {
  const bin = path.join(pkgRoot, 'bin');
  const rest: Array<Extract<WrapperPlan, { kind: 'program' }>> = [];
  if (plans.length > 0) fs.mkdirSync(bin, { recursive: true });
  for (const p of plans) {
    const at = path.join(bin, p.name);
    fs.rmSync(at, { force: true });
    if (p.kind === 'custom') fs.writeFileSync(at, p.text, { mode: 0o755 });
    else if (p.kind === 'symlink') fs.symlinkSync(p.target, at);
    else rest.push(p);
  }
  return rest;
}
