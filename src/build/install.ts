/**
 * What happens to the installed tree after the build steps, before wrappers and the ELF pass, in
 * distri's order (all paths relative to the package's `out/`):
 *
 *  1. empty `out/lib` and `out/share` go (they were made so that `/dest/tmp/ro/lib` and
 *     `/dest/tmp/ro/share` had somewhere to point);
 *  2. `delete`, `systemd_unit` (copied to lib/systemd/system), `file` (from the source dir),
 *     `symlink`, `chmod` (setuid), `empty_dir`, `rename`;
 *  3. `capability` last, as a `security.capability` xattr (what setcap(8) writes), so no later
 *     step can lose it.
 *
 * Paths are checked to stay inside out/ (a recipe is trusted code, but `../` in one is a typo).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SquashfsError } from '../errors';
import type { Install } from './recipe';

/** Resolves rel under base, refusing anything that leaves it. */
export function inside(base: string, rel: string, what: string): string {
  const p = path.resolve(base, rel.replace(/^\/+/, ''));
  if (p !== base && !p.startsWith(base + path.sep)) throw new SquashfsError('UNSAFE_PATH', `${what} ${JSON.stringify(rel)} leaves the package's out/`, 'build.textproto');
  return p;
}

/** Linux capability numbers (linux/capability.h), by cap_from_text(3) name. */
const CAPS = [
  'chown',
  'dac_override',
  'dac_read_search',
  'fowner',
  'fsetid',
  'kill',
  'setgid',
  'setuid',
  'setpcap',
  'linux_immutable',
  'net_bind_service',
  'net_broadcast',
  'net_admin',
  'net_raw',
  'ipc_lock',
  'ipc_owner',
  'sys_module',
  'sys_rawio',
  'sys_chroot',
  'sys_ptrace',
  'sys_pacct',
  'sys_admin',
  'sys_boot',
  'sys_nice',
  'sys_resource',
  'sys_time',
  'sys_tty_config',
  'mknod',
  'lease',
  'audit_write',
  'audit_control',
  'setfcap',
  'mac_override',
  'mac_admin',
  'syslog',
  'wake_alarm',
  'block_suspend',
  'audit_read',
  'perfmon',
  'bpf',
  'checkpoint_restore',
];

/**
 * Encodes a capability text (`cap_net_raw+ep`, `cap_net_admin,cap_net_raw=eip`, several clauses
 * separated by spaces) as the 20-byte `security.capability` value (VFS_CAP_REVISION_2: magic with
 * the effective bit, then permitted and inheritable, low and high 32 bits).
 */
export function encodeCapability(text: string): Buffer {
  const perm = [0, 0];
  const inh = [0, 0];
  let effective = false;
  const clauses = text.trim().split(/\s+/).filter(Boolean);
  if (clauses.length === 0) throw new SquashfsError('INVALID_ARGUMENT', 'capability: empty', 'build.textproto');
  for (const clause of clauses) {
    const m = /^([a-z_0-9,]+)([=+])([eip]*)$/i.exec(clause);
    if (!m) throw new SquashfsError('INVALID_ARGUMENT', `capability ${JSON.stringify(clause)}: want e.g. cap_net_raw+ep`, 'build.textproto');
    const bits = m[1]!
      .toLowerCase()
      .split(',')
      .map((n) => {
        const i = CAPS.indexOf(n.replace(/^cap_/, ''));
        if (i < 0) throw new SquashfsError('INVALID_ARGUMENT', `capability ${JSON.stringify(n)}: not a Linux capability name`, 'build.textproto');
        return i;
      });
    const flags = m[3]!.toLowerCase();
    for (const b of bits) {
      const word = b >> 5;
      const bit = 2 ** (b & 31);
      if (flags.includes('p')) perm[word] = (perm[word]! | bit) >>> 0;
      if (flags.includes('i')) inh[word] = (inh[word]! | bit) >>> 0;
    }
    if (flags.includes('e')) effective = true;
  }
  const buf = Buffer.alloc(20);
  buf.writeUInt32LE((0x02000000 | (effective ? 1 : 0)) >>> 0, 0);
  buf.writeUInt32LE(perm[0]!, 4);
  buf.writeUInt32LE(inh[0]!, 8);
  buf.writeUInt32LE(perm[1]!, 12);
  buf.writeUInt32LE(inh[1]!, 16);
  return buf;
}

