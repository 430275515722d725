/**
 * The `opspilot` CLI as a process against a real hub process (embedded database) and a scripted
 * agent over a real WebSocket: login (saved mode 600), agents, incidents, an incident with its
 * timeline, ack and resolve seen by `tail`, exec typed from the catalogue, silences, rules; exit
 * codes and the hub's error codes; hostile text from the hub never reaching the terminal raw.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { HUB_MESSAGE_TYPES, decodeFrame, encodeEnvelope } from '@opspilot/protocol';
import { spawnHub } from '../../../scripts/hub-process.ts';

const MAIN = path.resolve(import.meta.dirname, '../src/main.ts');
const dir = mkdtempSync(path.join(tmpdir(), 'opspilot-cli-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const env = { PATH: process.env.PATH ?? '', HOME: dir, XDG_CONFIG_HOME: path.join(dir, 'config') };

/** Run the CLI (asynchronously: the scripted agent in this process answers its execs meanwhile). */
function cli(args: string[], input?: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], { env });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  child.stdin.end(input);
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  return new Promise((resolve) => child.once('close', (code) => (clearTimeout(timer), resolve({ code, stdout, stderr }))));
}

t.test('the CLI against a real hub', async (t) => {
  const hub = await spawnHub({ OPSPILOT_DATA_DIR: path.join(dir, 'hub') });
  t.teardown(() => hub.stop());
  const admin = hub.adminToken;

  t.match((await cli(['agents'])), { code: 3, stderr: /CLI_NOT_LOGGED_IN: not logged in: run `opspilot login/ }, 'not logged in: exit 3');
  t.match((await cli(['login', hub.url, '--token', 'opk_wrong'])), { code: 3, stderr: /HUB_UNAUTHORIZED/ }, 'a bad token is refused, not saved');
  t.match((await cli(['login', 'ftp://x'])), { code: 2, stderr: /http:\/\/ or https:\/\// });
  const login = (await cli(['login', hub.url], `${admin}\n`));
  t.match(login, { code: 0, stdout: /logged in to http:\/\/127\.0\.0\.1:\d+ \(saved in .*cli\.json\)/ }, 'the token read from standard input');
  t.equal(statSync(path.join(dir, 'config', 'opspilot', 'cli.json')).mode & 0o777, 0o600, 'saved mode 600');

  // A scripted agent: hello with its catalogue, an alert with an escape sequence in it, answers execs.
  const { id: agentId, token } = (await hub.api('POST', '/v1/agents', { hostname: 'web-1', labels: { role: 'api' } })).body;
  const ws = new WebSocket(`ws://127.0.0.1:${hub.port}/v1/stream`, { headers: { authorization: `Bearer ${token}` } });
  t.teardown(() => ws.close());
  await new Promise((r) => ws.once('open', r));
  ws.on('message', (raw) => {
    const { message } = decodeFrame(raw.toString(), HUB_MESSAGE_TYPES);
    if (message.type !== 'exec') return;
    const failing = message.payload.params.service === 'broken.service';
    const result = { request_id: message.payload.request_id, ok: !failing, exit_code: failing ? 3 : 0, stdout: failing ? '' : `● ${message.payload.params.service} - active (running)\n`, stderr: failing ? 'Unit broken.service could not be found.\n' : '', duration_ms: 5, truncated: false };
    ws.send(encodeEnvelope('exec_result', result, { id: `r-${message.payload.request_id}` }));
  });
  ws.send(encodeEnvelope('hello', { protocol: 2, agent_version: 'test', hostname: 'web-1', os: 'linux', arch: 'x64', actions: ['service_status', 'service_logs', 'restart_service'] }));
  ws.send(encodeEnvelope('alert', { type: 'systemd', source: 'nginx.service', message: 'nginx failed \u001b[31m\u001b]0;pwned\u0007' }, { id: 'a-1' }));
  ws.send(encodeEnvelope('alert', { type: 'systemd', source: 'backup.service', message: 'backup.service failed' }, { id: 'a-2' }));

  const incidentId = await (async () => {
    for (let i = 0; i < 100; i++) {
      const r = (await cli(['--json', 'incidents']));
      const found = r.code === 0 && (JSON.parse(r.stdout) as any[]).find((x) => x.source === 'nginx.service');
      if (found) return found.id as string;
      await new Promise((res) => setTimeout(res, 100));
    }
    throw new Error('no incident');
  })();

  const agents = (await cli(['agents']));
  t.equal(agents.code, 0);
  t.match(agents.stdout, /^ID\s+HOSTNAME\s+STATUS\s+LAST SEEN\s+LABELS\n/);
  t.match(agents.stdout, new RegExp(`${agentId}\\s+web-1\\s+online\\s+\\d+s ago\\s+role=api`));
  t.match(JSON.parse((await cli(['--json', 'agent', agentId])).stdout), { id: agentId, actions: ['service_status', 'service_logs', 'restart_service'] });
  t.match((await cli(['agent', agentId])).stdout, /actions\s+service_status, service_logs, restart_service/);

  const list = (await cli(['incidents']));
  t.match(list.stdout, new RegExp(`${incidentId}\\s+\\S+\\s+\\S+\\s+1\\s`));
  t.notOk(/[\u001b\u0007]/.test(list.stdout), 'no escape sequence from an alert reaches the terminal');
  t.match((await cli(['incidents', '--status', 'nope'])), { code: 2, stderr: /Allowed choices are new, analyzing, open, acknowledged, ignored, resolved/ });
  t.match((await cli(['incidents', '--status', 'new'])), { code: 0 }, 'each choice is a status the hub knows');
  t.match((await cli(['incidents', '--text', 'NGINX FAILED'])), { code: 0, stdout: new RegExp(incidentId) }, '--text: any case, message or source');
  t.notMatch((await cli(['incidents', '--text', 'no-such-text'])).stdout, new RegExp(incidentId));
  t.notMatch((await cli(['incidents', '--label', 'team=nobody'])).stdout, new RegExp(incidentId), '--label filters');
  t.match((await cli(['incidents', '--label', 'team'])), { code: 2, stderr: /--label is name=value/ });
  t.match((await cli(['incidents', '--service', 'nginx.service', '--severity', 'low'])), { code: 0 });
  const one = (await cli(['incident', incidentId]));
  t.match(one.stdout, /systemd nginx\.service: nginx failed \\x1b\[31m\\x1b\]0;pwned\\x07/, 'shown, not obeyed');
  t.match(one.stdout, /timeline:\n\s+\S+\s+opened\s+agent/);
  t.match((await cli(['incident', '01NOSUCHINCIDENT0000000000'])), { code: 4, stderr: /HUB_INCIDENT_NOT_FOUND/ });
  t.match((await cli(['incident', '../../v1/tokens'])), { code: 2, stderr: /is not an id/ });

  // tail sees the acknowledgement and the resolution as they happen.
  const tailer = spawn(process.execPath, ['--import', 'tsx', MAIN, '--json', 'tail', '--types', 'acknowledged,resolved', '--incident', incidentId, '--max', '2'], { env });
  let tailed = '';
  tailer.stdout.on('data', (c: Buffer) => (tailed += c.toString()));
  const tailExit = new Promise<number | null>((r) => tailer.once('exit', r));
  await new Promise((r) => setTimeout(r, 1500)); // connected (a tail started after the changes would resume nothing)
  t.match((await cli(['ack', incidentId])), { code: 0, stdout: new RegExp(`${incidentId} acknowledged`) });
  t.match((await cli(['resolve', incidentId])), { code: 0, stdout: /resolved/ });
  t.equal(await tailExit, 0, 'tail --max 2 ends after two events');
  t.match((await cli(['ignore', incidentId])), { code: 1, stderr: /HUB_INCIDENT_RESOLVED/ }, 'a resolved incident cannot be ignored: exit 1, the hub\'s code');
  t.match((await cli(['ignore', incidentId, '--for', '31d'])), { code: 2, stderr: /at most 30d/ });
  const backup = (JSON.parse((await cli(['--json', 'incidents', '--text', 'backup.service'])).stdout) as { id: string }[])[0]!.id;
  t.match((await cli(['ignore', backup, '--for', '4h'])), { code: 0, stdout: new RegExp(`${backup} ignored for 4h \\(ignored\\)`) });
  t.match(JSON.parse((await cli(['--json', 'incident', backup])).stdout).timeline.at(-1), { kind: 'ignored', by: 'token:admin', detail: { for: '4 h' } });
  const events = tailed.trim().split('\n').map((l) => JSON.parse(l));
  t.same(events.map((e) => e.type), ['acknowledged', 'resolved']);
  t.match(events[0], { incident_id: incidentId, by: 'token:admin', group: 'incident' });

  const ok = (await cli(['exec', agentId, 'service_status', 'service=nginx.service']));
  t.match(ok, { code: 0, stdout: /● nginx\.service - active \(running\)/, stderr: /service_status on .*: succeeded, exit 0/ });
  t.match((await cli(['exec', agentId, 'service_status', 'service=broken.service'])), { code: 6, stderr: /could not be found[\s\S]*failed, exit 3/ }, 'failed on the host: exit 6');
  t.match((await cli(['exec', agentId, 'service_logs', 'service=nginx.service', 'lines=many'])), { code: 2, stderr: /lines is an integer \(1 to 1000\)/ }, 'typed from the catalogue');
  t.match((await cli(['exec', agentId, 'service_logs', 'unit=nginx'])), { code: 2, stderr: /service_logs has no parameter "unit"/ });
  t.match((await cli(['exec', agentId, 'disk_usage'])), { code: 2, stderr: /has no action "disk_usage"; it has: service_status, service_logs, restart_service/ });
  t.match((await cli(['exec', agentId, 'restart_service', 'service=nginx; reboot'])), { code: 2, stderr: /restart_service: parameter "service" must match/ }, "the catalogue's rules, before anything is sent");
  t.match((await cli(['exec', agentId, 'restart_service'])), { code: 2, stderr: /parameter "service" is required/ });
  t.match((await cli(['exec', '01NOSUCHAGENT0000000000000', 'service_status', 'service=x'])), { code: 4, stderr: /HUB_AGENT_NOT_FOUND/ }, "the hub's refusal, with its code");
  t.match((await cli(['--json', 'exec', agentId, 'service_status', 'service=nginx.service'])), { code: 0 });

  const silence = (await cli(['silence', '--agent', agentId, '--source', 'nginx.*', '--for', '2h', '--reason', 'maintenance window']));
  t.match(silence, { code: 0, stdout: /^silence \S+ until \d{4}-/ });
  t.match(JSON.parse((await cli(['--json', 'silences'])).stdout), [{ match: { agent_id: agentId, source: 'nginx.*' }, reason: 'maintenance window' }]);
  t.match((await cli(['silence', '--for', '2h', '--reason', 'x'])), { code: 2, stderr: /say what to silence/ });
  t.match((await cli(['silence', '--agent', agentId, '--for', 'forever', '--reason', 'x'])), { code: 2, stderr: /not a duration/ });
  t.match((await cli(['rules'])), { code: 0, stdout: /^ID\s+NAME\s+MODE\s+ENABLED\s+ACTION\s+MATCH/ });

  // Read-only tokens read, and are refused what they may not do (exit 3, the hub's code).
  const reader = (await hub.api('POST', '/v1/tokens', { name: 'viewer', scopes: ['read'] })).body.token as string;
  t.match((await cli(['--token', reader, 'agents'])), { code: 0 });
  t.match((await cli(['--token', reader, 'ack', incidentId])), { code: 3, stderr: /HUB_FORBIDDEN/ });
  t.match((await cli(['--hub', 'http://127.0.0.1:1', 'agents'])), { code: 5, stderr: /CLI_UNREACHABLE: cannot reach the hub at http:\/\/127\.0\.0\.1:1/ }, 'unreachable: exit 5');
  t.match((await cli(['nonsense'])), { code: 2, stderr: /unknown command 'nonsense'/ });

  const everything = [login, agents, list, one, ok, silence].map((r) => r.stdout + r.stderr).join('') + tailed;
  t.notOk(everything.includes(admin) || everything.includes(token), 'no token is ever printed');
});
