import t from 'tap';
import { metricsPayload, type MetricSample } from '@opspilot/protocol';
import { sampleMetrics } from '../src/collectors/metrics.ts';
import { ThresholdWatcher } from '../src/collectors/thresholds.ts';

const sample = (ts: number, cpu: number, memPct: number, diskPct: number): MetricSample => ({
  ts,
  cpu_pct: cpu,
  mem_used: memPct,
  mem_total: 100,
  load1: 0,
  load5: 0,
  load15: 0,
  disks: [{ mount: '/', used: diskPct, size: 100 }],
  net: [],
});

t.test('over the limit for for_s seconds is one alert; back under is its resolve', async (t) => {
  const w = new ThresholdWatcher({ cpu_pct: 90, mem_pct: 95, disk_pct: 95, for_s: 300 });
  t.same(w.update(sample(0, 95, 10, 10)), [], 'just crossed');
  t.same(w.update(sample(200, 99, 10, 10)), [], 'not long enough');
  const events = w.update(sample(300, 97, 10, 10));
  t.match(events, [{ kind: 'alert', source: 'cpu', message: 'CPU at 97% for 300 s (limit 90%)', context: { pct: 97, limit_pct: 90, for_s: 300 } }]);
  t.same(w.update(sample(400, 98, 10, 10)), [], 'alerted once, not every sample');
  t.match(w.update(sample(500, 20, 10, 10)), [{ kind: 'resolve', source: 'cpu' }]);
  t.same(w.update(sample(600, 20, 10, 10)), [], 'resolved once');
});

t.test('a dip below the limit restarts the clock', async (t) => {
  const w = new ThresholdWatcher({ cpu_pct: 90, mem_pct: 95, disk_pct: 95, for_s: 300 });
  w.update(sample(0, 95, 10, 10));
  w.update(sample(250, 50, 10, 10));
  t.same(w.update(sample(310, 95, 10, 10)), []);
  t.same(w.update(sample(500, 95, 10, 10)), []);
  t.equal(w.update(sample(610, 95, 10, 10)).length, 1);
});

t.test('memory and each disk are their own sources', async (t) => {
  const w = new ThresholdWatcher({ cpu_pct: 90, mem_pct: 95, disk_pct: 95, for_s: 0 });
  const events = w.update(sample(0, 10, 96, 99));
  t.same(events.map((e) => e.source).sort(), ['disk:/', 'memory']);
});

t.test('a real sample from this machine is a valid metrics payload', async (t) => {
  await sampleMetrics();
  const s = await sampleMetrics();
  t.same(metricsPayload({ samples: [s] }, ''), { samples: [s] }, 'passes the protocol schema unchanged');
  t.ok(s.mem_total > 0 && s.mem_used > 0 && s.mem_used <= s.mem_total);
  t.ok(s.disks.length > 0, 'at least the root filesystem');
});
