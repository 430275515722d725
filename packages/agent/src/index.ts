export { Backoff, type BackoffOptions } from './backoff.ts';
export { Outbox, type OutboxEntry, type OutboxOptions } from './outbox.ts';
export { BUILTIN_ACTIONS, buildArgv, BadParams, type ActionSpec, type ParamSpec } from './exec/catalogue.ts';
export { ExecRunner, runCommand, OUTPUT_CAP_BYTES, type RunnerOptions } from './exec/runner.ts';
export { HubClient, type ClientOptions, type Logger } from './client.ts';
export { loadAgentConfig, resolveAgentConfig, normalizeHubUrl, AgentConfigError, type AgentConfig } from './config.ts';
