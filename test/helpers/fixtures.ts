/**
 * The mksquashfs fixture matrix (fixtures/build.sh) as tests see it: built on first use (the
 * script is idempotent and takes a lock, so several test files may ask), then listed from
 * fixtures/build/manifest.json.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { allAvailable, isRoot, repoRoot, type Availability } from '../oracle/tools';

export interface FixtureImage {
  name: string;
  file: string;
  compressor: string;
  blockSize: number;
  fragments: string;
  xattrs: boolean;
  exports: boolean;
  uncompressed: boolean;
  allRoot: boolean;
}

let built: { images: FixtureImage[]; tree: string } | undefined;

export function matrixAvailable(): Availability {
  return allAvailable('mksquashfs', isRoot());
}

/** Builds (if needed) and lists the matrix. Throws with the script's output if the build fails. */
export function fixtureMatrix(): { images: FixtureImage[]; tree: string } {
  if (built) return built;
  const root = repoRoot();
  const r = spawnSync('bash', [path.join(root, 'fixtures/build.sh')], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`fixtures/build.sh failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
  const dir = path.join(root, 'fixtures/build');
  const m = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as { tree: string; images: FixtureImage[] };
  built = { tree: path.join(dir, m.tree), images: m.images.map((i) => ({ ...i, file: path.join(dir, i.file) })) };
  return built;
}
