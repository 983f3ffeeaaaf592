/**
 * Availability of the external oracles (squashfs-tools, attr, the kernel driver) and the one way
 * tests react when one is missing: skip LOUDLY — a node:test skip carrying the reason, and a
 * warning on stderr — never a silent pass.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { TestContext } from 'node:test';

export type Availability = { ok: boolean; why?: string };

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

/** The first unavailable check, or ok. Accepts tool names and ready-made availabilities. */
export function allAvailable(...checks: (string | Availability)[]): Availability {
  for (const c of checks) {
    const a = typeof c === 'string' ? toolAvailable(c) : c;
    if (!a.ok) return a;
  }
  return { ok: true };
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
  warn(t.name, a.why ?? 'unavailable');
  t.skip(a.why ?? 'unavailable');
  return false;
}

export function isRoot(): Availability {
  return typeof process.getuid === 'function' && process.getuid() === 0
    ? { ok: true }
    : { ok: false, why: 'not running as root' };
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
