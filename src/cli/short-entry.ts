/**
 * What cli-short.bundle.js runs (see ./short.ts): the fast path, or else the whole program from
 * cli.bundle.js beside it (made by the same build), which answers --help and usage errors.
 */
import * as path from 'node:path';
import { runShort } from './short';

// eslint-disable-next-line @typescript-eslint/no-require-imports
if (!runShort()) require(path.join(__dirname, 'cli.bundle.js'));
