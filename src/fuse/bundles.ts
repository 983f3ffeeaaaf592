/**
 * Where the bundled background daemon of `distri mount` and the serving threads of `distri mount`
 * and `distri fuse` sit, and how the code finds them. `npm run build` makes them with esbuild
 * (src/cli/bundle.ts) in dist/src/fuse:
 * a daemon then starts from one file instead of some fifteen modules, and its serving thread (a new
 * V8 isolate that loads the reader and the protocol code) from one file instead of some thirty,
 * which is most of the time from `distri mount` to a usable mount (bench/README-fuse.md).
 *
 * Both sit in dist/src/fuse, so that a bundled module's __dirname is a directory of the same depth
 * as its own: paths named from it the way the reader's do (`__dirname/../reader/…`) still resolve.
 * A bundle older than the modules (a `tsc` without the bundle step) is not used: the modules run,
 * as they would without any bundle. DISTRI_NO_BUNDLE=1 turns the bundles off (benchmarks compare).
 *
 * Loads only node:fs and node:path.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

/** The daemon's entry (mount-daemon.ts) with everything it loads but the libfuse adapter. */
export const DAEMON_BUNDLE = 'mount-daemon.bundle.js';
/** The serving thread (kernel/serve-worker.ts) with the image reader it serves from. */
export const SERVE_WORKER_BUNDLE = 'serve-worker.bundle.js';
/** The same thread with the store's tree (`distri fuse`) instead. */
export const SERVE_STORE_WORKER_BUNDLE = 'serve-store-worker.bundle.js';
/**
 * The NodeFs builders (module file names) that a serving thread's bundle carries inside, and which
 * bundle. A mount built by any other module runs the unbundled thread: a module required from
 * outside a bundle would bring second copies of the modules inside it, and an error class of one
 * copy is not an instance of the other's (the protocol code maps errors to errno values by class).
 */
export const SERVE_WORKER_BUNDLES: Readonly<Record<string, string>> = {
  'image-source.js': SERVE_WORKER_BUNDLE,
  'store-build.js': SERVE_STORE_WORKER_BUNDLE,
};

/** dist/src/fuse, from the __dirname of a module in it, in kernel/, in cli/commands, or of a bundle there. */
export function fuseDirOf(dirname: string): string {
  const base = path.basename(dirname);
  if (base === 'kernel') return path.dirname(dirname);
  if (base === 'commands') return path.join(dirname, '..', '..', 'fuse');
  if (base === 'cli') return path.join(dirname, '..', 'fuse');
  return dirname;
}

/** `bundle` if it exists and is at least as new as `madeFrom` (one of the modules in it), else `plain`. */
export function bundleOr(bundle: string, madeFrom: string, plain: string): string {
  if (process.env.DISTRI_NO_BUNDLE) return plain;
  try {
    if (fs.statSync(bundle).mtimeMs >= fs.statSync(madeFrom).mtimeMs) return bundle;
  } catch {
    // no bundle (tsc alone): the modules
  }
  return plain;
}
