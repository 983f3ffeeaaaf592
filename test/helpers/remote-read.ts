/**
 * A separate process that reads one file of a remote image through HttpSource and prints its
 * sha256 and how many chunks are still missing: how the tests show that a cache file written by
 * one process is reused by the next (the in-process registry would hide that).
 * Usage: node remote-read.js '<json: {spec, files, path, timeoutMs}>'
 */
import * as crypto from 'node:crypto';
import { HttpClient, HttpSource, type CacheFiles, type RemoteImageSpec } from '../../src/io/http-source';
import { Image } from '../../src/reader/image';

export interface RemoteReadArgs {
  spec: RemoteImageSpec;
  files: CacheFiles;
  path: string;
  timeoutMs: number;
}

if (require.main === module) {
  const a = JSON.parse(process.argv[2]!) as RemoteReadArgs;
  const client = new HttpClient({ timeoutMs: a.timeoutMs, retries: 1, log: (m) => process.stderr.write(m + '\n') });
  const src = new HttpSource(a.spec, a.files, client);
  const before = src.missingChunks;
  const image = new Image(src);
  const data = image.read(image.resolve(a.path));
  process.stdout.write(JSON.stringify({ sha256: crypto.createHash('sha256').update(data).digest('hex'), missingBefore: before, missingAfter: src.missingChunks }) + '\n');
  void client.terminate().then(() => process.exit(0));
}
