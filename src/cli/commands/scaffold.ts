/**
 * `distri scaffold URL`: a new `$DISTRIROOT/pkgs/<name>/build.textproto` for an upstream source,
 * or the existing one updated to it (src/build/scaffold-recipe.ts). The source is downloaded to
 * `_build/<name>/` (where `distri build` looks for it) and hashed.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Command, Option } from 'commander';
import { SquashfsError } from '../../errors';
import { defaultDistriRoot } from '../../build/distriroot';
import { fetchToFile } from '../../build/fetch';
import { RECIPE_FILE } from '../../build/recipe';
import { isCpanUrl, newRecipeText, updateRecipeText } from '../../build/scaffold-recipe';
import { archiveName } from '../../build/source';
import { guessFromUrl } from '../../store/scaffold';
import { action } from '../common';

interface Flags {
  name?: string;
  version?: string;
  upstreamVersion?: string;
  dryRun?: boolean;
  json?: boolean;
  distriroot?: string;
}

export function register(program: Command): void {
  program
    .command('scaffold')
    .description('write pkgs/<name>/build.textproto for an upstream source URL (new, or updated with the revision bumped)')
    .argument('<url>', 'the source archive: http://, https:// or file://')
    .option('--name <name>', 'package name (default: guessed from the URL)')
    .option('--version <version>', 'upstream version (default: guessed from the URL)')
    // main.ts turns this command's --version into --upstream-version (the program has a --version).
    .addOption(new Option('--upstream-version <version>').hideHelp())
    .option('--dry-run', 'print the build.textproto instead of writing it')
    .option('--distriroot <dir>', 'the tree holding pkgs/ and _build/ (default $DISTRIROOT, else ~/distri)')
    .option('--json', 'print {name, version, hash, file, changed} on stdout')
    .addHelpText(
      'after',
      [
        '',
        'The name and version come from the file name (`hello-2.10.tar.gz`: hello 2.10; `whois_5.4.2.tar.xz`:',
        'whois 5.4.2) or a GitHub archive URL (`github.com/traviscross/mtr/archive/v0.92.tar.gz`: mtr 0.92).',
        'The source is downloaded to $DISTRIROOT/_build/<name>/ and its sha256 written as `hash`. A new recipe',
        'gets `version: "<version>-1"` and `cbuilder: {}` (`perlbuilder: {}` and a perl- name for CPAN);',
        'an existing one gets the new source, hash and version with the revision bumped, and nothing',
        'changes when it already says all that.',
        '',
        'Examples:',
        '  distri scaffold https://ftp.gnu.org/gnu/hello/hello-2.10.tar.gz',
        '  distri scaffold --dry-run https://www.nano-editor.org/dist/v4/nano-4.3.tar.xz',
        '  distri scaffold --name zlib --version 1.3 file:///srv/mirror/zlib-1.3.tar.gz',
        '  distri build --pkg hello                  then build it',
      ].join('\n'),
    )
    .action(
      action(
        () => 'scaffold',
        async (url: string, flags: Flags) => {
          const guess = guessFromUrl(url);
          const cpan = isCpanUrl(url);
          let name = flags.name ?? guess?.name;
          const version = flags.upstreamVersion ?? flags.version ?? guess?.version;
          if (!name || !version) throw new SquashfsError('INVALID_ARGUMENT', `cannot tell name and version from ${url}: give --name and --version`);
          if (cpan && !flags.name && guess) name = `perl-${trimPerlName(url, guess.name)}`;
          if (!/^[A-Za-z0-9][A-Za-z0-9+._-]*$/.test(name)) throw new SquashfsError('INVALID_ARGUMENT', `package name ${JSON.stringify(name)}: letters, digits and + . _ - only`);
          const root = path.resolve(flags.distriroot ?? defaultDistriRoot());
          const archive = path.join(root, '_build', name, archiveName(url));
          const tty = process.stderr.isTTY && !flags.json;
          let last = 0;
          const hash = await fetchToFile(
            url,
            archive,
            tty
              ? (done, total) => {
                  const now = Date.now();
                  if (now - last < 200) return;
                  last = now;
                  process.stderr.write(`\rdownloading ${(done / 2 ** 20).toFixed(1)}${total ? `/${(total / 2 ** 20).toFixed(1)}` : ''} MiB`);
                }
              : undefined,
          );
          if (tty) process.stderr.write('\r\x1b[K');
          const file = path.join(root, 'pkgs', name, RECIPE_FILE);
          let text: string;
          let changed = true;
          if (fs.existsSync(file)) {
            ({ text, changed } = updateRecipeText(fs.readFileSync(file, 'utf8'), { source: url, hash, version }, file));
          } else {
            text = newRecipeText({ source: url, hash, version, builder: cpan ? 'perlbuilder' : 'cbuilder' });
          }
          if (!flags.dryRun && changed) {
            fs.mkdirSync(path.dirname(file), { recursive: true });
            const tmp = `${file}.tmp-${process.pid}`;
            fs.writeFileSync(tmp, text);
            fs.renameSync(tmp, file);
          }
          if (flags.json) process.stdout.write(JSON.stringify({ name, version, hash, file, changed, written: !flags.dryRun && changed }) + '\n');
          else if (flags.dryRun) process.stdout.write(text);
          else process.stderr.write(changed ? `wrote ${file}\n` : `${file} already says this source; nothing changed\n`);
        },
      ),
    );
}

/** CPAN names keep their case (`Try-Tiny`), as distri's perl- packages do. */
function trimPerlName(url: string, lower: string): string {
  const file =
    url
      .replace(/[?#].*$/, '')
      .split('/')
      .pop() ?? '';
  return file.toLowerCase().startsWith(lower) ? file.slice(0, lower.length) : lower;
}
