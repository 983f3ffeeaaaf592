/**
 * How the serving thread builds the /ro store's StoreFs (./store-source.ts names this module as the
 * builder). A module of its own so that the thread loads the store's tree and nothing of the
 * daemon's main-thread machinery: the control socket alone (node:net and streams) cost the thread
 * ~30 ms of its start before `distri fuse` could answer INIT (bench/README-lazy.md).
 */
import { SquashfsError } from '../errors';
import type { StoreFs } from '../vfs/store-fs';
import type { StoreDaemonOptions } from './store-source';

/** What the serving thread needs to build the StoreFs. */
export interface StoreBuildArgs extends StoreDaemonOptions {
  ctlPath: string;
}

/**
 * Builds the StoreFs and saves its index; runs on the serving thread. The first snapshot comes
 * from the saved index when the store directory is unchanged since (no scan before INIT), else
 * from a quick scan; either way the daemon's full scan follows once the mount is ready.
 */
export function buildStoreFs(a: StoreBuildArgs, log: (s: string) => void): StoreFs {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { StoreFs } = require('../vfs/store-fs') as typeof import('../vfs/store-fs');
  let storeFs: StoreFs;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const remote = a.remote && new (require('../vfs/remote-packages') as typeof import('../vfs/remote-packages')).RemotePackages(a.store, { ...a.remote, log });
    storeFs = new StoreFs(a.store, { pkgs: a.pkgs, overlays: a.overlays, maxOpenImages: a.maxOpenImages, cacheBytes: a.cacheBytes, ctlPath: a.ctlPath, log, remote, firstFromIndex: true });
  } catch (e) {
    throw new Error(e instanceof SquashfsError ? e.describe() : (e as Error).message);
  }
  storeFs.index.save();
  if (storeFs.index.stats.writeError) log(`index ${storeFs.index.stats.dir}: not saved: ${storeFs.index.stats.writeError}`);
  return storeFs;
}
