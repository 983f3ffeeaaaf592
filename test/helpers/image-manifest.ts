/**
 * The engine's own view of an image as a Manifest (see test/oracle/manifest.ts for the exact entry
 * semantics), so that it can be compared with a kernel mount, an unsquashfs extraction or a
 * committed expected listing.
 */
import { createHash } from 'node:crypto';
import type { Image } from '../../src/reader/image';
import { walk } from '../../src/reader/walk';
import { sortManifest, type Entry, type Manifest } from '../oracle/manifest';

export function imageManifest(img: Image, options: { xattrs?: boolean; hash?: boolean } = {}): Manifest {
  const out: Entry[] = [];
  for (const it of walk(img)) {
    const inode = it.inode;
    const st = img.stat(inode);
    const e: Entry = {
      path: it.path,
      type: inode.kind,
      mode: inode.permissions,
      uid: st.uid,
      gid: st.gid,
      size: inode.kind === 'file' ? st.size : 0,
      mtime: st.mtime,
      nlink: st.nlink,
    };
    if (inode.kind === 'symlink') e.target = img.readlink(inode);
    if (st.major !== undefined) e.rdev = { major: st.major, minor: st.minor! };
    if (inode.kind === 'file' && options.hash !== false) {
      const h = createHash('sha256');
      for (const c of img.chunks(inode)) h.update(c);
      e.sha256 = h.digest('hex');
    }
    if (options.xattrs !== false) {
      const xs = img.xattrs(inode);
      if (xs.length) {
        const sorted = [...xs].sort((a, b) => Buffer.compare(Buffer.from(a.name), Buffer.from(b.name)));
        e.xattrs = Object.fromEntries(sorted.map((x) => [x.name, Buffer.from(x.value).toString('hex')]));
      }
    }
    out.push(e);
  }
  return sortManifest(out);
}
