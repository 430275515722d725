/**
 * The shapes of the REST API's answers and bodies as TypeScript types, derived from the route
 * schemas that validate and document them (TypeBox `Static`): the dashboard and the CLI import
 * these (types only, nothing at run time) instead of restating them, so a changed route is a
 * type error in its clients.
 */
// The request decorations the route files use (req.operator…): a client's compile sees them too.
import type {} from '../app.ts';

export type { AgentViewT as Agent, ExecViewT as Exec, IncidentSummaryViewT as IncidentSummary, IncidentViewT as Incident } from './schemas.ts';
export type { IncidentStatus } from '../storage/tables.ts';
export type { RuleBodyT as RuleBody, RuleViewT as Rule, SilenceBodyT as SilenceBody, SilenceViewT as Silence } from './remediation.ts';
export type { TokenViewT as Token, AuditEventT as AuditEvent } from './system.ts';
export type { MonitorViewT as Monitor, MonitorBodyT as MonitorBody } from './monitors.ts';
export type { SessionViewT as Session } from './sessions.ts';
export type { MetricSampleViewT as MetricSample } from './agents.ts';
export type { IntegrationViewT as Integration, IntegrationBodyT as IntegrationBody } from './integrations.ts';
export type { CheckViewT as HeartbeatCheck } from './heartbeats.ts';
export type { LiveEventData as LiveEvent } from '../live/events-route.ts';
/** Every REST error's body. */
export type { ErrorBody as ApiErrorBody } from '../errors.ts';
