/**
 * Upstream source archives from Debian's source archive, for the build tests: `apt-get source
 * --download-only` with a private apt directory holding one deb-src line (the machine's own apt
 * lists are never touched). Cached once per machine under fixtures/build/sources/, checked by
 * sha256 every time it is handed out.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { repoRoot, toolAvailable, type Availability } from '../oracle/tools';

const SUITE = 'bookworm';

function sha256(file: string): string {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

/**
 * The file `file` (e.g. `hello_2.10.orig.tar.gz`) of Debian source package `pkg`, or why not.
 * `sha` pins its bytes.
 */
export function debianSourceFile(pkg: string, file: string, sha: string): { path: string } | Availability {
  if (!toolAvailable('apt-get').ok) return { ok: false, why: 'apt-get not installed' };
  const dir = path.join(repoRoot(), 'fixtures', 'build', 'sources');
  const target = path.join(dir, file);
  if (fs.existsSync(target) && sha256(target) === sha) return { path: target };
  const apt = path.join(dir, '.apt');
  for (const d of ['lists/partial', 'cache/archives/partial', 'parts', 'dl']) fs.mkdirSync(path.join(apt, d), { recursive: true });
  fs.writeFileSync(path.join(apt, 'sources.list'), `deb-src http://deb.debian.org/debian ${SUITE} main\n`);
  const o = [
    '-o',
    `Dir::Etc::SourceList=${path.join(apt, 'sources.list')}`,
    '-o',
    `Dir::Etc::SourceParts=${path.join(apt, 'parts')}`,
    '-o',
    `Dir::State::Lists=${path.join(apt, 'lists')}`,
    '-o',
    `Dir::Cache=${path.join(apt, 'cache')}`,
    '-o',
    'APT::Sandbox::User=root',
  ];
  if (!fs.readdirSync(path.join(apt, 'lists')).some((f) => f.includes('Sources'))) {
    const u = spawnSync('apt-get', [...o, '-q', 'update'], { encoding: 'utf8' });
    if (u.status !== 0) return { ok: false, why: `apt-get update (private deb-src list) failed: ${u.stderr.trim().split('\n').pop()}` };
  }
  const s = spawnSync('apt-get', [...o, '-q', 'source', '--download-only', pkg], { cwd: path.join(apt, 'dl'), encoding: 'utf8' });
  const got = path.join(apt, 'dl', file);
  if (s.status !== 0 || !fs.existsSync(got)) return { ok: false, why: `apt-get source --download-only ${pkg} failed: ${(s.stderr || s.stdout).trim().split('\n').pop()}` };
  const have = sha256(got);
  if (have !== sha) return { ok: false, why: `${file} from Debian has sha256 ${have}, expected ${sha}` };
  fs.renameSync(got, target);
  return { path: target };
}
