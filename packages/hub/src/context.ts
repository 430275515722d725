import type { AdminAuth } from './auth/admin.ts';
import type { Sessions } from './auth/sessions.ts';
import type { HubConfig } from './config.ts';
import type { Analyzer } from './incidents/analyzer.ts';
import type { ExecBroker } from './exec/broker.ts';
import type { AgentRegistry } from './ingest/registry.ts';
import type { IngestWriter } from './ingest/writer.ts';
import type { HubDatabase } from './storage/database.ts';
import type { LifecycleOptions } from './incidents/lifecycle.ts';
import type { Slack } from './slack/index.ts';
import type { RemediationEngine } from './remediation/engine.ts';
import type { HeartbeatMonitor } from './heartbeats/monitor.ts';
import type { MonitorRunner } from './monitors/runner.ts';
import type { MonitorAssignments } from './monitors/assign.ts';
import type { LiveJournal } from './live/journal.ts';
import type { Retention } from './retention.ts';
import type { HubEvents } from './events.ts';
import type { Clock } from './clock.ts';
import type { Cluster } from './cluster.ts';

/** The hub's parts, built once by buildApp in dependency order (tests reach them as app.hub; routes get only what they use). */
export interface Hub {
  config: Readonly<HubConfig>;
  /** What time it is for the hub (clock.ts). */
  clock: Clock;
  database: HubDatabase;
  /** This hub among the others on the database: who leads the background work, messages between hubs. */
  cluster: Cluster;
  registry: AgentRegistry;
  writer: IngestWriter;
  broker: ExecBroker;
  adminAuth: AdminAuth;
  /** Dashboard sign-ins (and the one-time sign-in link). */
  sessions: Sessions;
  analyzer: Analyzer;
  /** Classification rules, and whether changes are notified. */
  lifecycle: LifecycleOptions;
  /** Envelope-id and metric-sample retention (runs every 10 minutes). */
  retention: Retention;
  /** What happened inside the hub, for the parts that act on it (events.ts). */
  events: HubEvents;
  /** Slack, when configured. */
  slack: Slack | null;
  /** Remediation rules. */
  remediation: RemediationEngine;
  /** Heartbeat checks (tests call its sweep after moving the clock). */
  heartbeats: HeartbeatMonitor;
  /** Uptime monitors: the ones the hub runs, and every monitor's state and incidents (tests wait on its idle()). */
  monitors: MonitorRunner;
  /** Which agents run which monitors: sent to them after hello and on every change. */
  assignments: MonitorAssignments;
  /** The audit trail read as it grows, for the live event streams (GET /v1/events). */
  journal: LiveJournal;
  /** Open "agent offline" incidents for silent agents now (also run every 30 s); returns their ids. */
  sweepOffline(now?: Date): Promise<string[]>;
}

export type { App } from './http.ts';
