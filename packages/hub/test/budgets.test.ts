// Per-agent budgets for bulk messages, and retention of metric samples: one agent cannot fill
// the database or crowd out the others, and nothing that matters is dropped.
import t from 'tap';
import { sql } from 'kysely';
import { ScriptedAgent, eachBackend, eventually, startHub } from './helpers.ts';

eachBackend(t, 'bulk budgets: an agent flooding metrics or heartbeats is read more slowly, the others are not, and no sample is lost', async (t, backend) => {
  t.setTimeout(90_000);
  const hub = await startHub(t, await backend.open(t), { metricSamplesPerMinute: 6000, bulkPerMinute: 600 });
  const noisy = await hub.enroll({ hostname: 'noisy' });
  const quiet = await hub.enroll({ hostname: 'quiet' });
  const loud = await ScriptedAgent.connect(hub.wsUrl, noisy.token);
  const calm = await ScriptedAgent.connect(hub.wsUrl, quiet.token);
  await loud.next('welcome');
  await calm.next('welcome');
  const acked = new Set<string>();
  loud.ws.on('message', () => {
    for (const m of loud.received) if (m.type === 'ack') for (const id of m.payload.ids) acked.add(id);
  });
  const now = Math.floor(Date.now() / 1000);
  const sample = (ts: number) => ({ ts, cpu_pct: 1, mem_used: 1, mem_total: 2, load1: 0, load5: 0, load15: 0, disks: [], net: [] });
  // 7,000 samples against a budget of 6,000 a minute: about 10 s over.
  const metricIds = Array.from({ length: 70 }, (_, i) => `m${i}`);
  for (const [i, id] of metricIds.entries()) loud.send('metrics', { samples: Array.from({ length: 100 }, (_, j) => sample(now - 7200 + i * 100 + j)) }, { id });
  await eventually(async () => acked.size >= 55, 10_000, 'the burst');
  calm.send('heartbeat', { uptime_s: 1 }, { id: 'q-hb' });
  calm.send('metrics', { samples: [sample(now)] }, { id: 'q-m' });
  await calm.acked(['q-hb', 'q-m']);
  t.ok(acked.size < metricIds.length, `the quiet agent went through while the noisy one waited (${acked.size}/${metricIds.length} acked)`);
  await eventually(async () => metricIds.every((id) => acked.has(id)), 30_000, 'every noisy metrics message, in the end');
  const stored = await hub.api('GET', `/v1/agents/${noisy.id}/metrics?since=${now - 7200}&limit=10000`);
  t.equal(stored.body.samples.length, 7000, 'no sample lost');

  // Heartbeats: 650 against 600 a minute (the 70 metrics messages above spent some already).
  const hbIds = Array.from({ length: 650 }, (_, i) => `hb${i}`);
  const hbAcked = () => hbIds.filter((id) => acked.has(id)).length;
  for (const id of hbIds) loud.send('heartbeat', { uptime_s: 2 }, { id, compression: 'none' });
  await eventually(async () => hbAcked() >= 500, 10_000, 'the heartbeat burst');
  calm.send('heartbeat', { uptime_s: 3 }, { id: 'q-hb2' });
  await calm.acked(['q-hb2']);
  t.ok(hbAcked() < hbIds.length, `the quiet agent's heartbeat went through while the noisy one waited (${hbAcked()}/${hbIds.length})`);
  await eventually(async () => hbAcked() === hbIds.length, 30_000, 'every noisy heartbeat, in the end');
  t.equal((await hub.api('GET', `/v1/agents/${quiet.id}`)).body.status, 'online');
  loud.close();
  calm.close();
});

