/**
 * Extended attributes (format: "Extended Attributes"). An inode's xattr index selects an entry of
 * the xattr id table: (reference, count, size). The reference points into the key/value metadata
 * blocks starting at xattr_table_start, where `count` pairs follow each other:
 *
 *   key:   u16 type | u16 name_size | name        (type 0 user., 1 trusted., 2 security.;
 *                                                  flag 0x100: the value is stored out of line)
 *   value: u32 value_size | value                 (out of line: value_size 8 and a u64 reference
 *                                                  to where the real u32 size and bytes are)
 *
 * Out-of-line values let identical large values (ACLs, capabilities) be stored once.
 */
import { SquashfsError } from '../errors';
import { u16, u32, u64 } from '../format/bytes';
import { NO_INDEX } from '../format/constants';
import { splitInodeRef } from '../format/inode';
import { parseXattrIdEntry, type XattrIdEntry } from '../format/tables';
import { XATTR_KEY, XATTR_OOL_VALUE, XATTR_TYPE_MASK, XATTR_VALUE, XATTR_VALUE_OOL, xattrPrefix } from '../format/xattr';
import type { LookupTable } from './lookup-table';
import type { MetadataReader, Region } from './metadata';

export interface Xattr {
  /** Full name with its prefix, e.g. "security.capability". */
  name: string;
  value: Uint8Array;
}

const S = 'xattr table';
/** Linux's XATTR_NAME_MAX and XATTR_SIZE_MAX. */
const NAME_MAX = 255;
const VALUE_MAX = 65536;
/**
 * Most bytes of names and values one inode may carry. The format bounds each value but not their
 * sum, and out-of-line references let 1 MiB of keys point at one 64 KiB value thousands of times;
 * no filesystem Linux mounts stores anywhere near this much on one inode.
 */
const TOTAL_MAX = 8 << 20;
const utf8 = new TextDecoder();

export class XattrReader {
  constructor(
    private readonly meta: MetadataReader,
    private readonly ids: LookupTable,
    /** The key/value blocks: [xattr_table_start, first block of the id table). */
    private readonly region: Region,
  ) {}

  get count(): number {
    return this.ids.count;
  }

  idEntry(index: number): XattrIdEntry {
    return parseXattrIdEntry(this.ids.entry(index), 0, this.ids.start);
  }

  private cursorAt(ref: number) {
    const { block, offset } = splitInodeRef(ref);
    return this.meta.cursor(this.region.lo + block, offset, this.region);
  }

  read(index: number): Xattr[] {
    if (index === NO_INDEX) return [];
    const id = this.idEntry(index);
    if (id.count > VALUE_MAX) throw new SquashfsError('CORRUPT', `xattr count ${id.count} for index ${index}`, S);
    const cur = this.cursorAt(id.ref);
    const out: Xattr[] = [];
    let total = 0;
    for (let i = 0; i < id.count; i++) {
      const at = cur.position();
      const k = cur.bytes(XATTR_KEY.size);
      const type = u16(k, XATTR_KEY.at.type);
      const nameSize = u16(k, XATTR_KEY.at.nameSize);
      const prefix = xattrPrefix(type);
      if (prefix === undefined || (type & ~XATTR_TYPE_MASK) !== 0) throw new SquashfsError('CORRUPT', `xattr key type 0x${type.toString(16)}`, S, at);
      if (nameSize + prefix.length > NAME_MAX) throw new SquashfsError('CORRUPT', `xattr name of ${nameSize} bytes`, S, at);
      const name = prefix + utf8.decode(cur.bytes(nameSize));
      const valueSize = u32(cur.bytes(XATTR_VALUE.size), XATTR_VALUE.at.valueSize);
      let value: Uint8Array;
      if (type & XATTR_VALUE_OOL) {
        if (valueSize !== XATTR_OOL_VALUE.size) throw new SquashfsError('CORRUPT', `out-of-line xattr "${name}" has a ${valueSize}-byte reference (expected 8)`, S, at);
        const ref = u64(cur.bytes(XATTR_OOL_VALUE.size), XATTR_OOL_VALUE.at.ref, 'xattr value reference', S, at);
        const vc = this.cursorAt(ref);
        const realSize = u32(vc.bytes(XATTR_VALUE.size), XATTR_VALUE.at.valueSize);
        if (realSize > VALUE_MAX) throw new SquashfsError('CORRUPT', `xattr "${name}" value of ${realSize} bytes (max ${VALUE_MAX})`, S, at);
        value = Uint8Array.from(vc.bytes(realSize));
      } else {
        if (valueSize > VALUE_MAX) throw new SquashfsError('CORRUPT', `xattr "${name}" value of ${valueSize} bytes (max ${VALUE_MAX})`, S, at);
        value = Uint8Array.from(cur.bytes(valueSize));
      }
      total += name.length + value.length;
      if (total > TOTAL_MAX) throw new SquashfsError('OVERFLOW', `xattrs of index ${index} exceed ${TOTAL_MAX} bytes`, S, at);
      out.push({ name, value });
    }
    return out;
  }
}