export function setXattr(file: string, name: string, value: Buffer): void {
  const r = spawnSync('setfattr', ['-h', '-n', name, '-v', '0x' + value.toString('hex'), file], { stdio: ['ignore', 'ignore', 'pipe'] });
  if (r.error) throw new SquashfsError('IO', `cannot run setfattr (install the attr package) to set ${name} on ${file}`);
  if (r.status !== 0) throw new SquashfsError('IO', `setfattr ${name} on ${file}: ${r.stderr.toString().trim()}`);
}

function removeIfEmpty(dir: string): void {
  try {
    fs.rmdirSync(dir);
  } catch {
    // not empty or not there
  }
}

export interface InstallInput {
  /** Host path of the package root (has out/). */
  pkgRoot: string;
  install: Install;
  /** Resolves a `${DISTRI_…}` path of the sandbox (systemd_unit) or a source-relative path to the host. */
  hostPath(insidePath: string): string;
  /** Host path of the source dir (install.file srcpath is relative to it). */
  sourceDir: string;
  substitute(s: string): string;
  log(line: string): void;
}

/** Steps 1–3 of the module comment. */
export function applyInstall(i: InstallInput): void {
  const out = path.join(i.pkgRoot, 'out');
  removeIfEmpty(path.join(out, 'lib'));
  removeIfEmpty(path.join(out, 'share'));
  const d = i.install;
  for (const p of d.delete) {
    i.log(`deleting ${p}`);
    fs.rmSync(inside(out, p, 'delete'), { recursive: true });
  }
  for (const unit of d.systemdUnit) {
    const src = i.hostPath(i.substitute(unit));
    if (!fs.existsSync(src)) throw new SquashfsError('NOT_FOUND', `systemd_unit ${JSON.stringify(unit)}: no such file`, 'build.textproto');
    const dest = path.join(out, 'lib/systemd/system');
    i.log(`installing systemd unit ${unit}`);
    fs.mkdirSync(dest, { recursive: true });
    fs.copyFileSync(src, path.join(dest, path.basename(src)));
  }
  for (const f of d.file) {
    const src = inside(i.sourceDir, f.srcpath, 'file.srcpath');
    const dest = inside(out, f.destpath, 'file.destpath');
    i.log(`installing file ${f.srcpath} as ${f.destpath}`);
    fs.mkdirSync(path.dirname(dest), { recursive: true });
    fs.copyFileSync(src, dest);
  }
  for (const l of d.symlink) {
    const at = inside(out, l.newname, 'symlink.newname');
    i.log(`symlinking ${l.newname} → ${l.oldname}`);
    fs.mkdirSync(path.dirname(at), { recursive: true });
    fs.symlinkSync(l.oldname, at);
  }
  for (const c of d.chmod) {
    const p = inside(out, c.name, 'chmod.name');
    const mode = fs.statSync(p).mode & 0o7777;
    const next = c.setuid ? mode | 0o4000 : mode;
    i.log(`setting mode to ${next.toString(8)}: ${c.name}`);
    fs.chmodSync(p, next);
  }
  for (const e of d.emptyDir) {
    i.log(`creating empty dir ${e}`);
    fs.mkdirSync(inside(out, e, 'empty_dir'), { recursive: true });
  }
  for (const r of d.rename) {
    const from = inside(out, r.oldname, 'rename.oldname');
    const to = inside(out, r.newname, 'rename.newname');
    i.log(`renaming ${r.oldname} → ${r.newname}`);
    fs.mkdirSync(path.dirname(to), { recursive: true });
    fs.renameSync(from, to);
  }
  for (const c of d.capability) {
    const p = inside(out, c.filename, 'capability.filename');
    i.log(`setting capability ${c.capability} on ${c.filename}`);
    setXattr(p, 'security.capability', encodeCapability(c.capability));
  }
}
