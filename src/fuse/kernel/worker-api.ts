/**
 * What the daemon's main thread and the serving thread (serve-worker.ts) say to each other: the
 * worker's start-up data, its events, control requests and answers. Kept apart from the worker's
 * entry module, which starts serving as soon as it is loaded.
 */
import type { MessagePort } from 'node:worker_threads';
import type { ErrorCode } from '../../errors';
import type { NodeFs } from '../../vfs/node-fs';

/** How the worker builds its NodeFs: `require(module)[exportName](args, log)`. */
/** Counter slots: [0] is every request, [op] each opcode (op < WAKE_SLOT), [WAKE_SLOT] wake-ups. */
export const COUNTER_SLOTS = 64;

export interface FsBuilder {
  module: string;
  exportName: string;
  args: unknown;
}

export interface ServeWorkerData {
  fd: number;
  /** Per-opcode request counters, shared with the main thread (Float64Array over it). */
  counters: SharedArrayBuffer;
  /** [0]: 0 wait, 1 serve, 2 give up (mounting failed), 3 leave after the current request. */
  start: SharedArrayBuffer;
  control: MessagePort;
  /**
   * How to build the NodeFs. Absent when the thread was started before the daemon had parsed its
   * command line (KernelMount.prestart): it then arrives as the first message on parentPort.
   */
  build?: FsBuilder;
}

/** Messages this thread posts to the main thread (parentPort). */
export type WorkerEvent =
  { type: 'built' } | { type: 'build-failed'; message: string; code?: ErrorCode } | { type: 'init' } | { type: 'log'; message: string } | { type: 'ended'; why: string; stats?: unknown };

/** A control request from the main thread, and its answer on the same port. */
export interface ControlRequest {
  id: number;
  req: { op: string; [k: string]: unknown };
}
/** An invalidation the NodeFs asked for, sent on the control port ahead of the answer it belongs to. */
export type Invalidation = { inval: 'entry'; parent: number; name: string } | { inval: 'inode'; node: number };
/** A control request the NodeFs asks the main thread to send it (Invalidator.ask). */
export interface Ask {
  ask: { op: string; why: string };
}

export interface ControlAnswer {
  id: number;
  ok: boolean;
  value?: unknown;
  message?: string;
}

/** The daemon's own statistics request (its stats file), apart from the NodeFs's control ops. */
export const DAEMON_STATS = 'daemon-stats';

/** What the daemon's stats file shows of the NodeFs: the nodes held, and its own counters. */
export function daemonStats(fsys: NodeFs): { nodes: number; fs: unknown } {
  return { nodes: fsys.nodeCount, fs: fsys.stats?.() };
}
