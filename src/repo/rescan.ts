/**
 * After the store changed: ask the `distri fuse` daemon serving it to rescan now, through the
 * control socket that `<mountpoint>/ctl` points to (src/vfs/ctl.ts). The daemon also notices the
 * change by itself (it watches the store), so no daemon, or a daemon serving another store, is not
 * an error: the answer says which it was. A scan answers only once the kernel has dropped what it
 * cached of the old tree, so after a `rescanned` answer `/ro` shows the new packages.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ctlRequest } from '../vfs/ctl';

export type RescanOutcome = { status: 'rescanned'; known: number } | { status: 'no daemon'; why: string } | { status: 'other store'; store: string } | { status: 'failed'; error: string };

function real(p: string): string {
  try {
    return fs.realpathSync(p);
  } catch {
    return path.resolve(p);
  }
}

export async function rescanDaemon(mountpoint: string, store: string, timeoutMs = 30_000): Promise<RescanOutcome> {
  const link = path.join(mountpoint, 'ctl');
  let target: string;
  try {
    target = fs.readlinkSync(link);
  } catch {
    return { status: 'no daemon', why: `no ${link}` };
  }
  const socket = path.resolve(mountpoint, target);
  try {
    const ping = await ctlRequest(socket, { op: 'ping' }, timeoutMs);
    if (typeof ping.store === 'string' && real(ping.store) !== real(store)) return { status: 'other store', store: ping.store };
    const answer = await ctlRequest(socket, { op: 'scan' }, timeoutMs);
    if (answer.ok !== true) return { status: 'failed', error: String(answer.error ?? 'the daemon refused') };
    return { status: 'rescanned', known: Number(answer.known) };
  } catch (e) {
    const msg = (e as Error).message;
    // A socket left by a daemon that is gone: nobody to tell.
    if (/ECONNREFUSED|ENOENT/.test(msg)) return { status: 'no daemon', why: `${socket} does not answer` };
    return { status: 'failed', error: msg };
  }
}

export function describeRescan(r: RescanOutcome): string {
  switch (r.status) {
    case 'rescanned':
      return `the daemon rescanned (${r.known} packages)`;
    case 'no daemon':
      return 'no daemon to tell';
    case 'other store':
      return `the daemon there serves ${r.store}, not this store`;
    case 'failed':
      return `asking the daemon to rescan failed: ${r.error}`;
  }
}
