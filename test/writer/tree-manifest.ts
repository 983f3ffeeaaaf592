/**
 * The Manifest (test/oracle/manifest.ts semantics) that an in-code writer tree must produce once
 * packed: what the kernel, unsquashfs and our reader are compared against.
 */
import { createHash } from 'node:crypto';
import { sortManifest, type Entry, type Manifest } from '../oracle/manifest';
import type { DirNode, TreeNode } from '../../src/writer/tree';

export function treeManifest(root: DirNode, options: { xattrs?: boolean; hash?: boolean } = {}): Manifest {
  const names = new Map<TreeNode, number>();
  const count = (d: DirNode) => {
    for (const e of d.entries) {
      names.set(e.node, (names.get(e.node) ?? 0) + 1);
      if (e.node.kind === 'dir') count(e.node);
    }
  };
  count(root);
  const out: Entry[] = [];
  const visit = (n: TreeNode, path: string) => {
    const e: Entry = {
      path,
      type: n.kind,
      mode: n.mode & 0o7777,
      uid: n.uid,
      gid: n.gid,
      size: n.kind === 'file' ? n.content.size : 0,
      mtime: n.mtime,
      nlink: n.kind === 'dir' ? 2 + n.entries.filter((c) => c.node.kind === 'dir').length : (names.get(n) ?? 1),
    };
    if (n.kind === 'symlink') e.target = Buffer.from(n.target).toString('utf8');
    if (n.kind === 'blockdev' || n.kind === 'chardev') e.rdev = { major: n.major, minor: n.minor };
    if (n.kind === 'file' && options.hash !== false) {
      const h = createHash('sha256');
      const buf = Buffer.alloc(1 << 20);
      for (let p = 0; p < n.content.size; p += buf.length) {
        const len = Math.min(buf.length, n.content.size - p);
        n.content.read(p, buf.subarray(0, len));
        h.update(buf.subarray(0, len));
      }
      n.content.close?.();
      e.sha256 = h.digest('hex');
    }
    if (options.xattrs !== false && n.xattrs.length) {
      const sorted = [...n.xattrs].sort((a, b) => Buffer.compare(Buffer.from(a.name), Buffer.from(b.name)));
      e.xattrs = Object.fromEntries(sorted.map((x) => [x.name, Buffer.from(x.value).toString('hex')]));
    }
    out.push(e);
    if (n.kind === 'dir') for (const c of n.entries) visit(c.node, path ? `${path}/${Buffer.from(c.name).toString('utf8')}` : Buffer.from(c.name).toString('utf8'));
  };
  visit(root, '');
  return sortManifest(out);
}

export function withoutXattrs(m: Manifest): Manifest {
  return m.map(({ xattrs: _x, ...rest }) => rest);
}
