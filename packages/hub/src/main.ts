#!/usr/bin/env -S node --import tsx
import path from 'node:path';
import v8 from 'node:v8';

// The old generation is collected once it grows 50 % past what survived the last collection
// (V8's default lets it double first, and grows the limit further under allocation): at 10,000
// agents ~20 MB less, while a flood, whose batches promote ~15 MB between collections, is not
// spent marking. At 15 % the hub held 13 MB less but ran a full collection every ~0.3 s under the
// flood bench, ~10 % of its time and a sixth of its throughput (docs/PERFORMANCE.md).
v8.setFlagsFromString('--heap-growing-percent=50');
import { buildApp } from './app.ts';
import { configFromEnv } from './config.ts';
import { StartupError } from './errors.ts';
import { isDatabaseFault } from './storage/database.ts';
import { listenHealth } from './observability/health.ts';

/** The hub process: config from the environment, listen, and shut down cleanly on SIGTERM/SIGINT. */
async function main(): Promise<void> {
  const config = configFromEnv(process.env);
  // The embedded database is PostgreSQL compiled to WebAssembly. V8 compiles it with its baseline
  // compiler and then recompiles hot functions with TurboFan on background threads, whose
  // ~90 MB of compiler memory glibc keeps in its per-thread arenas after it is freed: a third of
  // an idle embedded hub. Baseline code only: idle 171-200 MiB instead of 215-267, statements
  // ~25 % slower once warm (docs/PERFORMANCE.md). Set before PGlite's module is compiled.
  if (!config.databaseUrl) v8.setFlagsFromString('--liftoff-only');
  const app = await buildApp({ config });
  let health: Awaited<ReturnType<typeof listenHealth>> | null = null;
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    app.log.info({ signal }, 'shutting down: closing agent connections (1012) and flushing writes');
    try {
      // The health port first: a balancer stops sending new connections here while the agents
      // held are told to go elsewhere (1012).
      await health?.close();
      await app.close();
      process.exit(0);
    } catch (err) {
      app.log.error({ err }, 'shutdown failed');
      process.exit(1);
    }
  };
  // The last line of defence: a database fault that some code path failed to handle is logged,
  // and the hub stays up (the pool reconnects; /readyz says when it is back). Anything else is a
  // bug that leaves the process in an unknown state: exit, and let the supervisor restart it.
  process.on('unhandledRejection', (reason) => {
    if (isDatabaseFault(reason)) {
      app.log.error({ err: reason }, 'unhandled database fault; staying up');
      return;
    }
    app.log.fatal({ err: reason }, 'unhandled rejection; exiting');
    process.exit(1);
  });
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  try {
    // A deep accept queue: when a hub behind the balancer dies, the others take thousands of its
    // agents' reconnects within seconds. At Node's default of 511, connections past it were
    // dropped by the kernel and retried by TCP a second or more later (and a busy hub failed the
    // balancer's health checks the same way). The kernel caps it at net.core.somaxconn.
    await app.listen({ port: config.port, host: config.host, backlog: 4096 });
  } catch (err) {
    await app.close().catch(() => {});
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') throw new StartupError('OPSPILOT_PORT', `port ${config.port} on ${config.host} is in use`);
    if (code === 'EACCES') throw new StartupError('OPSPILOT_PORT', `port ${config.port} needs privileges this process lacks`);
    if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND') throw new StartupError('OPSPILOT_HOST', `${config.host} is not an address of this machine`);
    throw err;
  }
  if (config.healthPort !== 0) {
    const { hub } = app;
    health = await listenHealth({ db: hub.database.db, registry: hub.registry, cluster: hub.cluster }, { host: config.host, port: config.healthPort }).catch(async (err) => {
      await app.close().catch(() => {});
      throw err;
    });
  }
  const store = config.databaseUrl ? 'PostgreSQL (DATABASE_URL)' : `embedded PGlite in ${path.resolve(config.dataDir, 'pglite')}`;
  app.log.info({ store, docs: '/docs', ...(health ? { health_port: health.port } : {}) }, 'OpsPilot hub ready');
  // The link goes to the terminal that started the hub, never to the log (it signs in as the admin).
  const code = config.signinLink ? app.hub.sessions.issueLink() : undefined;
  if (code) {
    const host = config.host === '0.0.0.0' || config.host === '::' ? '127.0.0.1' : config.host.includes(':') ? `[${config.host}]` : config.host;
    process.stdout.write(`\n  Dashboard sign-in link (works once, for 15 minutes):\n\n    http://${host}:${config.port}/#signin=${code}\n\n`);
  }
}

main().catch((err) => {
  // Something the operator can fix: exit 2, naming the setting. Anything else is a bug: exit 1.
  if (err instanceof StartupError) {
    process.stderr.write(`opspilot-hub: ${err.message.includes(err.setting) ? err.message : `${err.setting}: ${err.message}`}\n`);
    process.exit(2);
  }
  process.stderr.write(`opspilot-hub: failed to start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
