/**
 * Extraction of an image (or of some of its subtrees) into a directory, like `unsquashfs -d`, so
 * that the result looks exactly like the kernel's mount of the image: contents, owners, modes
 * (setuid included), mtimes, device nodes, fifos, sockets, hard links and xattrs.
 *
 * Three phases, because some attributes undo or block others:
 *  1. create, in walk order (parents first): directories mode 0700, files mode 0600 with their
 *     contents, symlinks (with their owner and mtime at once: nothing later changes them), devices,
 *     fifos, sockets, hard links (same inode number → link()). As root non-directories are chowned
 *     right away: chown clears security.capability and setuid bits, so it must come before both.
 *  2. xattrs, all at once with `setfattr -h --restore` (./xattr-restore.ts). Files are still 0600
 *     and directories 0700, so even a non-root user may add user.* attributes to what will end up
 *     read-only.
 *  3. in reverse walk order (so a directory comes after everything inside it): directory owners,
 *     modes, mtimes. Until then every directory is 0700, which also keeps other users out of the
 *     tree while it is being written.
 *
 * Safety comes from two independent layers: the decoder rejects names that are empty, `.`, `..`,
 * contain `/` or NUL, duplicates and unsorted listings (CORRUPT), and the walker rejects loops and
 * absurd depth; SafeTree (./safe-tree.ts) refuses by itself to write anywhere but inside the
 * destination, whatever names it is given.
 *
 * Not root: owners are left as the extracting user, device nodes are skipped, setuid/setgid bits
 * are dropped, trusted.* and security.* xattrs are skipped; the report counts each so the CLI can
 * say so once. user.* xattrs on anything but files and directories cannot exist on Linux and are
 * skipped (and counted) for everyone.
 */
import * as fs from 'node:fs';
import { SquashfsError } from '../errors';
import type { DirEntry } from '../format/directory';
import type { FileInode, Inode } from '../format/inode';
import { DecompressPool, decodesAhead, parallelChunks } from '../reader/decompress-pool';
import type { Image } from '../reader/image';
import { walkTree } from '../reader/walk';
import { NewFile, writeFile, type FileJob } from './file-contents';
import { SafeTree, type EntryKind } from './safe-tree';
import { restoreXattrs, type XattrJob } from './xattr-restore';

export { ExtractEntryError } from './file-contents';

export interface ExtractOptions {
  /** Extract into a non-empty destination and replace what is in the way (see SafeTree). */
  force?: boolean;
  /** Only these paths inside the image (and the directories leading to them); all when empty. */
  paths?: string[];
  /** Restore xattrs (default true; needs `setfattr` when the image has any). */
  xattrs?: boolean;
  /** Act as root (owners, devices, setuid, trusted./security. xattrs). Default: the real uid is 0. */
  root?: boolean;
  /** Called after each file (and during large ones) with the running counts. */
  onProgress?: (c: Readonly<ExtractCounts>) => void;
}

export interface ExtractCounts {
  dirs: number;
  files: number;
  symlinks: number;
  hardlinks: number;
  devices: number;
  fifos: number;
  sockets: number;
  /** Bytes of file contents written (holes included). */
  bytes: number;
  xattrs: number;
}

export interface ExtractSkipped {
  /** Not root: entries whose owner in the image is not the extracting user. */
  owners: number;
  /** Not root: device nodes not created. */
  devices: number;
  /** Not root: entries whose setuid/setgid bits were dropped. */
  setidBits: number;
  /** Not root: trusted.* / security.* attributes not written. */
  privilegedXattrs: number;
  /** user.* attributes on symlinks, devices, fifos or sockets (Linux allows them only on files and directories). */
  userXattrsOnSpecial: number;
}

export interface ExtractReport {
  counts: ExtractCounts;
  skipped: ExtractSkipped;
  /** setfattr's complaints, one per attribute it could not set. */
  xattrErrors: string[];
  root: boolean;
}

/** xz/lzma files at least this large are decoded ahead by a worker pool (its start costs ~30 ms). */
const PARALLEL_MIN_BYTES = 1 << 20;

interface Pending {
  comps: Uint8Array[];
  /** (Symlinks are finished as they are made, never in the last phase.) */
  kind: Exclude<EntryKind, 'symlink'>;
  ino: number;
  mode: number;
  mtime: number;
  uid?: number;
  gid?: number;
}

/** What to extract: each inode with its components below the destination. */
interface Item {
  inode: Inode;
  comps: Uint8Array[];
  entry?: DirEntry;
}

