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
    let stat: string;
    let cmd: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      cmd = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
    } catch {
      continue; // gone meanwhile
    }
    // After the command name (which may hold spaces and parentheses): utime and stime are the
    // 12th and 13th fields, in USER_HZ (100 a second on Linux).
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    out.push({ pid: Number(entry), cmd, cpu: (Number(f[11]) + Number(f[12])) / 100 });
  }
  return out;
}
