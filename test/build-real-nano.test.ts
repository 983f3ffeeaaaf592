// The article's example, for real: nano (Debian's nano_7.2.orig.tar.xz, upstream's release) with
// `dep: "ncurses"`, built against the bootstrap store; its runtime deps name ncurses and glibc, and
// `nano --version` runs from /ro/bin in a distri-style root. Slow (minutes).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { isRoot } from './oracle/tools';
import { bootstrapStore } from './helpers/bootstrap';
import { debianSourceFile } from './helpers/debian-source';
import { parseMeta } from '../src/store/meta';

const CLI = path.join(__dirname, '..', 'src', 'cli', 'main.js');
const NANO_SHA = '86f3442768bd2873cec693f83cdf80b4b444ad3cc14760b74361474fc87a4526';

function run(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args]);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

let why: string | undefined;
let store = '';
let tarball = '';
{
  const root = isRoot();
  if (!root.ok) why = root.why;
  if (!why) {
    const b = bootstrapStore();
    if ('store' in b) store = b.store;
    else why = b.why;
  }
  if (!why) {
    const s = debianSourceFile('nano', 'nano_7.2.orig.tar.xz', NANO_SHA);
    if ('path' in s) tarball = s.path;
    else why = s.why;
  }
  if (why) {
    if (process.env.CI === 'true') throw new Error(`build-real-nano: ${why} (CI must run the real build)`);
    console.warn(`\u001b[33mSKIP build-real-nano: ${why}\u001b[0m`);
  }
}

describe('distri build: nano with dep ncurses', { skip: why }, () => {
  let tmp = '';
  let out = '';
  let result: { status: number | null; stdout: string; stderr: string };
  const full = 'nano-amd64-7.2-1';
  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'build-nano-'));
    fs.mkdirSync(path.join(tmp, 'pkgs/nano'), { recursive: true });
    fs.writeFileSync(
      path.join(tmp, 'pkgs/nano/build.textproto'),
      `source: "${pathToFileURL(tarball)}"\nhash: "${NANO_SHA}"\nversion: "7.2-1"\n\ncbuilder: {}\n\n# build dependencies:\ndep: "ncurses"\n`,
    );
    out = path.join(tmp, 'out');
    result = await run(['build', '--distriroot', tmp, '--pkg', 'nano', '--store', store, '--jobs', '2', '--out', out]);
  });
  after(() => {
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('builds; the runtime deps line names the ncurses and glibc packages', () => {
    assert.equal(result.status, 0, result.stderr.slice(-4000));
    const line = result.stderr.split('\n').find((l) => l.startsWith('nano runtime deps: '));
    assert.ok(line, result.stderr.slice(-2000));
    assert.match(line!, /"ncurses-amd64-[^"]+"/);
    assert.match(line!, /"glibc-amd64-[^"]+"/);
    for (const l of result.stderr.split('\n').filter((l) => /^step \d+: /.test(l))) console.log(`  ${l}`);
    const meta = parseMeta(fs.readFileSync(path.join(out, `${full}.meta.textproto`), 'utf8'));
    assert.ok(meta.runtimeDep.some((d) => d.startsWith('ncurses-amd64-')));
  });

  it('nano --version runs from /ro/bin in a distri-style root', async () => {
    const both = path.join(tmp, 'store');
    fs.mkdirSync(both);
    for (const f of fs.readdirSync(store)) if (/-\d[^/]*\.(squashfs|meta\.textproto)$/.test(f)) fs.symlinkSync(path.join(store, f), path.join(both, f));
    for (const f of [`${full}.squashfs`, `${full}.meta.textproto`]) fs.copyFileSync(path.join(out, f), path.join(both, f));
    const r = await run(['run', '--store', both, '--', 'nano', '--version']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /GNU nano, version 7\.2/);
  });
});
