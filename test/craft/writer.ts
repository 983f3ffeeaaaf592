/**
 * A SquashFS writer, out of the format's own encoders, for one shape that mksquashfs cannot make: a chain of directories
 * nested deeper than PATH_MAX allows (mksquashfs stops at ~2047 levels: it names files by path).
 * Uncompressed metadata, basic directory inodes only, one id, no data, fragment, export or xattr
 * table. Each directory holds one entry, "a", except the deepest, which is empty. (It does not use
 * the writer's tree walk, which would refuse such a chain; byte-identical to the hand-packed
 * version it replaced.)
 */
import { writeU16, writeU64 } from '../../src/format/bytes';
import { Compressor, Flag, InodeType, METADATA_SIZE, METADATA_UNCOMPRESSED, NO_INDEX } from '../../src/format/constants';
import { DIR_ENTRY, DIR_HEADER, encodeDirEntry, encodeDirHeader } from '../../src/format/directory';
import { DIR_INODE, INODE_HEADER, encodeInode, inodeRef } from '../../src/format/inode';
import { encodeSuperblock } from '../../src/format/superblock';

const META = METADATA_SIZE;

/** Splits a byte stream into uncompressed metadata blocks (u16 header 0x8000 | length). */
function metadataBlocks(stream: Uint8Array): Buffer {
  const parts: Buffer[] = [];
  for (let at = 0; at < stream.length; at += META) {
    const chunk = stream.subarray(at, Math.min(at + META, stream.length));
    const h = Buffer.alloc(2);
    writeU16(h, 0, METADATA_UNCOMPRESSED | chunk.length);
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
  const INODE = INODE_HEADER.size + DIR_INODE.size; // basic directory inodes only
  const name = Buffer.from('a');
  const LISTING = DIR_HEADER.size + DIR_ENTRY.size + name.length; // one header, one entry
  const inodes = new Uint8Array(count * INODE);
  const dirs = new Uint8Array(depth * LISTING);
  for (let i = 0; i < count; i++) {
    const hasChild = i < depth;
    const listing = where(i * LISTING);
    const inode = encodeInode({
      type: InodeType.DIR,
      permissions: 0o755,
      uidIndex: 0,
      gidIndex: 0,
      mtime: 1_700_000_000,
      inodeNumber: i + 1,
      nlink: hasChild ? 3 : 2,
      xattrIndex: NO_INDEX,
      dirBlock: hasChild ? listing.block : 0,
      dirOffset: hasChild ? listing.offset : 0,
      listingSize: hasChild ? LISTING : 0,
      parentInode: i === 0 ? count + 1 : i,
      index: [],
    });
    inodes.set(inode, i * INODE);
    if (hasChild) {
      // One run holding the child, whose inode number is the run's base.
      const child = where((i + 1) * INODE);
      const d = i * LISTING;
      encodeDirHeader(1, child.block, i + 2, dirs, d);
      encodeDirEntry(child.offset, i + 2, i + 2, InodeType.DIR, name, dirs, d + DIR_HEADER.size);
    }
  }
  const inodeTable = metadataBlocks(inodes);
  const dirTable = metadataBlocks(dirs);
  const idBlock = metadataBlocks(new Uint8Array(4)); // one id: 0
  const inodeStart = 96;
  const dirStart = inodeStart + inodeTable.length;
  const idBlockStart = dirStart + dirTable.length;
  const idTableStart = idBlockStart + idBlock.length;
  const end = idTableStart + 8;
  const sb = encodeSuperblock({
    inodeCount: count,
    modificationTime: 0,
    blockSize: 4096,
    fragmentCount: 0,
    compressionId: Compressor.GZIP, // nothing is compressed
    flags: Flag.UNCOMPRESSED_INODES | Flag.UNCOMPRESSED_DATA | Flag.UNCOMPRESSED_FRAGMENTS | Flag.NO_FRAGMENTS | Flag.NO_XATTRS | Flag.UNCOMPRESSED_IDS,
    idCount: 1,
    rootInodeRef: inodeRef(0, 0),
    bytesUsed: end,
    idTableStart,
    xattrIdTableStart: undefined,
    inodeTableStart: inodeStart,
    directoryTableStart: dirStart,
    fragmentTableStart: undefined,
    exportTableStart: undefined,
  });
  const idPtr = Buffer.alloc(8);
  writeU64(idPtr, 0, idBlockStart);
  const image = Buffer.concat([sb, inodeTable, dirTable, idBlock, idPtr]);
  // Padded to 4 KiB like mksquashfs does (a loop device ignores a partial last sector).
  return Buffer.concat([image, Buffer.alloc((4096 - (image.length % 4096)) % 4096)]);
}
