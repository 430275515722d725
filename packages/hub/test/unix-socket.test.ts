/**
 * The hub on PostgreSQL's Unix socket, as the README shows for a hub on the database's machine
 * (`DATABASE_URL=...?host=/var/run/postgresql`): the hub process starts, every connection it holds
 * is on the socket, and an agent's alert is stored and acked through it.
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import pg from 'pg';
import { spawnHub } from '../../../scripts/hub-process.ts';
import { ScriptedAgent, eventually } from './helpers.ts';

const SERVER = process.env.DATABASE_URL;
const SOCKET_DIR = '/var/run/postgresql';

if (!SERVER) {
  t.comment('not run: needs DATABASE_URL (PostgreSQL)');
} else if (!existsSync(`${SOCKET_DIR}/.s.PGSQL.${new URL(SERVER).port || 5432}`)) {
  t.comment(`not run: no PostgreSQL socket in ${SOCKET_DIR}`);
} else {
  t.test('a hub whose DATABASE_URL names the socket directory holds its connections there, and stores and acks an alert', async (t) => {
    t.setTimeout(120_000);
    const name = `opspilot_socket_${randomBytes(5).toString('hex')}`;
    const admin = new pg.Client({ connectionString: SERVER });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${name}`);
    t.teardown(async () => {
      await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.end();
    });
    const server = new URL(SERVER);
    const url = `postgres://${server.username}@localhost:${server.port || 5432}/${name}?host=${SOCKET_DIR}`;
    const hub = await spawnHub({ DATABASE_URL: url });
    t.teardown(() => hub.stop());

    const created = await hub.api('POST', '/v1/agents', { hostname: 'on-the-socket' });
    t.equal(created.status, 201);
    const agent = await ScriptedAgent.connect(hub.url.replace('http', 'ws') + '/v1/stream', created.body.token);
    t.teardown(() => agent.close());
    agent.send('alert', { type: 'systemd', source: 'nginx.service', message: 'nginx.service: Failed', status: 'failed', exit_code: 1 }, { id: 'a1' });
    await agent.acked(['a1']);
    const incidents = await eventually(async () => {
      const r = await hub.api('GET', '/v1/incidents');
      return r.body.incidents.length === 1 ? r.body.incidents : null;
    });
    t.equal(incidents[0].source, 'nginx.service', 'the alert is an incident');

    // The hub's connections, seen from the server: on the socket (no client address), none over TCP.
    const sessions = (
      await admin.query<{ on_socket: boolean }>(
        `SELECT client_addr IS NULL AS on_socket FROM pg_stat_activity WHERE datname = $1 AND backend_type = 'client backend'`,
        [name],
      )
    ).rows;
    t.ok(sessions.length >= 1, `${sessions.length} connection(s) of the hub`);
    t.ok(sessions.every((s) => s.on_socket), 'all on the socket');
  });
}
