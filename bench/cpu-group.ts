/**
 * CPU time (user and system) of a whole process tree, however it forks, daemonizes or enters
 * namespaces: a cgroup. Every process started inside the group stays in it, with its children, even
 * after its parent exits (a FUSE daemon that detaches, a build's PID 1 in its own PID namespace),
 * and the kernel sums their CPU time, including that of processes already gone. rusage of waited
 * children would miss the detached daemon, and /proc sampling would miss short-lived compilers.
 *
 * cgroup v1 (`cpuacct`: cpuacct.usage_user, cpuacct.usage_sys, in ns) or v2 (`cpu.stat`: user_usec,
 * system_usec; kept without enabling any controller). A group's figures include its subgroups, so
 * moving one process (the daemon) into a subgroup splits its share out without losing it from the
 * total. Root only; create() returns undefined where no hierarchy can be written.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface CpuTime {
  userMs: number;
  sysMs: number;
}

function hierarchy(): { dir: string; v1: boolean } | undefined {
  if (fs.existsSync('/sys/fs/cgroup/cpuacct/cpuacct.usage_user')) return { dir: '/sys/fs/cgroup/cpuacct', v1: true };
  let mounts = '';
  try {
    mounts = fs.readFileSync('/proc/self/mounts', 'utf8');
  } catch {
    return undefined;
  }
  const v2 = mounts
    .split('\n')
    .map((l) => l.split(' '))
    .find((f) => f[2] === 'cgroup2');
  return v2 ? { dir: v2[1]!, v1: false } : undefined;
}

export class CpuGroup {
  private constructor(
    readonly dir: string,
    private readonly v1: boolean,
  ) {}

  /** A new group `name` at the top of the hierarchy, or undefined (not root, no cgroup fs). */
  static create(name: string): CpuGroup | undefined {
    const h = hierarchy();
    if (!h) return undefined;
    const dir = path.join(h.dir, name);
    try {
      fs.mkdirSync(dir);
    } catch {
      return undefined;
    }
    return new CpuGroup(dir, h.v1);
  }

  child(name: string): CpuGroup {
    const dir = path.join(this.dir, name);
    fs.mkdirSync(dir);
    return new CpuGroup(dir, this.v1);
  }

  /** Moves a process (with all its threads) into this group. */
  add(pid: number): void {
    fs.writeFileSync(path.join(this.dir, 'cgroup.procs'), `${pid}\n`);
  }

  pids(): number[] {
    return fs
      .readFileSync(path.join(this.dir, 'cgroup.procs'), 'utf8')
      .split('\n')
      .filter((l) => l !== '')
      .map(Number);
  }

  /** The argv prefix that runs a command inside this group: `sh -c` enters it, then execs. */
  wrap(argv: string[]): string[] {
    return ['/bin/sh', '-c', 'echo $$ > "$0" && exec "$@"', path.join(this.dir, 'cgroup.procs'), ...argv];
  }

  usage(): CpuTime {
    if (this.v1) {
      const ns = (f: string) => Number(fs.readFileSync(path.join(this.dir, f), 'utf8').trim());
      return { userMs: ns('cpuacct.usage_user') / 1e6, sysMs: ns('cpuacct.usage_sys') / 1e6 };
    }
    const stat = fs.readFileSync(path.join(this.dir, 'cpu.stat'), 'utf8');
    const us = (k: string) => Number(new RegExp(`^${k} (\\d+)$`, 'm').exec(stat)?.[1] ?? NaN);
    return { userMs: us('user_usec') / 1000, sysMs: us('system_usec') / 1000 };
  }

  /** Removes the group (children first); it must be empty of processes by then. */
  remove(): void {
    for (const e of fs.readdirSync(this.dir, { withFileTypes: true })) if (e.isDirectory()) fs.rmdirSync(path.join(this.dir, e.name));
    fs.rmdirSync(this.dir);
  }
}
