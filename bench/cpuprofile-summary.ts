/**
 * Sums a V8 CPU profile (`node --cpu-prof`) by self time per function, and names the callers of
 * the heaviest ones, so that a profile can be summed the same way before and after a change:
 *
 *   node dist/bench/cpuprofile-summary.js PROFILE.cpuprofile [--top N=25] [--callers N=3]
 *
 *   node dist/bench/cpuprofile-summary.js PROFILE.cpuprofile --inclusive scanNodes,addFile,writeInode
 *
 * (--inclusive: also the time spent in and below each named function, its callees included.)
 *
 *   node dist/bench/cpuprofile-summary.js A.cpuprofile B.cpuprofile C.cpuprofile
 *
 * (several profiles of the same thread in repeated runs: the times are their average per run.)
 *
 * Self time of a sample is the time delta V8 recorded for it; the total is their sum (the
 * thread's wall time while profiled, idle included, shown as "(idle)").
 */
import * as fs from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const args = process.argv.slice(2);
const flag = (name: string, def: number) => {
  const i = args.indexOf(name);
  if (i < 0) return def;
  const v = Number(args[i + 1]);
  args.splice(i, 2);
  return v;
};
const top = flag('--top', 25);
const inclusiveIdx = args.indexOf('--inclusive');
const inclusive = inclusiveIdx < 0 ? [] : args.splice(inclusiveIdx, 2)[1]!.split(',');
const callersOf = flag('--callers', 3);
const files = args;
if (files.length === 0) {
  console.error('usage: cpuprofile-summary PROFILE.cpuprofile... [--top N] [--callers N] [--inclusive f,g]');
  process.exit(2);
}

const label = (n: ProfileNode) => {
  const f = n.callFrame;
  const name = f.functionName || '(anonymous)';
  const where = f.url ? ` ${f.url.replace(/^.*\/(dist|node_modules)\//, '$1/').replace(/^node:/, '')}:${f.lineNumber + 1}` : '';
  return `${name}${where}`;
};
const self = new Map<string, number>();
const incl = new Map<string, number>();
const chains = new Map<string, Map<string, number>>();
let total = 0;
let samples = 0;
for (const file of files) {
  const prof = JSON.parse(fs.readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  samples += prof.samples.length;
  for (let i = 0; i < prof.samples.length; i++) {
    const dt = (prof.timeDeltas[i] ?? 0) / 1000 / files.length;
    total += dt;
    const n = byId.get(prof.samples[i]!)!;
    const key = label(n);
    self.set(key, (self.get(key) ?? 0) + dt);
    // The caller chain, three frames up, for the "←" lines.
    const up: string[] = [];
    for (let p = parent.get(n.id); p !== undefined && up.length < 3; p = parent.get(p)) {
      const pn = byId.get(p)!;
      if (pn.callFrame.functionName === '(root)') break;
      up.push(pn.callFrame.functionName || '(anonymous)');
    }
    // Inclusive time: once per sample for each named function on its stack.
    for (const name of inclusive) {
      for (let p: number | undefined = n.id; p !== undefined; p = parent.get(p)) {
        if (byId.get(p)!.callFrame.functionName === name) {
          incl.set(name, (incl.get(name) ?? 0) + dt);
          break;
        }
      }
    }
    const m = chains.get(key) ?? new Map<string, number>();
    chains.set(key, m);
    const c = up.join(' ← ');
    m.set(c, (m.get(c) ?? 0) + dt);
  }
}
console.log(`total ${total.toFixed(0)} ms${files.length > 1 ? ` (average of ${files.length} profiles)` : ''}, ${samples} samples`);
for (const name of inclusive) console.log(`inclusive ${name}: ${(incl.get(name) ?? 0).toFixed(0)} ms`);
const rows = [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, top);
for (const [k, ms] of rows) {
  console.log(`${((100 * ms) / total).toFixed(1).padStart(5)}% ${ms.toFixed(0).padStart(6)} ms  ${k}`);
  const cs = [...(chains.get(k) ?? new Map<string, number>()).entries()].sort((a, b) => b[1] - a[1]).slice(0, callersOf);
  for (const [c, cms] of cs) if (c && cms >= total / 200) console.log(`${' '.repeat(17)}${cms.toFixed(0).padStart(5)} ms ← ${c}`);
}
