/** The machine's processes as /proc shows them, for the benches' CPU accounting (Linux). */
import { readFileSync, readdirSync } from 'node:fs';

export interface ProcessCpu {
  pid: number;
  /** Its command line, NUL-separated ('' for a kernel thread). */
  cmd: string;
  /** CPU seconds used so far, user and kernel, all its threads. */
  cpu: number;
}

/** Every process alive now (one that exits while being read is skipped). */
export function processes(): ProcessCpu[] {
  const out: ProcessCpu[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let cmd: string;
    let used: { user: number; system: number };
    try {
      used = statCpu(`/proc/${entry}/stat`);
      cmd = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
    } catch {
      continue; // gone meanwhile
    }
    out.push({ pid: Number(entry), cmd, cpu: used.user + used.system });
  }
  return out;
}

/**
 * CPU seconds in user space and in the kernel from a `stat` file (/proc/<pid>/stat for a process
 * and all its threads, /proc/<pid>/task/<tid>/stat for one thread). After the command name, which
 * may hold spaces and parentheses, utime and stime are the 12th and 13th fields, in USER_HZ (100 a
 * second on Linux).
 */
export function statCpu(file: string): { user: number; system: number } {
  const stat = readFileSync(file, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { user: Number(f[11]) / 100, system: Number(f[12]) / 100 };
}
