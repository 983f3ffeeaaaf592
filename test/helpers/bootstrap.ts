/**
 * The toolchain store `distri bootstrap` makes from Debian's .debs, shared by every test file that
 * needs gcc, glibc and friends in /ro: built once per machine under fixtures/build/bootstrap-store
 * (the command's own stamp makes later runs reuse it in well under a second), with the .debs cached
 * under fixtures/build/bootstrap-cache.
 *
 * Returns an Availability saying why not when it cannot be had (not root, no apt/dpkg, no network).
 * With CI=true that is a failure, not a skip: CI must run these tests.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { isRoot, repoRoot, toolAvailable, type Availability } from '../oracle/tools';

let memo: ({ store: string } & Availability) | Availability | undefined;

export function bootstrapPaths(): { store: string; cache: string } {
  const build = path.join(repoRoot(), 'fixtures', 'build');
  return { store: path.join(build, 'bootstrap-store'), cache: path.join(build, 'bootstrap-cache') };
}

function attempt(): ({ store: string } & Availability) | Availability {
  const root = isRoot();
  if (!root.ok) return root;
  for (const t of ['apt-get', 'dpkg-deb', 'unshare']) {
    const a = toolAvailable(t);
    if (!a.ok) return a;
  }
  const cli = path.join(repoRoot(), 'dist', 'src', 'cli', 'main.js');
  if (!fs.existsSync(cli)) return { ok: false, why: `${cli} missing (run tsc first)` };
  const { store, cache } = bootstrapPaths();
  const started = Date.now();
  const r = spawnSync(process.execPath, [cli, 'bootstrap', '--store', store, '--cache', cache, '--json'], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) return { ok: false, why: `distri bootstrap failed (status ${r.status ?? r.signal}): ${(r.stderr || '').trim().split('\n').slice(-3).join(' / ')}` };
  const result = JSON.parse(r.stdout) as { reused: boolean; seconds: number };
  if (!result.reused) console.warn(`bootstrap store made in ${((Date.now() - started) / 1000).toFixed(1)} s at ${store}`);
  return { ok: true, store };
}

/** The bootstrap store's path, or why there is none (thrown instead under CI=true). */
export function bootstrapStore(): ({ store: string } & Availability) | Availability {
  memo ??= attempt();
  if (!memo.ok && process.env.CI === 'true') throw new Error(`bootstrap store unavailable in CI: ${memo.why}`);
  return memo;
}
