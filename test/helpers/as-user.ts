/**
 * Copies of the built CLI: for another user (nobody), and without optional addons.
 *
 * Running the built CLI as another user (nobody), wherever the checkout lives. A clone inside a
 * `mktemp -d` folder (mode 0700) or under /root cannot be entered by nobody, so running
 * `<checkout>/dist/src/cli/main.js` as nobody fails with "Cannot find module" before our code
 * starts. Tests that run the CLI as another user get a copy it can reach instead: dist/src, the
 * package.json and the runtime node_modules, hard-linked where the file system allows (else
 * copied), in a 0755 directory under /tmp that is removed when the process exits. The node binary
 * is copied too when nobody cannot run it where it is (a node under /root/.nvm, say).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { repoRoot } from '../oracle/tools';

const NOBODY = ['--reuid=nobody', '--regid=nogroup', '--clear-groups'];

/** Development-only packages the CLI never loads. */
const DEV_ONLY = new Set(['typescript', '@types', 'fast-check', 'pure-rand', '.bin', '.package-lock.json']);

let copy: { dir: string; node: string; cli: string } | undefined;
const copies = new Map<string, string>();

/** Whether nobody can run `argv` (exit 0). */
function nobodyCanRun(argv: string[]): boolean {
  return spawnSync('setpriv', [...NOBODY, ...argv], { stdio: 'ignore' }).status === 0;
}

/** cp -al (hard links: instant, no space) when on one file system, else a real copy. */
function link(from: string, to: string): void {
  const r = spawnSync('cp', ['-al', from, to], { encoding: 'utf8' });
  if (r.status !== 0) {
    fs.rmSync(to, { recursive: true, force: true });
    fs.cpSync(from, to, { recursive: true, verbatimSymlinks: true });
  }
}

/**
 * A copy of the built CLI with its runtime node_modules, in a 0755 directory under /tmp (not
 * os.tmpdir(): TMPDIR may itself sit somewhere nobody can enter), leaving out the packages named
 * in `without` (an install where optional addons did not build). Returns the CLI entry point.
 */
export function cliCopy(without: readonly string[] = []): string {
  const key = [...without].sort().join(',');
  const hit = copies.get(key);
  if (hit) return hit;
  const root = repoRoot();
  const dir = fs.mkdtempSync('/tmp/distri-cli-');
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  fs.chmodSync(dir, 0o755);
  fs.mkdirSync(path.join(dir, 'dist'));
  link(path.join(root, 'dist', 'src'), path.join(dir, 'dist', 'src'));
  fs.copyFileSync(path.join(root, 'package.json'), path.join(dir, 'package.json'));
  fs.mkdirSync(path.join(dir, 'node_modules'));
  for (const name of fs.readdirSync(path.join(root, 'node_modules'))) {
    if (!DEV_ONLY.has(name) && !without.includes(name)) link(path.join(root, 'node_modules', name), path.join(dir, 'node_modules', name));
  }
  const cli = path.join(dir, 'dist', 'src', 'cli', 'main.js');
  copies.set(key, cli);
  return cli;
}

/** The node binary and CLI entry point nobody can run, copied on first use. */
export function cliForOtherUser(): { node: string; cli: string } {
  if (copy) return copy;
  const cli = cliCopy();
  const dir = path.dirname(path.dirname(path.dirname(path.dirname(cli))));
  let node = process.execPath;
  if (!nobodyCanRun([node, '-e', '0'])) {
    node = path.join(dir, 'node');
    fs.copyFileSync(process.execPath, node);
    fs.chmodSync(node, 0o755);
  }
  copy = { dir, node, cli };
  return copy;
}

/** Runs the CLI as nobody, from the reachable copy. */
export function runCliAsNobody(args: string[]): { status: number | null; stderr: string; stdout: string } {
  const { node, cli } = cliForOtherUser();
  const r = spawnSync('setpriv', [...NOBODY, node, cli, ...args], { encoding: 'utf8' });
  if (r.error) throw r.error;
  return { status: r.status, stderr: r.stderr, stdout: r.stdout };
}
