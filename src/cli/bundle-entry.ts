/**
 * What cli.bundle.js runs: the command line, as ./program.ts defines it. Only the bundle uses
 * this module (see ./main.ts and ./bundle.ts).
 */
import { run } from './program';

run();
