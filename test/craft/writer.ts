/**
 * A byte-by-byte SquashFS writer for one shape that mksquashfs cannot make: a chain of directories
 * nested deeper than PATH_MAX allows (mksquashfs stops at ~2047 levels: it names files by path).
 * Uncompressed metadata, basic directory inodes only, one id, no data, fragment, export or xattr
 * table. Each directory holds one entry, "a", except the deepest, which is empty.
 */
import { w16, w32, w64 } from './image';

const META = 8192;

/** Splits a byte stream into uncompressed metadata blocks (u16 header 0x8000 | length). */
function metadataBlocks(stream: Uint8Array): Buffer {
  const parts: Buffer[] = [];
  for (let at = 0; at < stream.length; at += META) {
    const chunk = stream.subarray(at, Math.min(at + META, stream.length));
    const h = Buffer.alloc(2);
    w16(h, 0, 0x8000 | chunk.length);
    parts.push(h, Buffer.from(chunk));
  }
  return Buffer.concat(parts);
}

/** (block position relative to the table start, offset in the block) of stream offset `off`. */
function where(off: number): { block: number; offset: number } {
  return { block: Math.floor(off / META) * (META + 2), offset: off % META };
}

/** An image whose root holds a/a/a/… `depth` directories deep (the deepest at depth `depth`). */
export function deepImage(depth: number): Buffer {
  const count = depth + 1; // root + depth directories; inode numbers 1..count, root is 1
  const INODE = 32; // basic directory inode: 16-byte header + 16-byte body
  const LISTING = 12 + 8 + 1; // one header, one entry, the name "a"
  const inodes = new Uint8Array(count * INODE);
  const dirs = new Uint8Array(depth * LISTING);
  for (let i = 0; i < count; i++) {
    const at = i * INODE;
    w16(inodes, at, 1); // basic directory
    w16(inodes, at + 2, 0o755);
    w16(inodes, at + 4, 0); // uid index
    w16(inodes, at + 6, 0); // gid index
    w32(inodes, at + 8, 1_700_000_000);
    w32(inodes, at + 12, i + 1);
    const hasChild = i < depth;
    const listing = where(i * LISTING);
    w32(inodes, at + 16, hasChild ? listing.block : 0); // start block of the listing
    w32(inodes, at + 20, hasChild ? 3 : 2); // nlink
    w16(inodes, at + 24, (hasChild ? LISTING : 0) + 3); // file_size
    w16(inodes, at + 26, hasChild ? listing.offset : 0);
    w32(inodes, at + 28, i === 0 ? count + 1 : i); // parent inode number
    if (hasChild) {
      const child = where((i + 1) * INODE);
      const d = i * LISTING;
      w32(dirs, d, 0); // count - 1
      w32(dirs, d + 4, child.block);
      w32(dirs, d + 8, i + 2); // base inode number: the child's
      w16(dirs, d + 12, child.offset);
      w16(dirs, d + 14, 0); // inode number delta
      w16(dirs, d + 16, 1); // basic directory
      w16(dirs, d + 18, 0); // name size - 1
      dirs[d + 20] = 0x61; // "a"
    }
  }
  const inodeTable = metadataBlocks(inodes);
  const dirTable = metadataBlocks(dirs);
  const idBlock = metadataBlocks(new Uint8Array(4)); // one id: 0
  const sb = Buffer.alloc(96);
  const inodeStart = 96;
  const dirStart = inodeStart + inodeTable.length;
  const idBlockStart = dirStart + dirTable.length;
  const idTableStart = idBlockStart + idBlock.length;
  const end = idTableStart + 8;
  w32(sb, 0, 0x73717368);
  w32(sb, 4, count);
  w32(sb, 8, 0);
  w32(sb, 12, 4096);
  w32(sb, 16, 0); // fragments
  w16(sb, 20, 1); // gzip (nothing is compressed)
  w16(sb, 22, 12);
  w16(sb, 24, 0x0001 | 0x0002 | 0x0008 | 0x0010 | 0x0200 | 0x0800); // uncompressed everything, no fragments, no xattrs
  w16(sb, 26, 1); // ids
  w16(sb, 28, 4);
  w16(sb, 30, 0);
  w64(sb, 32, 0n); // root inode ref: block 0, offset 0
  w64(sb, 40, BigInt(end));
  w64(sb, 48, BigInt(idTableStart));
  w64(sb, 56, 0xffffffffffffffffn);
  w64(sb, 64, BigInt(inodeStart));
  w64(sb, 72, BigInt(dirStart));
  w64(sb, 80, 0xffffffffffffffffn);
  w64(sb, 88, 0xffffffffffffffffn);
  const idPtr = Buffer.alloc(8);
  w64(idPtr, 0, BigInt(idBlockStart));
  const image = Buffer.concat([sb, inodeTable, dirTable, idBlock, idPtr]);
  // Padded to 4 KiB like mksquashfs does (a loop device ignores a partial last sector).
  return Buffer.concat([image, Buffer.alloc((4096 - (image.length % 4096)) % 4096)]);
}
