/**
 * `pnpm bench systemd`: how long a unit failure on a real systemd takes to become a committed
 * incident. The guest of the real-systemd test (Debian bookworm under systemd-nspawn, the agent
 * installed by install-agent.sh) runs N oneshot units that fail one at a time; for each, from
 * systemd's "Failed with result" journal entry (its own timestamp) to the incident row being
 * visible in PostgreSQL (polled every 5 ms on a connection of its own).
 *
 * Baseline, in the same run and against the same hub: the same alert sent by a scripted agent
 * straight over the WebSocket, from the send to the row. The difference is the agent's part:
 * following the journal, waiting for journald to catch up with the unit's own output (300 ms by
 * design), reading the failed run's lines and sending.
 */
import pg from 'pg';
import WebSocket from 'ws';
import { HUB_MESSAGE_TYPES, decodeFrame, encodeEnvelope } from '@opspilot/protocol';
import { startGuestAgent } from '../guest-agent.ts';
import { SYSTEMD_MESSAGES } from '../../packages/agent/src/collectors/journal.ts';

function stats(samples: number[]) {
  const s = [...samples].sort((a, b) => a - b);
  const at = (p: number) => s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
  return { n: s.length, median_ms: Math.round(at(50)), p95_ms: Math.round(at(95)), min_ms: Math.round(s[0]!), max_ms: Math.round(s.at(-1)!) };
}

async function until<T>(fn: () => Promise<T | undefined>, ms: number, what: string): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

export async function systemdBench(opts: { databaseUrl: string; failures: number }) {
  const ga = await startGuestAgent({ hubEnv: { DATABASE_URL: opts.databaseUrl } });
  const db = new pg.Client({ connectionString: opts.databaseUrl });
  await db.connect();
  const committedAt = (agentId: string, source: string) =>
    until(async () => ((await db.query('SELECT 1 FROM incidents WHERE agent_id = $1 AND source = $2', [agentId, source])).rowCount ? Date.now() : undefined), 30_000, `the incident of ${source}`);
  try {
    for (let i = 0; i < opts.failures; i++) ga.unit(`bench-${i}.service`, 'Type=oneshot\nExecStart=/bin/sh -c "echo bench: cannot open /etc/bench.conf >&2; exit 3"');
    await ga.sh('/bin/systemctl', 'daemon-reload');

    const viaSystemd: number[] = [];
    for (let i = 0; i < opts.failures; i++) {
      const unit = `bench-${i}.service`;
      await ga.guest.run(['/bin/systemctl', 'start', '--no-block', unit]);
      const seen = await committedAt(ga.agentId, unit);
      const entry = (await ga.sh('/bin/journalctl', '--no-pager', '--output=json', `UNIT=${unit}`, `MESSAGE_ID=${SYSTEMD_MESSAGES.unitFailed}`)).split('\n').find(Boolean);
      const failedAt = Number(JSON.parse(entry!).__REALTIME_TIMESTAMP) / 1000;
      viaSystemd.push(seen - failedAt);
      await new Promise((r) => setTimeout(r, 200));
    }

    // Baseline: the same alert, sent by a scripted agent over the protocol.
    const enrolled = await ga.hub.api('POST', '/v1/agents', { hostname: 'bench-scripted' });
    const ws = new WebSocket(`ws://127.0.0.1:${ga.hub.port}/v1/stream`, { headers: { authorization: `Bearer ${enrolled.body.token}` }, perMessageDeflate: false });
    await new Promise<void>((resolve, reject) => {
      setTimeout(() => reject(new Error('no welcome from the hub in 10 s')), 10_000).unref();
      ws.on('message', (data) => {
        if (decodeFrame(data.toString(), HUB_MESSAGE_TYPES).message.type === 'welcome') resolve();
      });
      ws.on('error', reject);
    });
    const incident = await ga.incidentOf('bench-0.service');
    const full = await ga.incident(incident.id);
    const direct: number[] = [];
    for (let i = 0; i < opts.failures; i++) {
      const source = `direct-${i}.service`;
      const sent = Date.now();
      ws.send(encodeEnvelope('alert', { type: 'systemd', source, message: `${source}: Failed with result 'exit-code'.`, status: 'exit-code', exit_code: 3, logs: full.logs }, { id: `bench-${i}`, compression: 'gzip' }));
      direct.push((await committedAt(enrolled.body.id, source)) - sent);
      await new Promise((r) => setTimeout(r, 200));
    }
    ws.close();
    return { failures: opts.failures, systemd: stats(viaSystemd), direct: stats(direct) };
  } finally {
    await db.end();
    await ga.close();
  }
}
