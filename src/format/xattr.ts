/**
 * Xattr keys and values (format: "Extended Attributes"), as stored in the key/value metadata blocks
 * that an xattr id entry's reference points into:
 *
 *   key:   u16 type | u16 name_size | name        (the name without its prefix)
 *   value: u32 value_size | value                 (out of line: value_size 8 and a u64 reference,
 *                                                  packed like an inode reference, to where the
 *                                                  real u32 size and bytes are)
 *
 * The low byte of the type selects the name's prefix from the one table below; bit 8 says the value
 * is stored out of line, so identical large values (ACLs, capabilities) are stored once.
 */
import { encodeFields, layout } from './layout';
import { writeU32, writeU64 } from './bytes';

export const XATTR_KEY = layout('xattr key', [
  ['type', 'u16'],
  ['nameSize', 'u16'],
] as const);
export const XATTR_VALUE = layout('xattr value', [['valueSize', 'u32']] as const);
/** The value of an out-of-line entry: a reference in place of the bytes. */
export const XATTR_OOL_VALUE = layout('xattr out-of-line value', [['ref', 'u64']] as const);

/** Flag in a key's type: the value is a reference to a value stored elsewhere. */
export const XATTR_VALUE_OOL = 0x100;
/** The bits a key's type may have: a prefix id in the low byte and the out-of-line flag. */
export const XATTR_TYPE_MASK = 0x1ff;

/** The name prefixes SquashFS can store, by their id in a key's type. */
export const XATTR_PREFIXES: ReadonlyArray<readonly [id: number, prefix: string]> = [
  [0, 'user.'],
  [1, 'trusted.'],
  [2, 'security.'],
];
const PREFIX_BY_ID: Record<number, string> = Object.fromEntries(XATTR_PREFIXES);

/** The prefix of a key type, or undefined for an id the format does not define. */
export function xattrPrefix(type: number): string | undefined {
  return PREFIX_BY_ID[type & 0xff];
}

/** A full name split into its prefix id and the rest, or undefined if no stored prefix matches. */
export function splitXattrName(name: string): { id: number; suffix: string } | undefined {
  for (const [id, prefix] of XATTR_PREFIXES) if (name.startsWith(prefix)) return { id, suffix: name.slice(prefix.length) };
  return undefined;
}

/** A key: type (prefix id, out-of-line flag) and the name without its prefix. */
export function encodeXattrKey(prefixId: number, outOfLine: boolean, name: Uint8Array): Uint8Array {
  const b = new Uint8Array(XATTR_KEY.size + name.length);
  encodeFields(XATTR_KEY, { type: prefixId | (outOfLine ? XATTR_VALUE_OOL : 0), nameSize: name.length }, b);
  b.set(name, XATTR_KEY.size);
  return b;
}

/** A value stored in line: its size and bytes. */
export function encodeXattrValue(value: Uint8Array): Uint8Array {
  const b = new Uint8Array(XATTR_VALUE.size + value.length);
  writeU32(b, XATTR_VALUE.at.valueSize, value.length);
  b.set(value, XATTR_VALUE.size);
  return b;
}

/** An out-of-line value: size 8 and the reference to the value's first copy. */
export function encodeXattrOolValue(ref: number): Uint8Array {
  const b = new Uint8Array(XATTR_VALUE.size + XATTR_OOL_VALUE.size);
  writeU32(b, XATTR_VALUE.at.valueSize, XATTR_OOL_VALUE.size);
  writeU64(b, XATTR_VALUE.size + XATTR_OOL_VALUE.at.ref, ref);
  return b;
}
