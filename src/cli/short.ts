/**
 * The fast path of the short read commands, `info`, `ls`, `stat` and `cat`: what ./main.ts runs
 * for them from their own bundle (cli-short.bundle.js, made by ./bundle.ts). It parses the command
 * line with ./fast-args.ts and runs the command's action as commander would have; it loads neither
 * commander nor the program's other commands, nor a codec the image does not use, nor Node's
 * stdout stream (./stdout.ts). Every command line the small parser does not take (`--help`, a
 * usage error, anything unusual) goes to the whole program, which answers it as it always did.
 */
import { action, setVerbose } from './common';
import { parseFast } from './fast-args';
import type { CommandSpec } from './spec';

/** The commands this path serves (./main.ts sends only these here). */
export const SHORT_COMMANDS: Readonly<Record<string, () => CommandSpec>> = {
  info: () => (require('./commands/info') as typeof import('./commands/info')).spec,
  ls: () => (require('./commands/ls') as typeof import('./commands/ls')).spec,
  stat: () => (require('./commands/stat') as typeof import('./commands/stat')).spec,
  cat: () => (require('./commands/cat') as typeof import('./commands/cat')).spec,
};

/**
 * Runs the command line of this process if the small parser takes it; false (having done
 * nothing) when the whole program must.
 */
export function runShort(argv: readonly string[] = process.argv.slice(2)): boolean {
  const name = argv.find((a) => !a.startsWith('-'));
  const load = name !== undefined && Object.hasOwn(SHORT_COMMANDS, name) ? SHORT_COMMANDS[name] : undefined;
  if (!load) return false;
  const spec = load();
  const inv = parseFast(spec, argv);
  if (!inv) return false;
  setVerbose(inv.verbose);
  void action(spec.context, spec.run)(...inv.args, inv.opts);
  return true;
}
