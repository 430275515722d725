/**
 * A full state disk, for real: the agent's state directory on a 64 KiB tmpfs that is filled up
 * (root, as in CI; elsewhere the file says why it does not run). An exec's result must still
 * reach the hub, the process must live, and the condition must be told once.
 */
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Backoff } from '../src/backoff.ts';
import { HubClient } from '../src/client.ts';
import { ExecRunner } from '../src/exec/runner.ts';
import { Outbox } from '../src/outbox.ts';
import { FakeHub } from './fake-hub.ts';

const TOKEN = 'opa_test_token';

if (process.getuid?.() !== 0) {
  if (process.env.OPSPILOT_REQUIRE_GUEST) t.fail('this test mounts a tmpfs and must run as root here');
  else t.comment('not run: mounting a small tmpfs needs root');
} else {
  t.test('ENOSPC during an exec: the result is kept in memory and delivered, the agent lives, the condition is told once', async (t) => {
    const dir = mkdtempSync(path.join(tmpdir(), 'opspilot-full-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', dir]);
    t.teardown(() => {
      execFileSync('umount', [dir]);
      rmSync(dir, { recursive: true, force: true });
    });
    const hub = new FakeHub(TOKEN);
    await hub.listen();
    t.teardown(() => hub.close());
    const events: string[] = [];
    const outbox = new Outbox({ dir: path.join(dir, 'outbox'), maxEntries: 100, onWriteError: (err) => events.push(`error ${err.code}`), onWriteRecovered: () => events.push('recovered') });
    const logged: string[] = [];
    const runner = new ExecRunner({
      actions: { echo: { argv: [process.execPath, '-e', 'process.stdout.write("done")'], params: {}, timeout_ms: 5000 } },
      stateDir: dir,
      maxConcurrent: 2,
      env: { PATH: process.env.PATH },
      log: (e) => logged.push(e.outcome),
    });
    const client = new HubClient({
      url: hub.url,
      token: TOKEN,
      hello: () => ({ protocol: 1, agent_version: 'test', hostname: 'h', os: 'linux', arch: 'x64', actions: runner.actionNames }),
      heartbeat: () => ({}),
      heartbeatIntervalS: 10,
      outbox,
      exec: (e) => runner.run(e),
      log: { info() {}, warn() {}, error() {} },
      backoff: new Backoff({ baseMs: 20, capMs: 100, resetAfterMs: 60_000 }),
    });
    t.teardown(() => client.stop());
    client.start();
    await client.welcomed();

    // Fill the disk to the last byte.
    const filler = path.join(dir, 'filler');
    try {
      writeFileSync(filler, Buffer.alloc(1024 * 1024));
    } catch (err) {
      t.equal((err as NodeJS.ErrnoException).code, 'ENOSPC');
    }
    hub.acking = false;
    hub.send('exec', { request_id: 'full-1', command: 'echo', params: {}, timeout_ms: 5000 });
    await hub.until((r) => r.some((m) => m.type === 'exec_result'), 10_000);
    t.match(hub.received.find((m) => m.type === 'exec_result')!.payload, { request_id: 'full-1', ok: true, stdout: 'done' }, 'the result reached the hub');
    t.same(events, ['error ENOSPC'], 'told once');
    t.ok(logged.some((o) => o.startsWith('not recorded on disk: ENOSPC')), 'the request ran although its id could not be recorded');
    t.equal(outbox.size, 1, 'kept in memory until acked');

    // The connection drops: the result goes again from memory after the reconnect, and is acked.
    hub.acking = true;
    hub.socket!.terminate();
    await hub.until((r) => r.filter((m) => m.type === 'exec_result').length === 2, 10_000);
    await hub.until(() => outbox.size === 0, 5000);
    t.pass('resent from memory and acked');
    // Space comes back: writes resume, and that is told too.
    unlinkSync(filler);
    client.sendDurable('alert', { type: 'log', source: '/var/log/app.log', message: 'after' });
    t.same(events, ['error ENOSPC', 'recovered']);
  });
}
