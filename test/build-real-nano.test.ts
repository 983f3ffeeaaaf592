// The article's example, for real: nano (Debian's nano_7.2.orig.tar.xz, upstream's release) with
// `dep: "ncurses"`, built against the bootstrap store; its runtime deps name ncurses and glibc, and
// `nano --version` runs from /ro/bin in a distri-style root. Slow (minutes).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { realBuildInputs, runCli } from './helpers/real-build';
import { parseMeta } from '../src/store/meta';

const NANO_SHA = '86f3442768bd2873cec693f83cdf80b4b444ad3cc14760b74361474fc87a4526';

const inputs = realBuildInputs('build-real-nano', 'nano', 'nano_7.2.orig.tar.xz', NANO_SHA);
const why = inputs.why;
const store = inputs.why === undefined ? inputs.store : '';
const tarball = inputs.why === undefined ? inputs.tarball : '';
const run = runCli;

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
