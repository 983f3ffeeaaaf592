/**
 * Availability of the external oracles (squashfs-tools, attr, the kernel driver) and the one way
 * tests react when one is missing: skip LOUDLY — a node:test skip carrying the reason, and a
 * warning on stderr — never a silent pass.
 *
 * With CI=true a missing oracle or capability is a FAILURE instead: a CI run that is green because
 * the kernel and FUSE tests were skipped proves nothing. `skipUnless` throws where it is asked (at
 * declaration the test file fails, inside a test that test fails), naming what is missing.
 * `notApplicable` is the one skip CI allows: for what no machine setup can change (the running
 * kernel was built without a compressor, a test about the other transport, a different
 * mksquashfs release's bytes). Every skip in the suite goes through one of the two.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { TestContext } from 'node:test';

/**
 * `notApplicable`: missing for a reason no machine setup changes (the running kernel's build), so
 * CI skips it too, loudly. Everything else missing fails under CI=true.
 */
export type Availability = { ok: boolean; why?: string; notApplicable?: boolean };

const cache = new Map<string, Availability>();

/** Whether `name` is an executable on PATH. */
export function toolAvailable(name: string): Availability {
  const hit = cache.get(name);
  if (hit) return hit;
  let result: Availability = { ok: false, why: `${name} not installed (not found on PATH)` };
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (dir === '') continue;
    try {
      fs.accessSync(path.join(dir, name), fs.constants.X_OK);
      result = { ok: true };
      break;
    } catch {
      // not in this directory
    }
  }
  cache.set(name, result);
  return result;
}

/**
 * The first unavailable check, or ok; one the machine could fix comes before a `notApplicable`
 * one, so that CI never skips for the second while the first is missing. Accepts tool names and
 * ready-made availabilities.
 */
export function allAvailable(...checks: (string | Availability)[]): Availability {
  let inapplicable: Availability | undefined;
  for (const c of checks) {
    const a = typeof c === 'string' ? toolAvailable(c) : c;
    if (a.ok) continue;
    if (!a.notApplicable) return a;
    inapplicable ??= a;
  }
  return inapplicable ?? { ok: true };
}

/** Whether missing oracles fail instead of skipping (CI=true, as CI services set it). */
export function strictCi(): boolean {
  return process.env.CI === 'true' || process.env.CI === '1';
}

/** The error a missing oracle raises under CI=true. */
export class MissingInCi extends Error {
  constructor(what: string, why: string) {
    super(`CI=true: ${what} cannot run here (${why}); CI must not pass by skipping it — install what is missing (see .ci/run)`);
    this.name = 'MissingInCi';
  }
}

const warned = new Set<string>();
function warn(what: string, why: string): void {
  const line = `SKIP ${what}: ${why}`;
  if (warned.has(line)) return;
  warned.add(line);
  console.warn(`\u001b[33m${line}\u001b[0m`);
}

/**
 * For `test(name, { skip: skipUnless(...) }, fn)`: undefined when everything is available,
 * otherwise the reason (which node:test prints next to the skipped test) after warning on stderr.
 */
export function skipUnless(what: string, ...checks: (string | Availability)[]): string | undefined {
  const a = allAvailable(...checks);
  if (a.ok) return undefined;
  if (strictCi() && !a.notApplicable) throw new MissingInCi(what, a.why ?? 'unavailable');
  warn(what, a.why ?? 'unavailable');
  return a.why ?? 'unavailable';
}

/**
 * Inside a test: `if (!requireTools(t, 'mksquashfs', kernelAvailable())) return;` — skips the test
 * with the reason and a warning, and returns false, when something is missing.
 */
export function requireTools(t: TestContext, ...checks: (string | Availability)[]): boolean {
  const a = allAvailable(...checks);
  if (a.ok) return true;
  if (strictCi() && !a.notApplicable) throw new MissingInCi(t.name, a.why ?? 'unavailable');
  warn(t.name, a.why ?? 'unavailable');
  t.skip(a.why ?? 'unavailable');
  return false;
}

/**
 * A skip that is not the machine's fault and that CI allows (see the header): returns the reason
 * for `{ skip }` after a loud warning. Pass `t` to skip a running test instead.
 */
export function notApplicable(what: string, why: string, t?: TestContext): string {
  warn(what, why);
  t?.skip(why);
  return why;
}

export function isRoot(): Availability {
  return typeof process.getuid === 'function' && process.getuid() === 0 ? { ok: true } : { ok: false, why: 'not running as root' };
}

/** The repository root (the directory holding package.json), from source or from dist/. */
export function repoRoot(): string {
  let dir = __dirname;
  for (;;) {
    if (fs.existsSync(path.join(dir, 'package.json')) && fs.existsSync(path.join(dir, 'fixtures'))) return dir;
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`no repository root above ${__dirname}`);
    dir = up;
  }
}
