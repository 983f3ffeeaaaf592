/**
 * Durations in the log, written as Go's time.Duration prints them (the article's log came from Go):
 * `18.1s`, `2m31.5s`, `1h2m3s`, `512ms`; rounded to a tenth of a second from one second up.
 */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const tenths = Math.round(ms / 100);
  const h = Math.floor(tenths / 36000);
  const m = Math.floor((tenths % 36000) / 600);
  const s = (tenths % 600) / 10;
  const sec = `${Number.isInteger(s) ? s : s.toFixed(1)}s`;
  return h > 0 ? `${h}h${m}m${sec}` : m > 0 ? `${m}m${sec}` : sec;
}

/** The inverse of formatDuration (`2m31.5s` → 151500); undefined for anything else. */
export function parseDuration(s: string): number | undefined {
  const m = /^(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+(?:\.\d+)?)(ms|s))?$/.exec(s);
  if (!m || s === '' || (m[1] === undefined && m[2] === undefined && m[3] === undefined)) return undefined;
  const unit = m[4] === 'ms' ? 1 : 1000;
  return Number(m[1] ?? 0) * 3_600_000 + Number(m[2] ?? 0) * 60_000 + Number(m[3] ?? 0) * unit;
}

/** `[a b c]`: how Go prints a []string with %v (the step line of the log). */
export function goList(argv: readonly string[]): string {
  return `[${argv.join(' ')}]`;
}

/** `["a" "b"]`: how Go prints a []string with %q (the runtime deps line). */
export function goQuotedList(items: readonly string[]): string {
  return `[${items.map((s) => JSON.stringify(s)).join(' ')}]`;
}
