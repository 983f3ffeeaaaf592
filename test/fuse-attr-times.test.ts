/**
 * fuse_attr's times are signed 64-bit seconds: written without BigInt since the serving path's
 * profile showed the allocations; times before 1970 and past 2^32 must still come out right.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ATTR_SIZE, writeAttr } from '../src/fuse/kernel/protocol';

test("writeAttr encodes atime, mtime and ctime as two's-complement 64-bit seconds", () => {
  for (const mtime of [0, 1, -1, 1.9, -1.9, 2 ** 32 - 1, 2 ** 32, -(2 ** 32), -(2 ** 32) - 5, 1e12, -1e12, 2 ** 53 - 1, -(2 ** 53) + 1]) {
    const b = new Uint8Array(ATTR_SIZE);
    writeAttr(new DataView(b.buffer), 0, { ino: 1, size: 0, blocks: 0, mtime, mode: 0o100644, nlink: 1, uid: 0, gid: 0, rdev: 0, blksize: 4096 });
    const dv = new DataView(b.buffer);
    for (const off of [24, 32, 40]) assert.equal(dv.getBigInt64(off, true), BigInt(Math.trunc(mtime)), `mtime ${mtime} at ${off}`);
  }
});
