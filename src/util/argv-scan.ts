/**
 * A look at a `distri mount` or `distri fuse` command line before any parser is loaded: the
 * command that starts its daemon first (../cli/daemon-first.ts), the daemon's entry that starts its
 * serving thread first (../fuse/mount-env.ts) and the mount daemon's reading of a plain command
 * line (../cli/commands/mount.ts) all need to know a few things from argv within a millisecond of
 * Node's start, where commander and the program take ~15 ms. They share this one reading of the
 * words, the way commander reads them:
 *
 *  - `--name=value`, and `--name value` for the options that take a value (VALUED_LONG);
 *  - short clusters such as `-fd`, where `o` takes the rest of the cluster or the next word as
 *    its value (`-ouid=1`, `-o uid=1`, `-fo uid=1`);
 *  - `--` ends the options: every later word is an operand;
 *  - anything else is an operand (`-` alone included).
 *
 * Loads nothing.
 */

/** The long options of `mount`, `fuse` and the program that take their value in the next word. */
const VALUED_LONG = new Set(['--options', '--pid-file', '--transport', '--store', '--notify-pipe', '--overlays', '--pkgs', '--max-open', '--cache-mb', '--repo', '--remote-timeout', '--read-ahead']);

/** The short option that takes a value: `-o` (mount's comma-separated options). */
const VALUED_SHORT = 'o';

export type Word =
  | { kind: 'operand'; text: string }
  /** `name` with its dashes (`--transport`); `value` undefined when none was given. */
  | { kind: 'long'; name: string; value?: string }
  /** The letters of one cluster (`fd` for `-fd`); `value` for a cluster ending in `o`. */
  | { kind: 'short'; letters: string; value?: string }
  | { kind: 'end' };

export function scanArgv(argv: readonly string[]): Word[] {
  const out: Word[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      out.push({ kind: 'end' });
      for (const rest of argv.slice(i + 1)) out.push({ kind: 'operand', text: rest });
      break;
    }
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      if (eq > 0) out.push({ kind: 'long', name: a.slice(0, eq), value: a.slice(eq + 1) });
      else if (VALUED_LONG.has(a)) out.push({ kind: 'long', name: a, value: argv[++i] });
      else out.push({ kind: 'long', name: a });
    } else if (a.startsWith('-') && a.length > 1) {
      const o = a.indexOf(VALUED_SHORT, 1);
      if (o < 0) out.push({ kind: 'short', letters: a.slice(1) });
      else out.push({ kind: 'short', letters: a.slice(1, o + 1), value: o + 1 < a.length ? a.slice(o + 1) : argv[++i] });
    } else {
      out.push({ kind: 'operand', text: a });
    }
  }
  return out;
}

/** The value of the last `--name` (`--name value` or `--name=value`) among `words`. */
export function lastLong(words: readonly Word[], name: string): string | undefined {
  let found: string | undefined;
  for (const w of words) if (w.kind === 'long' && w.name === name && w.value !== undefined) found = w.value;
  return found;
}

/** The comma-separated items of every `-o` and `--options` among `words`, in order. */
export function optionItems(words: readonly Word[]): string[] {
  const items: string[] = [];
  for (const w of words) {
    const value = (w.kind === 'short' && w.letters.endsWith(VALUED_SHORT)) || (w.kind === 'long' && w.name === '--options') ? w.value : undefined;
    if (value !== undefined) items.push(...value.split(','));
  }
  return items;
}

/** Whether a short cluster among `words` holds one of `letters` (`-fd` holds f and d). */
export function hasShort(words: readonly Word[], letters: string): boolean {
  return words.some((w) => w.kind === 'short' && [...w.letters].some((l) => letters.includes(l)));
}

/** Whether `--name` (for any of `names`) is among `words`. */
export function hasLong(words: readonly Word[], ...names: string[]): boolean {
  return words.some((w) => w.kind === 'long' && names.includes(w.name));
}
