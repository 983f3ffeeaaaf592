/**
 * Build step (`npm run build`, after tsc): bundles the short read commands into one file,
 * dist/src/cli/cli.bundle.js, which ./main.ts runs for them (see there for why), and info, ls,
 * stat and cat once more, without commander or codecs, into dist/src/cli/cli-short.bundle.js
 * (./short.ts).
 *
 *   node dist/src/cli/bundle.js
 *
 * The bundle is made from tsc's output (so it is the same code the tests run) and sits beside
 * main.js, so that everything resolved relative to a module's directory still resolves: each
 * bundled module's __dirname is dist/src/cli, which is why modules that the bundle holds and that
 * find files at run time name them from the package's dist/src (decompress-pool: its worker).
 * Left out, and loaded from tsc's output if ever needed: every command the bundle does not serve
 * (the bundled program never loads them, since a run loads only the command it was given), and
 * every npm package except commander (native addons, and WASM decoders that read their own files).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { build, type Plugin } from 'esbuild';
import { DAEMON_BUNDLE, SERVE_STORE_WORKER_BUNDLE, SERVE_WORKER_BUNDLE } from '../fuse/bundles';
import { BUNDLE_FILE, BUNDLED_COMMANDS, codeCacheFileOf, SHORT_BUNDLE_FILE } from './main';

/**
 * commander requires node:child_process at load time for a feature distri never uses (commands
 * run as separate executables); loading it costs a few milliseconds at every start. In the bundle,
 * commander gets a stand-in that loads the real module on first use.
 */
const lazyChildProcessForCommander: Plugin = {
  name: 'lazy-child-process-for-commander',
  setup(build) {
    build.onResolve({ filter: /^(node:)?child_process$/ }, (args) =>
      args.importer.includes(`${path.sep}commander${path.sep}`) ? { path: 'child_process', namespace: 'lazy-child-process' } : undefined,
    );
    build.onLoad({ filter: /.*/, namespace: 'lazy-child-process' }, () => ({
      contents: "module.exports = new Proxy({}, { get: (_, k) => require('node:child_process')[k] });",
      loader: 'js',
    }));
  },
};

/**
 * The bundled `mount` and `unmount` load the daemon module (for -f and unmount) from tsc's output,
 * like every module the bundle leaves out: its require is made relative to the bundle, which sits
 * in dist/src/cli, not in dist/src/cli/commands.
 */
const fuseDaemonOutside: Plugin = {
  name: 'fuse-daemon-outside',
  setup(build) {
    build.onResolve({ filter: /^\.\.\/\.\.\/fuse\/daemon$/ }, (args) => (args.importer.includes(`${path.sep}commands${path.sep}`) ? { path: '../fuse/daemon', external: true } : undefined));
  },
};

/**
 * The daemon bundle (dist/src/fuse) leaves the CLI's parser and ../common (both load commander)
 * to tsc's output: a plain command line never loads them, and anything else is rare (see
 * fuse/mount-daemon.ts). The mount command's require of '../common' names it from the bundle's
 * directory instead.
 */
const cliOutsideDaemon: Plugin = {
  name: 'cli-outside-daemon',
  setup(build) {
    build.onResolve({ filter: /^\.\.\/common$/ }, (args) => (args.importer.includes(`${path.sep}commands${path.sep}`) ? { path: '../cli/common', external: true } : undefined));
  },
};

/**
 * The short commands' bundle (./short.ts) leaves the codecs out but gzip, so that V8 does not read
 * and compile five codecs (~60 KiB, the xz encoder among them) at every start for an image that
 * uses one: codec/index.ts loads the image's codec on first use, here from tsc's output beside the
 * bundle (which sits in dist/src/cli, so they are named from there). gzip, mksquashfs's default
 * and the one codec Node itself provides, is in the bundle and in its code cache
 * (./code-cache.ts): loading it as modules of its own cost 3–4 ms of `stat` and `cat` on a gzip
 * image. The error class stays out (errorsOutside).
 */
const codecsOutside: Plugin = {
  name: 'codecs-outside',
  setup(build) {
    build.onResolve({ filter: /^\.\/(lzma|lzo|xz|lz4|zstd)$/ }, (args) =>
      args.importer.endsWith(`${path.sep}codec${path.sep}index.js`) ? { path: `../codec/${args.path.slice(2)}`, external: true } : undefined,
    );
  },
};

/**
 * The error class stays out of a bundle, in tsc's output beside it (dist/src/errors.js, named
 * '../errors' from dist/src/cli and from dist/src/fuse alike), so that the bundle and the modules it
 * leaves out (the codecs; the mount daemon's image reader for the libfuse transport, and its
 * adapter) share one SquashfsError: `instanceof` decides how a failure is reported and its exit
 * status.
 */
const errorsOutside: Plugin = {
  name: 'errors-outside',
  setup(build) {
    build.onResolve({ filter: /(^|\/)errors$/ }, (args) => (path.resolve(args.resolveDir, args.path) === path.resolve(__dirname, '..', 'errors') ? { path: '../errors', external: true } : undefined));
  },
};

/**
 * A bundle's V8 code cache (./code-cache.ts): the bundle runs each command line once, in a child
 * process with Node's default flags (V8 refuses a cache made under other flags), and writes the
 * cache as it leaves. A cache that could not be made is said loudly and left out: the bundle runs
 * without it (and test/startup-bundles.test.ts fails on a build without one).
 */