export async function extract(image: Image, dest: string, options: ExtractOptions = {}): Promise<ExtractReport> {
  const root = options.root ?? (typeof process.getuid === 'function' && process.getuid() === 0);
  const wantXattrs = options.xattrs ?? true;
  const myUid = typeof process.getuid === 'function' ? process.getuid() : -1;
  const myGid = typeof process.getgid === 'function' ? process.getgid() : -1;
  if (wantXattrs && image.hasXattrs && !hasSetfattr()) {
    throw new Error('the image has xattrs and setfattr (package "attr") is not installed: install it, or pass --no-xattrs');
  }
  const counts: ExtractCounts = { dirs: 0, files: 0, symlinks: 0, hardlinks: 0, devices: 0, fifos: 0, sockets: 0, bytes: 0, xattrs: 0 };
  const skipped: ExtractSkipped = { owners: 0, devices: 0, setidBits: 0, privilegedXattrs: 0, userXattrsOnSpecial: 0 };
  const pending: Pending[] = [];
  const jobs: XattrJob[] = [];
  /** inode number → where its first name was extracted (hard links). */
  const firstName = new Map<number, Uint8Array[]>();
  const zeros = new Uint8Array(image.superblock.blockSize);
  // Only where decoding is slow enough to pay for the workers: measured on the Debian rootfs,
  // xz 6.00 → 5.20 s with the pool, zstd 1.35 → 1.51 s and lz4 1.64 → 1.78 s (posting each block
  // to a worker costs more than decoding it here). lzo, which `cat` decodes ahead, was not
  // measured here and stays on this thread as before.
  const decodeAhead = decodesAhead(image, ['xz', 'lzma']);
  // The bits the umask clears from a new file's mode (read by setting it and setting it back;
  // a worker thread may not set it: then every file gets its mode by fchmod, as before).
  let umask = 0o7777;
  try {
    umask = process.umask(0o022);
    process.umask(umask);
  } catch {
    // (not allowed here)
  }
  let pool: DecompressPool | undefined;

  /** The permission bits to set: setuid/setgid only when running as root. */
  const fileMode = (perm: number): number => {
    if (root || !(perm & 0o6000)) return perm;
    skipped.setidBits++;
    return perm & ~0o6000;
  };
  /** The xattrs this user may restore on this kind of entry (the rest counted as skipped). */
  const keptXattrs = (inode: Inode, kind: Inode['kind']) =>
    image.xattrs(inode).filter((x) => {
      if (!x.name.startsWith('user.')) {
        if (root) return true;
        skipped.privilegedXattrs++;
        return false;
      }
      if (kind === 'dir' || kind === 'file') return true;
      skipped.userXattrsOnSpecial++;
      return false;
    });

  /**
   * Device nodes and fifos being made by mknod(1) in NodeMaker's shell: not awaited one by one (a
   * round trip to another process each, ~9 ms), but before anything needs them to exist (a hard
   * link to one, the xattrs, the last phase). Their owner and inode number are taken then.
   */
  const nodesUnderway: Array<{ made: Promise<void>; owner?: { uid: number; gid: number }; pending: Pending }> = [];
  const nodesMade = async () => {
    while (nodesUnderway.length > 0) {
      const n = nodesUnderway[0]!;
      await n.made;
      nodesUnderway.shift();
      if (n.owner) tree.lchown(n.pending.comps, n.owner.uid, n.owner.gid);
      n.pending.ino = tree.lstat(n.pending.comps).ino;
    }
  };

  // A path that is not in the image fails here, before DEST is created.
  for (const p of options.paths ?? []) lookupPath(image, pathParts(p));
  const tree = SafeTree.open(dest, { force: options.force });
  const onBytes = (n: number) => {
    counts.bytes += n;
    if (n >= 65536) options.onProgress?.(counts); // (during a large file too)
  };
  let ok = false;
  try {
    // ---- phase 1: create --------------------------------------------------------------------
    for (const { inode, comps } of items(image, options.paths ?? [])) {
      const kind = inode.kind;
      if (kind !== 'dir') {
        const first = firstName.get(inode.inodeNumber);
        if (first) {
          if (nodesUnderway.length > 0 && kind !== 'symlink') await nodesMade(); // the first name may be a node still being made
          tree.link(first, comps, kind);
          counts.hardlinks++;
          continue;
        }
      }
      const st = image.stat(inode);
      const ownIt = root;
      const xattrs = wantXattrs ? keptXattrs(inode, kind) : [];
      counts.xattrs += xattrs.length;
      if (!root && (st.uid !== myUid || st.gid !== myGid)) skipped.owners++;
      let ino: number | undefined;
      switch (kind) {
        case 'dir':
          if (comps.length > 0) ino = tree.mkdir(comps);
          counts.dirs++;
          break;
        case 'file': {
          const file = asFile(inode);
          // Finished through its descriptor unless a later phase still needs it writable.
          const finishNow = root || xattrs.length === 0;
          const mode = fileMode(inode.permissions);
          const job: FileJob = {
            comps,
            mode,
            // Created with its final permission bits where open() can give them (no setuid,
            // setgid or sticky bit, nothing the umask takes away): one fchmod less per file.
            // Nobody else can reach it meanwhile: every directory stays 0700 until the last phase.
            modeAtOpen: finishNow && (mode & ~0o777 & 0o7777) === 0 && (mode & umask) === 0,
            owner: ownIt ? { uid: st.uid, gid: st.gid } : undefined,
            mtime: inode.mtime,
            finishNow,
          };
          counts.files++;
          firstName.set(inode.inodeNumber, comps);
          if (xattrs.length) jobs.push({ comps, xattrs });
          if (decodeAhead && file.fileSize >= PARALLEL_MIN_BYTES) {
            // Large xz files: blocks decoded ahead on the other cores while this thread writes
            // (the same pool and checks as `distri cat`).
            ino = await writeFileAhead(image, tree, file, job, zeros, (pool ??= new DecompressPool()), onBytes);
          } else {
            ino = writeFile(image, tree, file, job, zeros, onBytes);
          }
          options.onProgress?.(counts);
          if (finishNow) continue;
          break;
        }
        case 'symlink':
          // Finished at once: owner and mtime (see SafeTree.finishSymlink).
          tree.symlink(comps, inode.target);
          tree.finishSymlink(comps, ownIt ? { uid: st.uid, gid: st.gid } : undefined, inode.mtime);
          counts.symlinks++;
          firstName.set(inode.inodeNumber, comps);
          if (xattrs.length) jobs.push({ comps, xattrs });
          continue;
        case 'blockdev':
        case 'chardev':
        case 'fifo': {
          if (kind === 'fifo') counts.fifos++;
          else if (!root) {
            skipped.devices++;
            continue;
          } else counts.devices++;
          const made = inode.kind === 'blockdev' || inode.kind === 'chardev' ? tree.mknod(comps, inode.kind, inode.major, inode.minor) : tree.mknod(comps, 'fifo');
          made.catch(() => {}); // (awaited by nodesMade, which reports the failure)
          const p: Pending = { comps, kind, ino: -1, mode: fileMode(inode.permissions), mtime: inode.mtime };
          nodesUnderway.push({ made, owner: ownIt ? { uid: st.uid, gid: st.gid } : undefined, pending: p });
          firstName.set(inode.inodeNumber, comps);
          pending.push(p);
          if (xattrs.length) jobs.push({ comps, xattrs });
          continue;
        }
        case 'socket':
          await tree.socket(comps);
          counts.sockets++;
          break;
      }
      if (kind !== 'dir' && kind !== 'file' && ownIt) tree.lchown(comps, st.uid, st.gid);
      ino ??= tree.lstat(comps).ino;
      if (kind !== 'dir') firstName.set(inode.inodeNumber, comps);

      pending.push({ comps, kind, ino, mode: fileMode(inode.permissions), mtime: inode.mtime, ...(kind === 'dir' && ownIt ? { uid: st.uid, gid: st.gid } : {}) });
      if (kind !== 'file' && xattrs.length) jobs.push({ comps, xattrs });
    }

    await nodesMade();

    // ---- phase 2: xattrs --------------------------------------------------------------------
    const xattrErrors = restoreXattrs(tree.rootFd, jobs);

    // ---- phase 3: owners of directories, modes, mtimes; children before their parents --------
    for (let i = pending.length - 1; i >= 0; i--) {
      const p = pending[i]!;
      tree.finish(p.comps, p.kind, p.ino, { uid: p.uid, gid: p.gid, mode: p.mode, mtime: p.mtime });
    }
    ok = true;
    return { counts, skipped, xattrErrors, root };
  } finally {
    // Failed with nodes still being made: they are made (or fail) before the last phase's
    // modes are set on what was created and before the shell and the descriptors are closed.
    for (const n of nodesUnderway) await n.made.catch(() => {});
    if (!ok) {
      // Failed part-way: what was created so far gets its final owners, modes and times (phase 3),
      // rather than staying 0700 directories; a destination this run created and left empty goes.
      for (let i = pending.length - 1; i >= 0; i--) {
        const p = pending[i]!;
        try {
          tree.finish(p.comps, p.kind, p.ino, { uid: p.uid, gid: p.gid, mode: p.mode, mtime: p.mtime });
        } catch {
          // best effort: the error being reported is the one that stopped the extraction
        }
      }
      tree.removeIfCreatedEmpty();
    }
    tree.close();
    await pool?.close();
  }
}

