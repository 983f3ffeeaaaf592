/**
 * Counting the files opened in a directory with inotify: the OpenCounter itself lives in
 * bench/lib.ts, shared with `distri bench lazy`, so the tests and the benchmark count opens the
 * same way. Here: the availability check in the tests' terms (a loud skip, a failure under CI).
 */
import { toolAvailable, type Availability } from '../oracle/tools';
export { OpenCounter, imageOpens } from '../../bench/lib';

export function openCounterAvailable(): Availability {
  return toolAvailable('inotifywait');
}
