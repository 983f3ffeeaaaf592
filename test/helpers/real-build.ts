/**
 * What the real-build tests (build-real*.test.ts) share: the bootstrap store and one Debian source
 * archive, or why they cannot run (outside CI a loud skip; with CI=true a failure, since CI must run
 * the real builds), and the CLI run as a child process.
 */
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { isRoot } from '../oracle/tools';
import { bootstrapStore } from './bootstrap';
import { debianSourceFile } from './debian-source';

export interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

const CLI = path.join(__dirname, '..', '..', 'src', 'cli', 'main.js');

/** `distri ARGS…` in a child process (never in this one: the build mounts FUSE); env replaces ours. */
export function runCli(args: string[], cwd?: string, env?: NodeJS.ProcessEnv): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd, env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

/** The bootstrap store and the source archive `file` of Debian's `pkg` (checked against `sha256`). */
export function realBuildInputs(label: string, pkg: string, file: string, sha256: string): { store: string; tarball: string; why?: undefined } | { why: string } {
  let why: string | undefined;
  let store = '';
  let tarball = '';
  const root = isRoot();
  if (!root.ok) why = root.why;
  if (!why) {
    const b = bootstrapStore();
    if ('store' in b) store = b.store;
    else why = b.why;
  }
  if (!why) {
    const s = debianSourceFile(pkg, file, sha256);
    if ('path' in s) tarball = s.path;
    else why = s.why;
  }
  if (why) {
    if (process.env.CI === 'true') throw new Error(`${label}: ${why} (CI must run the real build)`);
    console.warn(`\u001b[33mSKIP ${label}: ${why}\u001b[0m`);
    return { why };
  }
  return { store, tarball };
}