function trainCodeCache(bundle: string, lines: string[][], root: string): void {
  const cache = codeCacheFileOf(bundle);
  fs.rmSync(cache, { force: true });
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  const r = spawnSync(process.execPath, [path.join(__dirname, 'code-cache.js'), '--train', bundle, path.join(__dirname, 'main.js'), ...lines.map((l) => JSON.stringify(l))], {
    stdio: ['ignore', 'ignore', 'pipe'],
    encoding: 'utf8',
    env,
  });
  if (r.status !== 0 || !fs.existsSync(cache)) {
    console.error(`bundle: WARNING: the code cache of ${path.basename(bundle)} was not made (status ${r.status}); the bundle runs without it:\n${r.stderr}`);
    return;
  }
  console.log(`${path.relative(root, cache)}: ${(fs.statSync(cache).size / 1024).toFixed(0)} KiB`);
}

async function main(): Promise<void> {
  const cliDir = __dirname; // dist/src/cli
  const srcDir = path.resolve(cliDir, '..'); // dist/src
  const root = path.resolve(srcDir, '..', '..');
  const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as Record<string, Record<string, string> | undefined>;
  const packages = Object.keys({ ...pkg.dependencies, ...pkg.optionalDependencies }).filter((p) => p !== 'commander');
  const otherCommands = fs
    .readdirSync(path.join(cliDir, 'commands'))
    .filter((f) => f.endsWith('.js'))
    .map((f) => f.slice(0, -3))
    .filter((c) => !BUNDLED_COMMANDS.includes(c))
    .map((c) => `./commands/${c}`);
  const bundle = async (entry: string, out: string, external: string[], plugins: Plugin[] = []): Promise<string[]> => {
    const r = await build({
      entryPoints: [entry],
      bundle: true,
      platform: 'node',
      target: 'node20',
      format: 'cjs',
      outfile: out,
      external: [...packages, ...packages.map((p) => `${p}/*`), ...external],
      // Smaller text is less for V8 to read at every start; names stay for stack traces.
      minifyWhitespace: true,
      minifySyntax: true,
      logLevel: 'warning',
      plugins,
      metafile: true,
    });
    const inputs = Object.keys(r.metafile.inputs).length;
    console.log(`${path.relative(root, out)}: ${inputs} modules, ${(fs.statSync(out).size / 1024).toFixed(0)} KiB`);
    return Object.keys(r.metafile.inputs);
  };

  const out = path.join(cliDir, BUNDLE_FILE);
  await bundle(path.join(cliDir, 'bundle-entry.js'), out, otherCommands, [lazyChildProcessForCommander, fuseDaemonOutside]);

  // The short commands' fast path: commander stays out (its command lines go to the bundle above).
  const shortInputs = await bundle(path.join(cliDir, 'short-entry.js'), path.join(cliDir, SHORT_BUNDLE_FILE), ['commander', ...otherCommands], [codecsOutside, errorsOutside]);
  const stray = shortInputs.filter((f) => /node_modules|\/codec\/(?!index\.js|gzip\.js|util\.js)|\/program\.js$/.test(f));
  if (stray.length) throw new Error(`${SHORT_BUNDLE_FILE} holds what the short commands do not use: ${stray.join(', ')}`);
  const demo = path.join(root, 'fixtures', 'demo.sqfs');
  trainCodeCache(
    path.join(cliDir, SHORT_BUNDLE_FILE),
    [
      ['info', demo],
      ['ls', '-l', demo],
      ['stat', demo, 'README.md'],
      ['cat', demo, 'README.md'],
    ],
    root,
  );
  // The whole program's bundle: mostly `pack` (a small tree of this build, both ways it writes
  // data), and the read commands as commander runs them.
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'distri-bundle-'));
  try {
    trainCodeCache(
      out,
      [
        ['pack', path.join(srcDir, 'format'), path.join(scratch, 'gzip.sqfs')],
        ['pack', '--comp', 'none', path.join(srcDir, 'format'), path.join(scratch, 'none.sqfs')],
        ['info', '--json', demo],
        ['ls', '-lR', demo],
        ['xattrs', demo, 'README.md'],
        ['cat', demo, 'README.md'],
        ['extract', demo, '-d', path.join(scratch, 'extracted')],
      ],
      root,
    );
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true });
  }

  // The background daemon of `distri mount` and its serving thread (src/fuse/bundles.ts says where
  // they sit and why). The libfuse adapter stays out: it is in the same directory either way.
  const fuseDir = path.join(srcDir, 'fuse');
  // The daemon reads `distri mount`'s command line itself when the command started it first
  // (daemon-first.ts): it holds the mount command's action, not the CLI's parser (cliOutsideDaemon).
  await bundle(path.join(fuseDir, 'mount-daemon.js'), path.join(fuseDir, DAEMON_BUNDLE), ['./adapter', '../cli/program'], [cliOutsideDaemon, errorsOutside]);
  // Never required by the thread that serves the other kind of mount (serve-worker.ts BUILT_IN).
  await bundle(path.join(fuseDir, 'kernel', 'serve-worker.js'), path.join(fuseDir, SERVE_WORKER_BUNDLE), ['../store-build']);
  await bundle(path.join(fuseDir, 'kernel', 'serve-worker.js'), path.join(fuseDir, SERVE_STORE_WORKER_BUNDLE), ['../image-source']);
}

main().catch((e: unknown) => {
  console.error(`bundle: ${e instanceof Error ? e.message : String(e)}`);
  process.exitCode = 1;
});
