/**
 * The serving path's own CPU for a cold `find`, without the kernel: a Session over an ImageFs on a
 * fresh Image (cold caches), fed the READDIRPLUS requests a kernel sends for a whole-tree walk
 * (each directory listed in 4 KiB-per-page replies of the kernel's usual 4 KiB size, until an
 * empty reply), one walk per fresh image. Prints user+sys CPU and wall per walk and the requests.
 *
 *   node dist/bench/session-walk.js IMAGE [--walks N]
 */
import { Image } from '../src/reader/image';
import { ImageFs } from '../src/vfs/image-fs';
import { Session } from '../src/fuse/kernel/session';
import * as P from '../src/fuse/kernel/protocol';

const image = process.argv[2] ?? '';
if (image === '') throw new Error('usage: session-walk IMAGE [--walks N]');
const wi = process.argv.indexOf('--walks');
const walks = wi > 0 ? Number(process.argv[wi + 1]) : 5;

function request(opcode: number, unique: number, nodeid: number, body: Uint8Array): Uint8Array {
  const b = new Uint8Array(P.IN_HEADER_SIZE + body.length);
  const dv = new DataView(b.buffer);
  dv.setUint32(0, b.length, true);
  dv.setUint32(4, opcode, true);
  dv.setBigUint64(8, BigInt(unique), true);
  dv.setBigUint64(16, BigInt(nodeid), true);
  b.set(body, P.IN_HEADER_SIZE);
  return b;
}

function readIn(offset: number, size: number): Uint8Array {
  const b = new Uint8Array(40);
  const dv = new DataView(b.buffer);
  dv.setBigUint64(8, BigInt(offset), true);
  dv.setUint32(16, size, true);
  return b;
}

function walk(): { requests: number; entries: number } {
  const img = Image.open(image, { dataCacheBytes: 96 << 20, pooledBlocks: true, passWholeBlocks: true });
  const session = new Session(new ImageFs(img));
  let unique = 1;
  // INIT first, as the kernel does.
  const init = new Uint8Array(64);
  const idv = new DataView(init.buffer);
  idv.setUint32(0, 7, true);
  idv.setUint32(4, 45, true);
  idv.setUint32(8, 128 << 10, true);
  idv.setUint32(12, 0xffffffff, true);
  session.handle(request(26, unique++, 0, init));
  let requests = 0;
  let entries = 0;
  const dirs = [1];
  while (dirs.length) {
    const dir = dirs.pop()!;
    let offset = 0;
    for (;;) {
      const reply = session.handle(request(44, unique++, dir, readIn(offset, 4096)))!;
      requests++;
      const dv = new DataView(reply.buffer, reply.byteOffset, reply.byteLength);
      if (dv.getInt32(4, true) !== 0) throw new Error(`READDIRPLUS of ${dir}: errno ${-dv.getInt32(4, true)}`);
      if (reply.length === P.OUT_HEADER_SIZE) break;
      let off = P.OUT_HEADER_SIZE;
      while (off < reply.length) {
        const nodeid = Number(dv.getBigUint64(off, true));
        const rec = off + P.ENTRY_OUT_SIZE;
        const namelen = dv.getUint32(rec + 16, true);
        const type = dv.getUint32(rec + 20, true);
        offset = Number(dv.getBigUint64(rec + 8, true));
        if (nodeid !== 0) {
          entries++;
          if (type === 4) dirs.push(nodeid);
        }
        off += (P.DIRENTPLUS_HEADER_SIZE + namelen + 7) & ~7;
      }
    }
  }
  img.close();
  return { requests, entries };
}

for (let i = 0; i < walks; i++) {
  const r0 = process.resourceUsage();
  const t0 = process.hrtime.bigint();
  const { requests, entries } = walk();
  const wall = Number(process.hrtime.bigint() - t0) / 1e6;
  const r = process.resourceUsage();
  const cpu = (r.userCPUTime - r0.userCPUTime + r.systemCPUTime - r0.systemCPUTime) / 1000;
  console.log(`walk ${i + 1}: ${wall.toFixed(0)} ms wall, ${cpu.toFixed(0)} ms user+sys, ${requests} READDIRPLUS, ${entries} entries`);
}
