/**
 * CI must never be green with the oracles skipped: with CI=true a missing tool or capability fails
 * the test that needs it; without CI it is a loud skip. Checked on a real node:test run of a small
 * test file that asks for a tool no machine has, through both ways the suite asks (`skipUnless` at
 * declaration, `requireTools` inside a test), and for the one skip CI allows (`notApplicable`).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, test } from 'node:test';
import assert from 'node:assert/strict';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'distri-strict-ci-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const tools = path.join(__dirname, 'oracle', 'tools.js');
const MISSING = 'distri-no-such-tool';

function runTestFile(body: string, ci: boolean): { status: number | null; out: string } {
  const file = path.join(tmp, `case-${Math.random().toString(36).slice(2)}.test.js`);
  fs.writeFileSync(file, `const { test } = require('node:test');\nconst tools = require(${JSON.stringify(tools)});\n${body}\n`);
  const env = { ...process.env };
  delete env.CI;
  delete env.NODE_TEST_CONTEXT; // else the child thinks it runs inside this test run and runs nothing
  if (ci) env.CI = 'true';
  const r = spawnSync(process.execPath, ['--test', '--test-reporter=tap', file], { encoding: 'utf8', env });
  return { status: r.status, out: r.stdout + r.stderr };
}

const declared = `test('needs a tool', { skip: tools.skipUnless('the case', '${MISSING}') }, () => {});`;
const inside = `test('needs a tool', (t) => { if (!tools.requireTools(t, '${MISSING}')) return; });`;
const capability = `test('needs root', (t) => { if (!tools.requireTools(t, { ok: false, why: 'not running as root' })) return; });`;

for (const [name, body] of [
  ['skipUnless at declaration', declared],
  ['requireTools inside a test', inside],
  ['a missing capability', capability],
] as const) {
  test(`${name}: a failure naming what is missing with CI=true, a loud skip without`, () => {
    const strict = runTestFile(body, true);
    assert.notEqual(strict.status, 0, strict.out);
    assert.match(strict.out, /CI=true: .*cannot run here \((distri-no-such-tool not installed|not running as root)/, strict.out);
    const loose = runTestFile(body, false);
    assert.equal(loose.status, 0, loose.out);
    assert.match(loose.out, /# skip(ped)? 1\b/, loose.out);
    assert.match(loose.out, /SKIP .*(distri-no-such-tool not installed|not running as root)/, 'warned on stderr');
  });
}

test('notApplicable (a kernel built without a compressor) skips under CI=true too, loudly', () => {
  const body = `test('lzma on the kernel', { skip: tools.skipUnless('lzma kernel mount', { ok: false, why: 'no lzma driver', notApplicable: true }) }, () => {});`;
  const strict = runTestFile(body, true);
  assert.equal(strict.status, 0, strict.out);
  assert.match(strict.out, /# skip(ped)? 1\b/);
  assert.match(strict.out, /SKIP lzma kernel mount: no lzma driver/);
});

test('a fixable miss is reported before an inapplicable one', () => {
  const body = `test('both', { skip: tools.skipUnless('both', { ok: false, why: 'no lzma driver', notApplicable: true }, '${MISSING}') }, () => {});`;
  const strict = runTestFile(body, true);
  assert.notEqual(strict.status, 0, strict.out);
  assert.match(strict.out, /distri-no-such-tool not installed/);
});
