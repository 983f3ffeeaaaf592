/**
 * Debug info split out of a package's ELF files, as distri did after its ELF pass: the debug
 * sections of each file with a build-id go to `debug/.build-id/<xx>/<rest>.debug`
 * (`objcopy --only-keep-debug`), and the file keeps only a `.gnu_debuglink` to them
 * (`objcopy --strip-debug --add-gnu-debuglink`).
 *
 * The objcopy is the build's own: binutils from the build-dep closure, run in the sandbox through
 * the mounted /ro, the way every other tool of the build runs. The host's binutils may be missing,
 * older, or simply another one than the recipe asked for (distri ran its steps after chroot, so it
 * never saw the host's). `run` executes an argv where `insideRoot` is the package root: in a build
 * that is runInRoot, with the package's destination bound at /ro/<full>. All files go through one
 * `/bin/sh` script (two objcopy runs each), so a package with hundreds of binaries pays for one
 * sandbox set-up, not hundreds.
 *
 * A file whose split fails keeps its debug info, with a log line; the build goes on.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface DebugSplitInput {
  /** Host path of the package root (has out/, gets debug/). */
  pkgRoot: string;
  /** The same directory as `run`'s programs see it. */
  insideRoot: string;
  /** objcopy's path as `run`'s programs see it. */
  objcopy: string;
  /** From the ELF pass: files relative to the root with their build-ids. */
  files: readonly { rel: string; buildId: string }[];
  run(argv: string[]): Promise<{ code: number | null; signal?: string | null; output?: Buffer }>;
  log(line: string): void;
}

const TMP_SUFFIX = '.distri-strip';

/**
 * For each (file, debug file) pair: the debug file, then the stripped copy beside the file; on any
 * failure neither is left. The host renames the copy over the file afterwards (keeping its mode).
 */
const SCRIPT = [
  'objcopy=$1; shift',
  'while [ $# -gt 1 ]; do',
  '  f=$1; d=$2; shift 2',
  `  "$objcopy" --only-keep-debug "$f" "$d" && "$objcopy" -p --strip-debug --add-gnu-debuglink="$d" "$f" "$f${TMP_SUFFIX}" || rm -f "$d" "$f${TMP_SUFFIX}"`,
  'done',
].join('\n');

export function debugFileOf(buildId: string): string {
  return path.posix.join('debug', '.build-id', buildId.slice(0, 2), `${buildId.slice(2)}.debug`);
}

/** Splits the files' debug info; returns the debug files written (relative to the root). */
export async function splitDebugInfo(i: DebugSplitInput): Promise<string[]> {
  const todo = i.files.filter((f) => f.buildId.length >= 3);
  if (todo.length === 0) return [];
  const args: string[] = [];
  for (const f of todo) {
    const debugRel = debugFileOf(f.buildId);
    fs.mkdirSync(path.join(i.pkgRoot, path.dirname(debugRel)), { recursive: true });
    fs.rmSync(path.join(i.pkgRoot, f.rel + TMP_SUFFIX), { force: true });
    args.push(path.posix.join(i.insideRoot, f.rel), path.posix.join(i.insideRoot, debugRel));
  }
  const r = await i.run(['/bin/sh', '-c', SCRIPT, 'distri-debug-split', i.objcopy, ...args]);
  const said = (r.output?.toString('utf8') ?? '').trim().split('\n').slice(-6).join(' / ');
  if (r.code !== 0) i.log(`elf: debug split with ${i.objcopy}: ${r.signal ? `killed by ${r.signal}` : `exit status ${r.code}`}${said ? `: ${said}` : ''}`);
  const written: string[] = [];
  for (const f of todo) {
    const file = path.join(i.pkgRoot, f.rel);
    const tmp = file + TMP_SUFFIX;
    const debugRel = debugFileOf(f.buildId);
    if (fs.existsSync(tmp) && fs.existsSync(path.join(i.pkgRoot, debugRel))) {
      fs.chmodSync(tmp, fs.statSync(file).mode & 0o7777);
      fs.renameSync(tmp, file);
      written.push(debugRel);
      i.log(`elf: ${f.rel}: debug info → ${debugRel}`);
    } else {
      fs.rmSync(tmp, { force: true });
      fs.rmSync(path.join(i.pkgRoot, debugRel), { force: true });
      i.log(`elf: ${f.rel}: debug info not split (${i.objcopy} failed${said ? `: ${said}` : ''})`);
    }
  }
  // Directories made for splits that failed would leave an empty debug/ behind.
  removeEmptyDirs(path.join(i.pkgRoot, 'debug'));
  return written;
}

function removeEmptyDirs(dir: string): void {
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) if (e.isDirectory()) removeEmptyDirs(path.join(dir, e.name));
  if (fs.readdirSync(dir).length === 0) fs.rmdirSync(dir);
}
