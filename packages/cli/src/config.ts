import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';

/** Where `opspilot login` keeps the hub and the token: $XDG_CONFIG_HOME/opspilot/cli.json (mode 600). */
export function credentialsPath(env: NodeJS.ProcessEnv): string {
  const base = env.XDG_CONFIG_HOME || path.join(env.HOME || homedir(), '.config');
  return path.join(base, 'opspilot', 'cli.json');
}

export interface Credentials {
  hub: string;
  token: string;
}

export function saveCredentials(env: NodeJS.ProcessEnv, c: Credentials): string {
  const file = credentialsPath(env);
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  writeFileSync(file, JSON.stringify(c, null, 2) + '\n', { mode: 0o600 });
  chmodSync(file, 0o600); // a file that existed keeps its mode otherwise
  return file;
}

/**
 * The hub and token to use: `--hub`/`--token`, then OPSPILOT_HUB/OPSPILOT_TOKEN, then what
 * `login` saved. Null when there is none.
 */
export function loadCredentials(env: NodeJS.ProcessEnv, flags: { hub?: string; token?: string }): Credentials | null {
  let saved: Partial<Credentials> = {};
  try {
    saved = JSON.parse(readFileSync(credentialsPath(env), 'utf8')) as Partial<Credentials>;
  } catch {
    // none saved
  }
  const hub = flags.hub ?? env.OPSPILOT_HUB ?? saved.hub;
  const token = flags.token ?? env.OPSPILOT_TOKEN ?? saved.token;
  return hub && token ? { hub: normalizeHub(hub), token } : null;
}

/** A hub's base URL: http(s), no trailing slash, no path. */
export function normalizeHub(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new UsageError(`"${value}" is not a URL (like http://127.0.0.1:8080)`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError(`the hub's URL is http:// or https://, not ${url.protocol}`);
  if (url.username || url.password) throw new UsageError('put the token in --token, not in the URL');
  return url.origin;
}

/** A mistake in how the command was called (exit code 2). */
export class UsageError extends Error {
  readonly exitCode = 2;
}
