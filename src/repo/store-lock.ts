/**
 * The store lock: one `distri install`, `update` or `gc` changes a store at a time.
 *
 * Node has no flock(2), so the lock is a file, `<store>/.distri-lock`, created atomically: its
 * content (pid and the process's start time) is written to a private temp file that is then
 * hard-linked to the lock's name; link() fails with EEXIST when someone holds the lock, and the
 * lock never exists half-written. A dot-name, so store scans and the daemon's watcher ignore it.
 *
 * A holder that died without releasing (SIGKILL, power loss) leaves the file behind. It is *stale*
 * when its process is gone — /proc/<pid> missing, or present with another start time (the pid was
 * reused) — and is then broken: renamed to a private name (only one breaker can win that rename),
 * re-read to make sure it is still the stale lock that was judged, and removed. A live holder is
 * waited for, polling, up to `waitMs`; then the lock attempt fails naming the holder.
 *
 * Released on release() and, as a last resort, when the process exits normally; release removes
 * the file only while it still holds our own content.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SquashfsError } from '../errors';

export const LOCK_FILE = '.distri-lock';
const POLL_MS = 100;

export interface StoreLock {
  readonly path: string;
  release(): void;
}

interface Holder {
  pid: number;
  start: string;
  cmd?: string;
}

/** The start time of a process (field 22 of /proc/<pid>/stat), or undefined when it is gone. */
function startTime(pid: number): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: count fields after the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

function readHolder(file: string): { text: string; holder?: Holder } | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  try {
    const h = JSON.parse(text) as Holder;
    if (Number.isSafeInteger(h.pid) && typeof h.start === 'string') return { text, holder: h };
  } catch {
    // unreadable content: a lock written by something else, or torn by a crash of the filesystem
  }
  return { text };
}

/** Whether the lock's holder is gone (an unreadable lock counts as stale). */
function isStale(holder: Holder | undefined): boolean {
  if (!holder) return true;
  if (holder.pid === process.pid) return false;
  const now = startTime(holder.pid);
  return now === undefined || now !== holder.start;
}

function describeHolder(h: Holder | undefined): string {
  return h ? `process ${h.pid}${h.cmd ? ` (${h.cmd})` : ''}` : 'an unknown process';
}

/**
 * Takes the lock of `store`, waiting up to `waitMs` for a live holder (0: fail at once). Calls
 * `onWait` once when it has to wait.
 */
export async function lockStore(store: string, opts: { waitMs?: number; cmd?: string; onWait?(holder: string): void } = {}): Promise<StoreLock> {
  const lockPath = path.join(store, LOCK_FILE);
  const me: Holder = { pid: process.pid, start: startTime(process.pid) ?? '', cmd: opts.cmd };
  const mine = JSON.stringify(me) + '\n';
  const tmp = path.join(store, `${LOCK_FILE}.${process.pid}.tmp`);
  const deadline = Date.now() + (opts.waitMs ?? 0);
  let waited = false;
  fs.writeFileSync(tmp, mine);
  try {
    for (;;) {
      try {
        fs.linkSync(tmp, lockPath);
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
      const seen = readHolder(lockPath);
      if (seen === undefined) continue; // released between link and read: try again
      if (isStale(seen.holder)) {
        const aside = path.join(store, `${LOCK_FILE}.stale.${process.pid}`);
        try {
          fs.renameSync(lockPath, aside);
        } catch {
          continue; // another breaker won
        }
        const moved = readHolder(aside);
        if (moved && moved.text !== seen.text) {
          // A fresh lock was taken between our read and our rename: put it back (link fails only
          // if yet another lock exists, in which case that one stands).
          try {
            fs.linkSync(aside, lockPath);
          } catch {
            // leave it
          }
        }
        fs.rmSync(aside, { force: true });
        continue;
      }
      if (Date.now() >= deadline) {
        throw new SquashfsError('IO', `the store ${store} is locked by ${describeHolder(seen.holder)} (another install, update or gc is running; ${lockPath})`);
      }
      if (!waited) opts.onWait?.(describeHolder(seen.holder));
      waited = true;
      await new Promise((r) => setTimeout(r, Math.min(POLL_MS, Math.max(1, deadline - Date.now()))));
    }
  } finally {
    fs.rmSync(tmp, { force: true });
  }
  let released = false;
  const release = (): void => {
    if (released) return;
    released = true;
    process.off('exit', release);
    const now = readHolder(lockPath);
    if (now && now.text === mine) fs.rmSync(lockPath, { force: true });
  };
  process.on('exit', release);
  return { path: lockPath, release };
}
