/**
 * input_digest: what a package was built from, so that `batch` can tell a stale package from a
 * fresh one without rebuilding it. A sha256 (hex) over, each part length-prefixed so no two
 * different inputs can run together into the same bytes:
 *   the build.textproto bytes, the resolved build-dep full names (in resolution order), every
 *   cherry_pick patch's bytes (in order), every extra_file's bytes, and each split package's
 *   declared runtime deps.
 * distri hashed the re-serialised proto with FNV-128; hashing the file as written means a changed
 * comment counts as a change too, which errs on the side of rebuilding.
 */
import { createHash } from 'node:crypto';

export interface DigestInput {
  recipe: Uint8Array;
  buildDeps: readonly string[];
  patches: readonly Uint8Array[];
  extraFiles?: readonly Uint8Array[];
  splitRuntimeDeps?: readonly (readonly string[])[];
}

export function inputDigest(i: DigestInput): string {
  const h = createHash('sha256');
  const part = (tag: string, bytes: Uint8Array | string) => {
    const b = typeof bytes === 'string' ? Buffer.from(bytes) : bytes;
    h.update(`${tag}:${b.length}:`);
    h.update(b);
  };
  part('recipe', i.recipe);
  part('deps', i.buildDeps.join(','));
  for (const p of i.patches) part('patch', p);
  for (const e of i.extraFiles ?? []) part('extra', e);
  for (const s of i.splitRuntimeDeps ?? []) part('split', s.join(','));
  return h.digest('hex');
}
