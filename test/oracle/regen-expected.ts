/**
 * Writes IMAGE.expected.json next to each given image: the Manifest of its kernel mount. Run by
 * fixtures/make-images.sh after a build (`node dist/test/oracle/regen-expected.js IMAGE...`); the
 * committed JSON files then let core tests check the reader without squashfs-tools or root.
 */
import * as fs from 'node:fs';
import { withKernelMount } from './kernel';
import { formatManifest, walkDirectory } from './manifest';

export function expectedPathFor(image: string): string {
  return image.replace(/\.sqfs$/, '') + '.expected.json';
}

export async function writeExpected(image: string): Promise<string> {
  const manifest = await withKernelMount(image, (dir) => walkDirectory(dir));
  const out = expectedPathFor(image);
  fs.writeFileSync(out, formatManifest(manifest));
  return out;
}

if (require.main === module) {
  (async () => {
    const images = process.argv.slice(2);
    if (images.length === 0) throw new Error('usage: regen-expected.js IMAGE.sqfs...');
    for (const image of images) console.log(`wrote ${await writeExpected(image)}`);
  })().catch((e: unknown) => {
    console.error(e instanceof Error ? e.message : e);
    process.exitCode = 1;
  });
}
