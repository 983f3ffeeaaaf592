/**
 * A command described as data: its arguments, options, help text and action. The short read
 * commands (info, ls, stat, cat) are written this way so that one description serves two parsers:
 * commander, through register() here, for `--help`, usage errors and every unusual command line;
 * and ./fast-args.ts, a small parser that runs the common command lines without loading commander
 * at all (./short.ts says when). Both read the same flags, so they cannot drift apart.
 *
 * Nothing here loads commander: register() is given the program and builds on it.
 */
import type { Command } from 'commander';
import { action, offsetOption } from './common';

/** `<image>` required, `[path]` optional, `<paths...>` one or more. */
export interface ArgSpec {
  name: string;
  description: string;
  /** The value of an optional argument that is not given. */
  default?: string;
}

/** Flags as commander spells them: `-l, --long` (a switch) or `--offset <bytes>` (takes a value). */
export interface OptionSpec {
  flags: string;
  description: string;
}

/** The image every short command reads. */
export const IMAGE: ArgSpec = { name: '<image>', description: 'a .squashfs file' };

/** The one option with a value that the short commands have: common.ts's offsetOption(). */
export const OFFSET: OptionSpec = { flags: '--offset <bytes>', description: '' };

export interface CommandSpec {
  name: string;
  description: string;
  args: readonly ArgSpec[];
  /** In the order --help lists them; OFFSET stands for offsetOption(). */
  options: readonly OptionSpec[];
  /** Shown after the options by --help. */
  helpAfter: string;
  /** What an error line names after `distri: ` (the image, or the image and the path). */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  context: (...args: any[]) => string;
  /** The arguments in order (a variadic one as an array), then the options object. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  run: (...args: any[]) => void | Promise<void>;
}

/** Adds the command to commander's program, exactly as its description says. */
export function register(program: Command, spec: CommandSpec): void {
  const cmd = program.command(spec.name).description(spec.description);
  for (const a of spec.args) {
    if (a.default !== undefined) cmd.argument(a.name, a.description, a.default);
    else cmd.argument(a.name, a.description);
  }
  for (const o of spec.options) {
    if (o === OFFSET) cmd.addOption(offsetOption());
    else cmd.option(o.flags, o.description);
  }
  cmd.addHelpText('after', spec.helpAfter).action(action(spec.context, spec.run));
}
