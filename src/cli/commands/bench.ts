/**
 * `distri bench …`: benchmarks run through the CLI. The command only dispatches: each subcommand
 * is a module in bench/ (compiled to dist/bench/) exporting `register(bench)`, so benchmark code
 * stays with the other benchmarks and their shared helpers (bench/lib.ts), out of the CLI. They
 * print figures and never assert timings. Loaded only when `distri bench` is asked for.
 */
import type { Command } from 'commander';

/** The subcommands, one bench/ module each: `bench/<name>.ts`. A new one is added here. */
const SUBCOMMANDS = ['lazy', 'remote', 'build'] as const;

export function register(program: Command): void {
  const bench = program.command('bench').description('benchmarks (they print figures; they never assert timings)');
  for (const name of SUBCOMMANDS) {
    const mod = require(`../../../bench/${name}`) as { register(bench: Command): void };
    mod.register(bench);
  }
}
