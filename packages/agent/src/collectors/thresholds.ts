import type { MetricSample } from '@opspilot/protocol';

export interface Thresholds {
  cpu_pct: number;
  mem_pct: number;
  disk_pct: number;
  /** How long a value must stay over its limit before it is an alert. */
  for_s: number;
}

export type ThresholdEvent =
  | { kind: 'alert'; source: string; message: string; context: Record<string, unknown> }
  | { kind: 'resolve'; source: string; message: string };

interface Watch {
  overSince: number | null;
  alerted: boolean;
}

/**
 * CPU, memory and each disk over their limit for `for_s` seconds → one `host` alert; back under
 * → its resolve. Sources are `cpu`, `memory` and `disk:<mount>`, so each is its own incident.
 */
export class ThresholdWatcher {
  readonly #watches = new Map<string, Watch>();

  constructor(private readonly limits: Thresholds) {}

  update(sample: MetricSample, nowMs: number = sample.ts * 1000): ThresholdEvent[] {
    const readings: { source: string; pct: number; limit: number; what: string }[] = [
      { source: 'cpu', pct: sample.cpu_pct, limit: this.limits.cpu_pct, what: 'CPU' },
      { source: 'memory', pct: sample.mem_total > 0 ? (100 * sample.mem_used) / sample.mem_total : 0, limit: this.limits.mem_pct, what: 'memory' },
      ...sample.disks.map((d) => ({ source: `disk:${d.mount}`, pct: d.size > 0 ? (100 * d.used) / d.size : 0, limit: this.limits.disk_pct, what: `disk ${d.mount}` })),
    ];
    const events: ThresholdEvent[] = [];
    for (const r of readings) {
      const watch = this.#watches.get(r.source) ?? { overSince: null, alerted: false };
      this.#watches.set(r.source, watch);
      const pct = Math.round(r.pct * 10) / 10;
      if (r.pct >= r.limit) {
        watch.overSince ??= nowMs;
        if (!watch.alerted && nowMs - watch.overSince >= this.limits.for_s * 1000) {
          watch.alerted = true;
          events.push({
            kind: 'alert',
            source: r.source,
            message: `${r.what} at ${pct}% for ${Math.round((nowMs - watch.overSince) / 1000)} s (limit ${r.limit}%)`,
            context: { pct, limit_pct: r.limit, for_s: this.limits.for_s },
          });
        }
      } else {
        if (watch.alerted) events.push({ kind: 'resolve', source: r.source, message: `${r.what} back to ${pct}% (limit ${r.limit}%)` });
        watch.overSince = null;
        watch.alerted = false;
      }
    }
    return events;
  }
}
