export { buildApp, type BuildAppOptions } from './app.ts';
export { configFromEnv, resolveConfig, DEFAULT_CONFIG, ENV_KEYS, type HubConfig } from './config.ts';
export { HUB_ERRORS, HUB_ERROR_CODES, HubError, type HubErrorCode } from './errors.ts';
export { openDatabase, type HubDatabase } from './storage/database.ts';
export { migrate, type MigrationResult } from './storage/migrate.ts';
export type { App, Hub } from './context.ts';
