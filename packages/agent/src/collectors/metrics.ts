import { loadavg } from 'node:os';
import si from 'systeminformation';
import type { MetricSample } from '@opspilot/protocol';

/** Filesystems that say nothing about a host's disks. */
const PSEUDO_FS = /^(tmpfs|devtmpfs|overlay|squashfs|proc|sysfs|cgroup2?|nsfs|autofs|fuse\..*|ramfs|efivarfs)$/;

/**
 * One metrics sample: CPU % since the previous call, memory (used = total - available, so the
 * page cache does not count), swap, load averages, usage of each real filesystem and bytes/s of
 * each network interface since the previous call.
 */
export async function sampleMetrics(now: Date = new Date()): Promise<MetricSample> {
  const [load, mem, fs, net] = await Promise.all([si.currentLoad(), si.mem(), si.fsSize(), si.networkStats('*')]);
  const [l1, l5, l15] = loadavg();
  const finite = (n: number) => (Number.isFinite(n) && n > 0 ? n : 0);
  return {
    ts: Math.floor(now.getTime() / 1000),
    cpu_pct: round(finite(load.currentLoad)),
    mem_used: Math.max(0, mem.total - mem.available),
    mem_total: mem.total,
    swap_used: mem.swapused,
    load1: round(l1!),
    load5: round(l5!),
    load15: round(l15!),
    disks: fs
      .filter((d) => !PSEUDO_FS.test(d.type) && d.size > 0)
      .slice(0, 64)
      .map((d) => ({ mount: d.mount, used: d.used, size: d.size })),
    net: net
      .filter((n) => n.iface !== 'lo')
      .slice(0, 64)
      .map((n) => ({ iface: n.iface, rx_bps: Math.round(finite(n.rx_sec)), tx_bps: Math.round(finite(n.tx_sec)) })),
  };
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}