function hasSetfattr(): boolean {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (dir && fs.existsSync(`${dir}/setfattr`)) return true;
  }
  return false;
}

/**
 * writeFile (./file-contents.ts) for a large file of a slowly decoded image (xz): its blocks are
 * decoded ahead in the worker pool while this thread writes.
 */
async function writeFileAhead(image: Image, tree: SafeTree, inode: FileInode, job: FileJob, zeros: Uint8Array, pool: DecompressPool, onBytes: (n: number) => void): Promise<number | undefined> {
  const file = new NewFile(tree, job, zeros);
  try {
    for await (const chunk of parallelChunks(image, inode, pool)) onBytes(file.take([chunk]));
    return file.end(inode.fileSize);
  } catch (e) {
    throw file.failure(e);
  } finally {
    file.close();
  }
}

/** A regular file's inode (the walk gave its kind; this is for the type checker). */
function asFile(inode: Inode): FileInode {
  if (inode.kind !== 'file') throw new SquashfsError('NOT_A_FILE', `inode ${inode.inodeNumber} is a ${inode.kind}, not a regular file`, 'inode table');
  return inode;
}

/**
 * The inodes to extract, parents before children. Everything: the image's walk from the root (the
 * root itself is the destination). Selected paths: for each, the directories leading to it (each
 * once, not their other contents) and then its whole subtree; a path inside another selected one
 * adds nothing. Path arguments are matched name by name; a symlink on the way is not followed.
 */
