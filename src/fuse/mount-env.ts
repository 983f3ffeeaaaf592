/**
 * What both processes of a background `distri mount` agree on, in a module that loads nothing:
 * the command that spawns the daemon reads these without loading the daemon, the FUSE binding or
 * the image reader (node:fs is part of Node's own start-up).
 */
import * as fs from 'node:fs';
import { lastLong, scanArgv } from '../util/argv-scan';

/**
 * The data-block cache of a one-image mount, in MiB. FUSE asks for 4 KiB at a time on random reads
 * and the page cache keeps only the pages asked for, while the kernel's own driver puts the whole
 * block into the page cache on first touch. A block cache holding the hot working set is what lets
 * a random read skip decompression (bench/README-fuse.md has the figures).
 */
export const DEFAULT_CACHE_MIB = 96;

/** The readiness pipe's fd number in a daemon spawned by the command (see daemon.ts). */
export const READY_ENV = 'DISTRI_MOUNT_READY_FD';

/** The daemon's MountOptions as JSON, for the lean daemon entry (mount-daemon.ts). */
export const OPTIONS_ENV = 'DISTRI_MOUNT_OPTIONS';

/**
 * Set by a command that started its daemon before parsing anything (src/cli/daemon-first.ts): the
 * daemon then checks the arguments and prints every failure itself, in the command's words.
 */
export const EARLY_ENV = 'DISTRI_MOUNT_EARLY';

/**
 * Whether a daemon with this command line would serve through the kernel transport as far as the
 * user asked (`--transport` or DISTRI_TRANSPORT not libfuse): then its entry starts the serving
 * thread before parsing the command line (KernelMount.prestart). A wrong guess only costs a thread
 * that is dropped.
 */
export function kernelTransportWanted(argv: readonly string[]): boolean {
  return (lastLong(scanArgv(argv), '--transport') ?? process.env.DISTRI_TRANSPORT ?? 'auto') !== 'libfuse';
}

/** DISTRI_MOUNT_TIMING=1: start-up milestones on stderr, in ms since the process started. */
export function mark(what: string): void {
  if (process.env.DISTRI_MOUNT_TIMING) process.stderr.write(`distri mount: timing: ${performance.now().toFixed(1)} ms ${what} (pid ${process.pid})\n`);
}

/**
 * Writes squashfuse's failure byte 'f' to a notify_pipe FIFO for a daemon that died before it could
 * write it itself. Best effort and never blocks: with no reader, nobody is waiting for the answer.
 */
export function writeNotifyFailure(fifo: string | undefined): void {
  if (!fifo) return;
  try {
    const fd = fs.openSync(fifo, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
    try {
      fs.writeSync(fd, 'f');
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    // no reader (ENXIO), or not a FIFO any more
  }
}
