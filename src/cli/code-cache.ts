/**
 * Makes the V8 code caches of the CLI's bundles (./bundle.ts): the bytecode of a bundle's top level
 * and of every function its commands reach, as V8 serialised it after running them. For the short
 * commands (cli-short.bundle.js, ./short.ts), compiling the bundle and then, lazily, each function
 * a command reaches was 7–12 ms of such a command's ~20 ms over Node's own start-up; for `pack`,
 * `extract` and `xattrs` from the whole program's bundle, ~25–45 ms (bench/README-cli.md). Reading
 * a cache back costs about 1 ms. Node 20 has no `module.enableCompileCache` (Node 22 does), so
 * this is the same done by hand with node:vm.
 *
 * ./main.ts reads and checks the cache (the file's layout and why it is so are there), and runs
 * the bundle from it. `npm run build` (./bundle.ts) runs this module in a child process with Node's
 * default flags (V8 refuses a cache made under other flags):
 *
 *   node dist/src/cli/code-cache.js --train BUNDLE MAIN LINE_JSON…
 *
 * which runs the bundle once for each command line, in one process, and writes the cache when the
 * process has nothing left to do (standard output unused).
 */
import * as fs from 'node:fs';
import { CODE_CACHE, codeCacheFileOf, compileBundle, runCompiledBundle } from './main';

function train(bundle: string, main: string, lines: string[][]): void {
  const source = fs.readFileSync(bundle);
  const script = compileBundle(bundle, source, undefined);
  for (const line of lines) {
    process.argv = [process.argv[0]!, main, ...line];
    runCompiledBundle(script, bundle);
    delete require.cache[bundle];
  }
  process.once('beforeExit', () => {
    if (process.exitCode) return; // a command failed: no cache, and the build says so
    const data = script.createCachedData();
    const header = Buffer.alloc(CODE_CACHE.headerSize);
    header.write(CODE_CACHE.magic, 0, 'latin1');
    header.writeUInt32LE(CODE_CACHE.version, 8);
    header.writeUInt32LE(source.length, 12);
    header.writeUInt32LE(data.length, 16);
    header.write(process.versions.v8.slice(0, CODE_CACHE.v8Size), CODE_CACHE.v8At, 'latin1');
    const file = codeCacheFileOf(bundle);
    const tmp = `${file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, Buffer.concat([header, source, data, data]));
    fs.renameSync(tmp, file);
  });
}

if (require.main === module && process.argv[2] === '--train') {
  const [bundle, main, ...lines] = process.argv.slice(3);
  train(
    bundle!,
    main!,
    lines.map((l) => JSON.parse(l) as string[]),
  );
}
