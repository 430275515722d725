/**
 * A systemd guest with the agent installed as a user installs it (scripts/install-agent.sh:
 * system user, hardened unit, polkit rule), enrolled with a hub process on 127.0.0.1. Shared by
 * the real-systemd test, its fixture recorder and `pnpm bench systemd`.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { buildAgent } from './build-agent.ts';
import { spawnHub, type HubProcess } from './hub-process.ts';
import { Guest } from './systemd-guest.ts';

const INSTALL = path.resolve(import.meta.dirname, 'install-agent.sh');

export interface GuestAgent {
  guest: Guest;
  hub: HubProcess;
  agentId: string;
  /** Write a unit file (its [Service] section) into the guest. */
  unit(name: string, service: string, unitSection?: string): void;
  /** Write an executable bash script to /usr/local/bin in the guest. */
  script(name: string, body: string): void;
  sh(...argv: string[]): Promise<string>;
  /** The newest incident of a unit (or other source) of this agent, if any. */
  incidentOf(source: string): Promise<any>;
  incident(id: string): Promise<any>;
  waitOnline(ms?: number): Promise<void>;
  close(): Promise<void>;
}

export async function startGuestAgent(opts: { settleS?: number; hubEnv?: Record<string, string> } = {}): Promise<GuestAgent> {
  const dir = mkdtempSync(path.join(tmpdir(), 'opspilot-guest-agent-'));
  const closers: (() => Promise<unknown> | void)[] = [() => rmSync(dir, { recursive: true, force: true })];
  const close = async () => {
    for (const c of closers.reverse()) await c();
  };
  try {
    const bundle = await buildAgent(path.join(dir, 'opspilot-agent.mjs'));
    const hub = await spawnHub({ OPSPILOT_DATA_DIR: path.join(dir, 'hub'), OPSPILOT_HEARTBEAT_INTERVAL_S: '5', ...opts.hubEnv });
    closers.push(() => hub.stop());
    const guest = await Guest.boot();
    closers.push(() => guest.destroy());
    const sh = (...argv: string[]) => guest.must(argv);

    const enrolled = await hub.api('POST', '/v1/agents', { hostname: 'opspilot-guest', labels: { test: 'real-systemd' } });
    if (enrolled.status !== 201) throw new Error(`enrolling the guest failed: ${JSON.stringify(enrolled.body)}`);
    const agentId: string = enrolled.body.id;
    guest.write('/opt/opspilot/opspilot-agent.mjs', readFileSync(bundle, 'utf8'));
    guest.write('/opt/opspilot/install-agent.sh', readFileSync(INSTALL, 'utf8'), 0o755);
    await sh('/bin/bash', '/opt/opspilot/install-agent.sh', '--hub-url', `ws://127.0.0.1:${hub.port}`, '--token', enrolled.body.token, '--bundle', '/opt/opspilot/opspilot-agent.mjs', '--node', '/usr/local/bin/node');
    if (opts.settleS !== undefined) {
      // A shorter settle time than the default keeps tests short; everything else as installed.
      const config = JSON.parse(guest.read('/etc/opspilot/agent.json'));
      guest.write('/etc/opspilot/agent.json', JSON.stringify({ ...config, heartbeat_interval_s: 5, systemd: { settle_s: opts.settleS } }, null, 2), 0o640);
      await sh('/bin/systemctl', 'restart', 'opspilot-agent.service');
    }
    const ga: GuestAgent = {
      guest,
      hub,
      agentId,
      unit: (name, service, unitSection = '') => guest.write(`/etc/systemd/system/${name}`, `[Unit]\nDescription=${name} (OpsPilot test)\n${unitSection}\n[Service]\n${service}\n`),
      script: (name, body) => guest.write(`/usr/local/bin/${name}`, `#!/bin/bash\n${body}\n`, 0o755),
      sh,
      incidentOf: async (source) => ((await hub.api('GET', `/v1/incidents?agent_id=${agentId}&limit=100`)).body.incidents as any[]).find((i) => i.source === source),
      incident: async (id) => (await hub.api('GET', `/v1/incidents/${id}`)).body,
      waitOnline: async (ms = 60_000) => {
        const deadline = Date.now() + ms;
        while ((await hub.api('GET', `/v1/agents/${agentId}`)).body.status !== 'online') {
          if (Date.now() > deadline) throw new Error(`the agent in the guest did not come online in ${ms} ms; guest journal:\n${(await guest.run(['/bin/journalctl', '--no-pager', '-n', '40', '-u', 'opspilot-agent.service'])).stdout}`);
          await new Promise((r) => setTimeout(r, 200));
        }
      },
      close,
    };
    await ga.waitOnline();
    return ga;
  } catch (err) {
    await close();
    throw err;
  }
}
