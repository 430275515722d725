/**
 * The agent on a real systemd: a Debian bookworm guest booted with systemd-nspawn (systemd as
 * PID 1), the agent installed in it by scripts/install-agent.sh as a user would (hardened unit,
 * polkit rule), talking to a real hub process on 127.0.0.1. Units in the guest fail, crash-loop
 * and recover for real; the test reads what the hub made of it through the REST API.
 *
 * Needs root, systemd-container and debootstrap (.ci/run installs them and makes the cached
 * rootfs first). Elsewhere the file says why it cannot run; with OPSPILOT_REQUIRE_GUEST=1 (CI)
 * that is a failure.
 */
import t from 'tap';
import { startGuestAgent } from '../../../scripts/guest-agent.ts';
import { unavailable } from '../../../scripts/systemd-guest.ts';
import { eventually } from './util.ts';
const SETTLE_S = 5;
t.setTimeout(600_000); // a boot, an install and crash loops in real time: about 90 s

const why = unavailable();
if (why) {
  if (process.env.OPSPILOT_REQUIRE_GUEST) t.fail(`a systemd guest is required here but cannot boot: ${why}`);
  else t.comment(`not run: no systemd guest on this machine (${why})`);
} else {
  await main();
}

async function main(): Promise<void> {
  const ga = await startGuestAgent({ settleS: SETTLE_S });
  t.teardown(() => ga.close());
  const { guest, hub, agentId, sh, unit, script, incidentOf, incident } = ga;
  const systemctl = (...args: string[]) => guest.run(['/bin/systemctl', ...args]);
  const timeline = async (id: string) => ((await hub.api('GET', `/v1/incidents/${id}/timeline`)).body.events as any[]).map((e) => e.kind as string);
  const exec = async (command: string, params: Record<string, unknown>) => (await hub.api('POST', '/v1/admin/exec', { agent_id: agentId, command, params, timeout_ms: 60_000 })).body;
  const reload = () => sh('/bin/systemctl', 'daemon-reload');

  t.test('the agent runs as installed: its own user, the hardened unit, in a container', async (t) => {
    const pid = (await sh('/bin/systemctl', 'show', '--property=MainPID', '--value', 'opspilot-agent.service')).trim();
    const uid = /^Uid:\s+(\d+)/m.exec(await sh('/bin/cat', `/proc/${pid}/status`))?.[1];
    const passwd = (await sh('/usr/bin/getent', 'passwd', 'opspilot')).split(':');
    t.equal(uid, passwd[2], 'the agent process runs as the opspilot user');
    t.match(guest.read('/etc/systemd/system/opspilot-agent.service'), /^ProtectKernelTunables=yes$/m, 'with the hardening as installed');
    t.equal((await sh('/usr/bin/systemd-detect-virt')).trim(), 'systemd-nspawn');
  });

  t.test('a failure is one incident with its exit code and the journal lines of the run that failed', async (t) => {
    script('opspilot-once', 'n=$(( $(cat /var/lib/once-count 2>/dev/null || echo 0) + 1 ))\necho $n > /var/lib/once-count\necho "once: run $n starting"\nif [ $n -ge 2 ]; then echo "once: cannot read /etc/once.conf: No such file or directory" >&2; exit 3; fi\necho "once: run $n done"');
    unit('once.service', 'Type=oneshot\nExecStart=/usr/local/bin/opspilot-once');
    await reload();
    await sh('/bin/systemctl', 'start', 'once.service');
    t.not((await systemctl('start', 'once.service')).exit_code, 0, 'the second run fails');
    const found = await eventually(() => incidentOf('once.service'), 30_000, 'the incident for once.service');
    const full = await incident(found.id);
    t.match(full, { type: 'systemd', source: 'once.service', exit_code: 3, unit_status: 'exit-code', status: /^(new|analyzing|open)$/ });
    t.match(full.logs, /once: run 2 starting/);
    t.match(full.logs, /cannot read \/etc\/once\.conf/);
    t.notMatch(full.logs, /run 1/, 'lines of the earlier, successful run are not in it');
    // The fix: the next run succeeds, and a oneshot that ran successfully has recovered.
    await sh('/bin/rm', '/var/lib/once-count');
    await sh('/bin/systemctl', 'start', 'once.service');
    await eventually(async () => (await incident(found.id)).status === 'resolved', 30_000, 'once.service resolved after a successful run');
  });

  t.test('a crash loop under Restart=on-failure stays one open incident until the unit is healthy', async (t) => {
    script('opspilot-loop', 'if [ -e /etc/loop-fixed ]; then echo "loop: healthy"; exec /bin/sleep infinity; fi\necho "loop: starting"\nsleep 1\necho "loop: lost connection to upstream, exiting" >&2\nexit 1');
    unit('loop.service', 'Type=simple\nExecStart=/usr/local/bin/opspilot-loop\nRestart=on-failure\nRestartSec=2');
    await reload();
    await sh('/bin/systemctl', 'start', 'loop.service');
    const found = await eventually(() => incidentOf('loop.service'), 30_000, 'the incident for loop.service');
    // Several crash-restart cycles: every "Started" in between is systemd's own restart, not a recovery.
    const restarts = await eventually(async () => {
      const n = Number((await sh('/bin/systemctl', 'show', '--property=NRestarts', '--value', 'loop.service')).trim());
      return n >= 5 && n;
    }, 120_000, 'five restarts of loop.service');
    t.ok(restarts >= 5, `systemd restarted it ${restarts} times`);
    let now = await incident(found.id);
    t.not(now.status, 'resolved', 'never resolved while it crash-loops');
    t.notOk((await timeline(found.id)).includes('resolved'), 'no resolve on the timeline');
    t.ok(now.count >= 2, `repeats are counted on the same incident (count ${now.count})`);
    t.equal(((await hub.api('GET', `/v1/incidents?agent_id=${agentId}&limit=100`)).body.incidents as any[]).filter((i) => i.source === 'loop.service').length, 1, 'one incident');

    const fixedAt = Date.now();
    await sh('/usr/bin/touch', '/etc/loop-fixed');
    await eventually(async () => (await incident(found.id)).status === 'resolved', 60_000, 'loop.service resolved once healthy');
    now = await incident(found.id);
    t.ok(Date.parse(now.resolved_at) - fixedAt >= SETTLE_S * 1000, 'resolved only after it stayed active for the settle time');
    t.same((await timeline(found.id)).filter((k) => k === 'resolved' || k === 'reopened'), ['resolved'], 'one resolve, no reopen');
  });

  t.test('service_status, service_logs and restart_service run in the guest as the agent user', async (t) => {
    const status = await exec('service_status', { service: 'loop.service' });
    t.match(status, { status: 'succeeded', exit_code: 0, stdout: /Active: active \(running\)/ });
    const logs = await exec('service_logs', { service: 'loop.service', lines: 20 });
    t.match(logs, { status: 'succeeded', exit_code: 0, stdout: /loop: healthy/ });
    const before = (await sh('/bin/systemctl', 'show', '--property=InvocationID', '--value', 'loop.service')).trim();
    const restart = await exec('restart_service', { service: 'loop.service' });
    t.match(restart, { status: 'succeeded', exit_code: 0 }, 'allowed by the polkit rule');
    t.not((await sh('/bin/systemctl', 'show', '--property=InvocationID', '--value', 'loop.service')).trim(), before, 'the unit really restarted');

    await sh('/bin/systemctl', 'stop', 'loop.service');
    const stopped = await exec('service_status', { service: 'loop.service' });
    t.match(stopped, { status: 'succeeded', ok: true, exit_code: 3, stdout: /Active: inactive/ }, 'a stopped unit is an answer, not a failed exec');
    const missing = await exec('service_status', { service: 'no-such-unit.service' });
    t.match(missing, { status: 'failed', exit_code: 4 }, 'a unit that does not exist is a failure');
  });

  t.test('a failure while the agent was stopped is reported after it starts; one that recovered meanwhile is opened and resolved', async (t) => {
    script('opspilot-downfail', 'echo "downfail: starting"\necho "downfail: fatal: schema version 12 is newer than this binary" >&2\nexit 4');
    unit('downfail.service', 'Type=oneshot\nExecStart=/usr/local/bin/opspilot-downfail');
    script('opspilot-flaky', 'if [ -e /var/lib/flaky-ok ]; then echo "flaky: ok"; exit 0; fi\necho "flaky: upstream not ready" >&2\nexit 2');
    unit('flaky.service', 'Type=oneshot\nExecStart=/usr/local/bin/opspilot-flaky');
    await reload();
    await sh('/bin/systemctl', 'stop', 'opspilot-agent.service');
    await systemctl('start', 'downfail.service');
    await systemctl('start', 'flaky.service');
    await sh('/usr/bin/touch', '/var/lib/flaky-ok');
    await sh('/bin/systemctl', 'start', 'flaky.service');
    t.notOk(await incidentOf('downfail.service'), 'nothing was reported while the agent was down');
    await sh('/bin/systemctl', 'start', 'opspilot-agent.service');

    const down = await eventually(() => incidentOf('downfail.service'), 30_000, 'the incident for downfail.service');
    t.match(await incident(down.id), { exit_code: 4, logs: /schema version 12/ });
    const flaky = await eventually(() => incidentOf('flaky.service'), 30_000, 'the incident for flaky.service');
    await eventually(async () => (await incident(flaky.id)).status === 'resolved', 30_000, 'flaky.service resolved: it ran fine later');
    t.match(await incident(flaky.id), { exit_code: 2, logs: /upstream not ready/ });

    // Restarting the agent again reports nothing twice: a failure after the restart comes next.
    // (The agent reads the journal in order and sends in order, so a failure reported twice
    // would arrive before it.)
    script('opspilot-marker', 'echo "marker: failed after the agent restarted" >&2\nexit 6');
    unit('marker.service', 'Type=oneshot\nExecStart=/usr/local/bin/opspilot-marker');
    await reload();
    await sh('/bin/systemctl', 'restart', 'opspilot-agent.service');
    await ga.waitOnline(30_000);
    await systemctl('start', 'marker.service');
    await eventually(() => incidentOf('marker.service'), 30_000, 'the incident for marker.service');
    t.equal((await incident(down.id)).count, 1, 'a failure already reported is not reported again');
  });

  t.test('a journal vacuumed past the saved position while the agent was down: the gap is reported, and what can still be read', async (t) => {
    script('opspilot-late', 'echo "late: disk check failed: /srv is read-only" >&2\nexit 5');
    unit('late.service', 'Type=oneshot\nExecStart=/usr/local/bin/opspilot-late');
    await reload();
    await sh('/bin/systemctl', 'stop', 'opspilot-agent.service');
    // Everything the agent had read goes: rotated into an archive, and the archive deleted.
    await sh('/bin/journalctl', '--rotate');
    await sh('/bin/journalctl', '--vacuum-size=1');
    await systemctl('start', 'late.service');
    await sh('/bin/systemctl', 'start', 'opspilot-agent.service');
    const gap = await eventually(() => incidentOf('journal'), 30_000, 'the journal gap incident');
    t.match(await incident(gap.id), { type: 'journal', message: /were rotated or vacuumed before the agent read them/ });
    const late = await eventually(() => incidentOf('late.service'), 30_000, 'the failure after the gap');
    t.match(await incident(late.id), { exit_code: 5, logs: /\/srv is read-only/ });
  });

  t.test('classification of real failures respects the source', async (t) => {
    unit('missing-binary.service', 'Type=simple\nExecStart=/bin/sh -c "echo worker: starting, pid 503; exec /opt/app/bin/worker"');
    await reload();
    await systemctl('start', 'missing-binary.service');
    const found = await eventually(() => incidentOf('missing-binary.service'), 30_000, 'the incident for missing-binary.service');
    const full = await eventually(async () => {
      const i = await incident(found.id);
      return i.rule && i;
    }, 30_000, 'its classification');
    t.match(full, { exit_code: 127, logs: /\/opt\/app\/bin\/worker: not found/ });
    t.not(full.rule, 'http_404');
    t.not(full.rule, 'http_502_503');
    t.ok(['critical', 'high'].includes(full.severity), `a unit failure is not downgraded by a log word (${full.rule}, ${full.severity})`);
  });

  t.test('a fix that does not hold escalates', async (t) => {
    script('opspilot-crashy', 'echo "crashy: starting"\nsleep 1\necho "crashy: segmentation fault in worker thread" >&2\nexit 139');
    unit('crashy.service', 'Type=simple\nExecStart=/usr/local/bin/opspilot-crashy');
    await reload();
    const rule = await hub.api('POST', '/v1/rules', {
      name: 'restart-crashy',
      match: { type: 'systemd', source: 'crashy.service' },
      action: { command: 'restart_service', params: { service: '{{source}}' } },
      mode: 'auto',
      cooldown_s: 0,
      max_per_hour: 5,
      verify_s: 15,
    });
    t.equal(rule.status, 201, 'the rule is saved');
    await systemctl('start', 'crashy.service');
    const found = await eventually(() => incidentOf('crashy.service'), 30_000, 'the incident for crashy.service');
    const escalated = await eventually(async () => {
      const i = await incident(found.id);
      return i.escalated && i;
    }, 90_000, 'the escalation');
    t.equal(escalated.escalated, true);
    const kinds = await timeline(found.id);
    t.ok(kinds.includes('rule_fired'), 'the rule ran its restart');
    t.ok(kinds.includes('verification_failed'), 'the fix was not taken as verified');
    t.notOk(kinds.includes('verified'));
  });
}
