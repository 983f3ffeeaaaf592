/**
 * Build step (`npm run build`, after tsc): bundles the short read commands into one file,
 * dist/src/cli/cli.bundle.js, which ./main.ts runs for them (see there for why).
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
import * as fs from 'node:fs';
import * as path from 'node:path';
import { build, type Plugin } from 'esbuild';
import { BUNDLE_FILE, BUNDLED_COMMANDS } from './main';

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

async function main(): Promise<void> {
  const cliDir = __dirname; // dist/src/cli
  const root = path.resolve(cliDir, '..', '..', '..');
  const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as Record<string, Record<string, string> | undefined>;
  const packages = Object.keys({ ...pkg.dependencies, ...pkg.optionalDependencies }).filter((p) => p !== 'commander');
  const otherCommands = fs
    .readdirSync(path.join(cliDir, 'commands'))
    .filter((f) => f.endsWith('.js'))
    .map((f) => f.slice(0, -3))
    .filter((c) => !BUNDLED_COMMANDS.includes(c))
    .map((c) => `./commands/${c}`);
  const out = path.join(cliDir, BUNDLE_FILE);
  const r = await build({
    entryPoints: [path.join(cliDir, 'bundle-entry.js')],
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    outfile: out,
    external: [...packages, ...packages.map((p) => `${p}/*`), ...otherCommands],
    // Smaller text is less for V8 to read at every start; names stay for stack traces.
    minifyWhitespace: true,
    minifySyntax: true,
    logLevel: 'warning',
    plugins: [lazyChildProcessForCommander],
    metafile: true,
  });
  const inputs = Object.keys(r.metafile.inputs).length;
  console.log(`${path.relative(root, out)}: ${inputs} modules, ${(fs.statSync(out).size / 1024).toFixed(0)} KiB`);
}

main().catch((e: unknown) => {
  console.error(`bundle: ${e instanceof Error ? e.message : String(e)}`);
  process.exitCode = 1;
});
