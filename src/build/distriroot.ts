/**
 * $DISTRIROOT: the tree distri's build commands work in, `pkgs/<pkg>/build.textproto` (recipes)
 * and `_build/` (downloads, unpacked sources, logs, and the output repo `_build/distri/pkg/`).
 * Default `~/distri`, as in distri; `--distriroot` or the DISTRIROOT variable choose another.
 */
import * as os from 'node:os';
import * as path from 'node:path';

export function defaultDistriRoot(): string {
  return process.env.DISTRIROOT && process.env.DISTRIROOT !== '' ? path.resolve(process.env.DISTRIROOT) : path.join(os.homedir(), 'distri');
}

/**
 * The package a `distri build` without --pkg means: the directory we are in, when it is
 * `<root>/pkgs/<pkg>` (then `<root>` is the distriroot too, unless one was given).
 */
export function packageFromCwd(cwd: string): { pkg: string; distriRoot: string } | undefined {
  const parent = path.dirname(cwd);
  if (path.basename(parent) !== 'pkgs') return undefined;
  return { pkg: path.basename(cwd), distriRoot: path.dirname(parent) };
}