eachBackend(t, 'retention: old samples become 5-minute averages, expired ones go, in bounded steps; envelope ids too', async (t, backend) => {
  t.setTimeout(90_000);
  const db = await backend.open(t);
  const hub = await startHub(t, db, { metricsRawHours: 48, metricsRetentionDays: 30 });
  const a = await hub.enroll();
  const b = await hub.enroll();
  const now = new Date();
  const bucket = (hoursAgo: number) => Math.floor((now.getTime() / 1000 - hoursAgo * 3600) / 300) * 300;
  const old = bucket(72);
  const insert = (agent: string, ts: number, cpu: number, mem: number, disks: unknown[] = []) =>
    sql`INSERT INTO metric_samples (agent_id, ts, cpu_pct, mem_used, mem_total, swap_used, load1, load5, load15, disks, net)
        VALUES (${agent}, to_timestamp(${ts}), ${cpu}, ${mem}, 1000, NULL, ${cpu / 10}, 0, 0, ${JSON.stringify(disks)}::jsonb, '[]'::jsonb)`.execute(db.db);
  // Agent a: 4 samples in one old bucket (the last one's disks are kept), 2 in the next.
  await insert(a.id, old + 0, 10, 100);
  await insert(a.id, old + 60, 20, 200);
  await insert(a.id, old + 120, 30, 300);
  await insert(a.id, old + 299, 40, 401, [{ mount: '/', used: 7, size: 9 }]);
  await insert(a.id, old + 300, 50, 500);
  await insert(a.id, old + 310, 70, 700);
  // Agent b: one in the same old bucket; expired ones; a recent one.
  await insert(b.id, old + 10, 90, 900);
  await insert(b.id, bucket(31 * 24), 1, 1);
  await insert(b.id, bucket(40 * 24), 1, 1);
  await insert(b.id, bucket(1), 5, 5);
  // 12,000 more old samples of a, 10 s apart over 33 hours: more than two statements' worth.
  await sql`INSERT INTO metric_samples (agent_id, ts, cpu_pct, mem_used, mem_total, load1, load5, load15)
            SELECT ${a.id}, to_timestamp(${bucket(200)} + i * 10), 50, 50, 100, 0, 0, 0 FROM generate_series(0, 11999) AS i`.execute(db.db);

  const report = await hub.app.hub.retention.run(now);
  t.match(report, { expiredSamples: 2, downsampledSamples: 7 + 12_000 });
  const view = async (id: string, since: number) =>
    (await hub.api('GET', `/v1/agents/${id}/metrics?since=${since}&limit=10000`)).body.samples as { ts: number; cpu_pct: number; mem_used: number; load1: number; disks: unknown[]; period_s: number }[];
  const aOld = (await view(a.id, old - 1)).filter((s) => s.ts < old + 600);
  t.same(
    aOld.map((s) => ({ ts: s.ts, cpu: s.cpu_pct, mem: s.mem_used, load1: s.load1, disks: s.disks, period_s: s.period_s })),
    [
      { ts: old, cpu: 25, mem: 250, load1: 2.5, disks: [{ mount: '/', used: 7, size: 9 }], period_s: 300 },
      { ts: old + 300, cpu: 60, mem: 600, load1: 6, disks: [], period_s: 300 },
    ],
    "averages per agent and bucket, the last sample's disks",
  );
  const bAll = await view(b.id, bucket(45 * 24));
  t.same(bAll.map((s) => [s.ts, s.cpu_pct, s.period_s]), [[old, 90, 300], [bucket(1), 5, 0]], 'expired gone, recent kept as sent');
  const long = (await view(a.id, bucket(200) - 1)).filter((s) => s.ts < bucket(150));
  t.equal(long.length, (12_000 * 10) / 300, 'every bucket of the long run downsampled');
  t.ok(long.every((s) => s.period_s === 300 && s.cpu_pct === 50));

  const again = await hub.app.hub.retention.run(now);
  t.same(again, { envelopeIds: 0, deliveries: 0, expiredSamples: 0, downsampledSamples: 0, expiredResults: 0, downsampledResults: 0, expiredSessions: 0 }, 'a second run has nothing to do');
});