function* items(image: Image, paths: string[]): Generator<Item> {
  if (paths.length === 0) {
    yield* subtree(image, image.root(), []);
    return;
  }
  const selected = paths.map(pathParts);
  selected.sort((a, b) => Buffer.compare(Buffer.from(a.join('/')), Buffer.from(b.join('/'))));
  const kept = selected.filter((s, i) => !selected.slice(0, i).some((o) => o.length <= s.length && o.every((c, j) => c === s[j])));
  const emitted = new Set<string>();
  for (const parts of kept) {
    let cur: Inode = image.root();
    const comps: Uint8Array[] = [];
    for (let i = 0; i < parts.length; i++) {
      const key = parts.slice(0, i).join('/');
      if (!emitted.has(key)) {
        emitted.add(key);
        yield { inode: cur, comps: comps.slice() };
      }
      if (cur.kind !== 'dir') throw new SquashfsError('NOT_A_DIRECTORY', `${parts.slice(0, i).join('/')} is a ${cur.kind}, not a directory`, 'path');
      const e = image.lookup(cur, parts[i]!);
      if (!e) throw new SquashfsError('NOT_FOUND', `no such file or directory in the image: ${parts.slice(0, i + 1).join('/')}`, 'path');
      cur = image.entryInode(e);
      comps.push(e.nameBytes);
    }
    if (parts.length === 0) {
      yield* subtree(image, cur, []);
      return;
    }
    yield* subtree(image, cur, comps);
  }
}

/** A PATH argument as components; `..` is refused. */
function pathParts(p: string): string[] {
  const parts = p.split('/').filter((s) => s !== '' && s !== '.');
  if (parts.includes('..')) throw new SquashfsError('INVALID_ARGUMENT', `${JSON.stringify(p)}: paths to extract may not contain ..`, 'path');
  return parts;
}

/** Looks a PATH argument up name by name (symlinks not followed), with the errors items() gives. */
function lookupPath(image: Image, parts: string[]): Inode {
  let cur: Inode = image.root();
  for (let i = 0; i < parts.length; i++) {
    if (cur.kind !== 'dir') throw new SquashfsError('NOT_A_DIRECTORY', `${parts.slice(0, i).join('/')} is a ${cur.kind === 'file' ? 'regular file' : cur.kind}, not a directory`, 'path');
    const e = image.lookup(cur, parts[i]!);
    if (!e) throw new SquashfsError('NOT_FOUND', `no such file or directory in the image: ${parts.slice(0, i + 1).join('/')}`, 'path');
    cur = image.entryInode(e);
  }
  return cur;
}

/** The walk below `start`, with each item's components (base + the names the walk went through). */
function* subtree(image: Image, start: Inode, base: Uint8Array[]): Generator<Item> {
  const names: Uint8Array[] = [];
  for (const it of walkTree(image, start)) {
    if (it.depth === 0) {
      yield { inode: it.inode, comps: base.slice() };
      continue;
    }
    names.length = it.depth - 1;
    names.push(it.entry!.nameBytes);
    yield { inode: it.inode, comps: base.concat(names), entry: it.entry };
  }
}
