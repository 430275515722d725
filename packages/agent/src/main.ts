import { arch, hostname, platform, release, uptime } from 'node:os';
import path from 'node:path';
import { PROTOCOL_VERSION } from '@opspilot/protocol';
import { HubClient, type Logger } from './client.ts';
import { LogTail } from './collectors/log-tail.ts';
import { sampleMetrics } from './collectors/metrics.ts';
import { SystemdWatcher } from './collectors/systemd.ts';
import { ThresholdWatcher } from './collectors/thresholds.ts';
import { AgentConfigError, loadAgentConfig } from './config.ts';
import { BUILTIN_ACTIONS } from './exec/catalogue.ts';
import { ExecRunner } from './exec/runner.ts';
import { Outbox } from './outbox.ts';
import { MonitorScheduler } from './monitors.ts';
import { systemClock } from './clock.ts';

export const AGENT_VERSION = '0.1.0';

/** JSON lines on standard output; the token is never a field. */
function jsonLogger(): Logger {
  const line = (level: string) => (msg: string, fields: Record<string, unknown> = {}) =>
    process.stdout.write(JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields }) + '\n');
  return { info: line('info'), warn: line('warn'), error: line('error') };
}

async function main(): Promise<void> {
  const log = jsonLogger();
  let config;
  try {
    config = loadAgentConfig(process.argv.slice(2), process.env, process.getuid?.() === 0);
  } catch (err) {
    if (err instanceof AgentConfigError) {
      process.stderr.write(`opspilot-agent: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }

  // Set once the client exists: the state directory's trouble is reported to the hub too.
  let stateTrouble: ((alert: boolean, message: string) => void) | null = null;
  const outbox = new Outbox({
    dir: path.join(config.state_dir, 'outbox'),
    maxEntries: config.outbox_max_entries,
    onDrop: (e) => log.warn('outbox full: dropped an entry', e),
    onWriteError: (err) => {
      const message = `the agent cannot write its state directory ${config.state_dir} (${err.code ?? err.message}): what it sends is kept in memory until it can`;
      log.error(message);
      stateTrouble?.(true, message);
    },
    onWriteRecovered: () => {
      log.info('the state directory is writable again');
      stateTrouble?.(false, `the agent writes its state directory ${config.state_dir} again`);
    },
  });
  const runner = new ExecRunner({
    actions: { ...BUILTIN_ACTIONS, ...config.actions },
    stateDir: config.state_dir,
    maxConcurrent: config.max_concurrent_execs,
    log: (entry) => log.info('exec', entry),
  });
  let last: Awaited<ReturnType<typeof sampleMetrics>> | null = null;
  // Set once the client exists (the scheduler sends through it, the client hands it sets).
  let client: HubClient | null = null;
  const monitors = config.monitors.enabled
    ? new MonitorScheduler({
        clock: systemClock,
        send: (results) => client?.sendDurable('check_results', { results }),
        connected: () => client?.connected ?? false,
        stateDir: config.state_dir,
        maxConcurrent: config.monitors.max_concurrent,
        guard: config.monitors.allow_link_local ? false : 'link-local',
        log,
      })
    : null;
  const bootTime = Math.floor(Date.now() / 1000 - uptime());
  client = new HubClient({
    url: config.hub_url,
    token: config.token,
    ...(config.token_from ? { tokenFrom: config.token_from } : {}),
    hello: () => ({ protocol: PROTOCOL_VERSION, agent_version: AGENT_VERSION, hostname: hostname(), os: platform(), arch: arch(), kernel: release(), boot_time: bootTime, actions: runner.actionNames }),
    heartbeat: () => {
      const beat: Record<string, number> = { uptime_s: Math.floor(uptime()) };
      if (last) {
        beat.cpu_pct = last.cpu_pct;
        beat.mem_pct = last.mem_total > 0 ? Math.round((1000 * last.mem_used) / last.mem_total) / 10 : 0;
        beat.load1 = last.load1;
      }
      return beat;
    },
    heartbeatIntervalS: config.heartbeat_interval_s,
    outbox,
    exec: (e) => runner.run(e),
    monitors: (set) => {
      if (monitors) monitors.set(set);
      else log.info('the hub sent monitors; they are off in this agent (monitors.enabled: false)', { monitors: set.monitors.length });
    },
    welcomed: (protocol) => {
      // A hub before protocol 2 has no monitors for this agent, and would refuse their results.
      if (protocol < 2) monitors?.set({ version: 'none', monitors: [] });
      monitors?.flush();
    },
    log,
  });
  const hub = client;

  const thresholds = new ThresholdWatcher(config.thresholds);
  const collect = async () => {
    try {
      last = await sampleMetrics();
      hub.sendVolatile('metrics', { samples: [last] });
      for (const event of thresholds.update(last, Date.now())) {
        if (event.kind === 'alert') hub.sendDurable('alert', { type: 'host', source: event.source, message: event.message, context: event.context });
        else hub.sendDurable('resolve', { type: 'host', source: event.source, message: event.message });
      }
    } catch (err) {
      log.warn('metrics collection failed', { error: (err as Error).message });
    }
  };
  await sampleMetrics().catch(() => undefined); // prime the CPU and network counters
  const metricsTimer = setInterval(() => void collect(), config.metrics_interval_s * 1000);

  const tails = config.logs.map(
    (l) =>
      new LogTail({
        path: l.path,
        pattern: l.pattern,
        stateDir: path.join(config.state_dir, 'logs'),
        windowMs: 60_000,
        contextLines: 10,
        send: (id, alert) => hub.sendDurable('alert', alert, id),
      }),
  );
  const pollLogs = () => {
    for (const tail of tails) {
      try {
        tail.poll();
      } catch (err) {
        log.warn('log watcher failed', { error: (err as Error).message });
      }
    }
  };
  const logsTimer = tails.length > 0 ? setInterval(pollLogs, 1000) : null;

  const systemd = config.systemd.enabled
    ? new SystemdWatcher({
        ...(config.systemd.units ? { units: config.systemd.units } : {}),
        settleMs: config.systemd.settle_s * 1000,
        stateDir: config.state_dir,
        alert: (a) => hub.sendDurable('alert', a),
        resolve: (r) => hub.sendDurable('resolve', r),
        log,
      })
    : null;

  stateTrouble = (alert, message) => {
    const payload = { type: 'host', source: 'agent-state-dir', message };
    if (alert) hub.sendDurable('alert', payload);
    else hub.sendDurable('resolve', payload);
  };

  log.info('opspilot-agent starting', { hub: config.hub_url, state_dir: config.state_dir, actions: runner.actionNames, outbox: outbox.size });
  // The checks of the last run go on while the hub is away; the hub's set replaces them.
  monitors?.restore();
  hub.start();
  // Catching up on the journal may take a while after a long stop; the connection does not wait.
  void systemd?.start().catch((err: Error) => log.error('systemd watcher did not start', { error: err.message }));

  // Ctrl-C reaches the whole process group, and `pnpm start` then asks its children to stop too:
  // the second signal is the same request, not a new one.
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info('stopping', { signal });
    clearInterval(metricsTimer);
    if (logsTimer) clearInterval(logsTimer);
    await systemd?.stop();
    pollLogs();
    for (const tail of tails) tail.close();
    monitors?.stop();
    await hub.stop();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

main().catch((err) => {
  process.stderr.write(`opspilot-agent: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exit(1);
});
