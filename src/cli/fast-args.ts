/**
 * A small parser for the command lines people type many times a day (`distri ls -l IMG DIR`,
 * `distri cat IMG FILE`), reading a CommandSpec (./spec.ts) the way commander reads the same
 * command: switches anywhere before `--` (`-lR` as `-l -R`), `--offset N` and `--offset=N`, the
 * program's `-v`/`--verbose` before or after the command, operands in order, an optional
 * argument's default.
 *
 * It accepts only command lines it can read exactly as commander would and answers `undefined`
 * for every other one: `--help`, `--version`, an unknown option, a missing or extra argument, an
 * offset that is not a number. Those go to commander, which prints its help and its errors, so the
 * fast path never needs its own copy of them (test/startup-bundles.test.ts holds both to the same
 * output).
 */
import { parseOffset } from './common';
import { OFFSET, type CommandSpec } from './spec';

export interface Invocation {
  /** The arguments in the order of the spec (a variadic one as an array). */
  args: Array<string | string[]>;
  /** Switches that were given (true), and offset (default 0), as commander's opts() has them. */
  opts: Record<string, unknown>;
  verbose: boolean;
}

interface Flag {
  short?: string;
  long: string;
  key: string;
  value: boolean;
}

/** `-n, --numeric-ids` → short -n, long --numeric-ids, key numericIds (commander's camel case). */
function flag(flags: string): Flag {
  const m = /^(?:(-\w), )?(--[\w-]+)( <\w+>)?$/.exec(flags);
  if (!m) throw new Error(`fast-args: cannot read the flags ${JSON.stringify(flags)}`);
  const key = m[2]!.slice(2).replace(/-(\w)/g, (_, c: string) => c.toUpperCase());
  return { short: m[1], long: m[2]!, key, value: m[3] !== undefined };
}

const isVerbose = (a: string) => a === '-v' || a === '--verbose';

/** argv without node and the script: `[-v] COMMAND ARGS…`. */
export function parseFast(spec: CommandSpec, argv: readonly string[]): Invocation | undefined {
  const flags = spec.options.map((o) => flag(o === OFFSET ? '--offset <bytes>' : o.flags));
  const opts: Record<string, unknown> = {};
  for (const f of flags) if (f.value && f.key === 'offset') opts.offset = 0;
  let verbose = false;
  let i = 0;
  // Before the command: only the program's -v (anything else, commander decides).
  for (; i < argv.length && argv[i] !== spec.name; i++) {
    if (!isVerbose(argv[i]!)) return undefined;
    verbose = true;
  }
  if (i === argv.length) return undefined;
  const operands: string[] = [];
  for (i++; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      operands.push(...argv.slice(i + 1));
      break;
    }
    if (a.length < 2 || a[0] !== '-') {
      operands.push(a);
      continue;
    }
    if (isVerbose(a)) {
      verbose = true;
      continue;
    }
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const f = flags.find((x) => x.long === (eq < 0 ? a : a.slice(0, eq)));
      if (!f || (eq >= 0 && !f.value)) return undefined;
      if (!f.value) {
        opts[f.key] = true;
        continue;
      }
      const v = eq >= 0 ? a.slice(eq + 1) : argv[++i];
      if (v === undefined || f.key !== 'offset') return undefined;
      try {
        opts.offset = parseOffset(v);
      } catch {
        return undefined; // commander says what is wrong with it
      }
      continue;
    }
    // -l, or a group of switches -lR
    for (const c of a.slice(1)) {
      const f = flags.find((x) => x.short === `-${c}` && !x.value);
      if (!f) return undefined;
      opts[f.key] = true;
    }
  }
  const args: Array<string | string[]> = [];
  let next = 0;
  for (const spec_ of spec.args) {
    const required = spec_.name.startsWith('<');
    if (spec_.name.endsWith('...>') || spec_.name.endsWith('...]')) {
      if (required && next >= operands.length) return undefined;
      args.push(operands.slice(next));
      next = operands.length;
    } else if (next < operands.length) {
      args.push(operands[next++]!);
    } else if (required || spec_.default === undefined) {
      return undefined;
    } else {
      args.push(spec_.default);
    }
  }
  if (next < operands.length) return undefined; // too many: commander's error
  return { args, opts, verbose };
}
