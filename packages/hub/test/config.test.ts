import t from 'tap';
import { ConfigError, DEFAULT_CONFIG, ENV_KEYS, configFromEnv, resolveConfig } from '../src/config.ts';

t.test('defaults', async (t) => {
  const config = configFromEnv({});
  t.same(config, DEFAULT_CONFIG);
  t.ok(Object.isFrozen(config));
  t.equal(config.port, 8080);
  t.equal(config.dataDir, './data');
  t.equal(config.databaseUrl, null);
});

t.test('environment variables', async (t) => {
  const config = configFromEnv({
    OPSPILOT_PORT: '9090',
    OPSPILOT_HOST: '127.0.0.1',
    OPSPILOT_ADMIN_TOKEN: 'a-long-enough-admin-token',
    OPSPILOT_DATA_DIR: '/var/lib/opspilot',
    DATABASE_URL: 'postgres://u:p@db:5432/opspilot',
    OPSPILOT_LOG_LEVEL: 'debug',
    OPSPILOT_MAX_FRAME_BYTES: '2097152',
    OPSPILOT_RULES_FILE: '/etc/opspilot/rules.json',
    UNRELATED: 'ignored',
  });
  t.match(config, {
    port: 9090,
    host: '127.0.0.1',
    adminToken: 'a-long-enough-admin-token',
    dataDir: '/var/lib/opspilot',
    databaseUrl: 'postgres://u:p@db:5432/opspilot',
    logLevel: 'debug',
    maxFrameBytes: 2097152,
    rulesFile: '/etc/opspilot/rules.json',
  });
  t.equal(configFromEnv({ OPSPILOT_PORT: '' }).port, 8080, 'empty means unset');
});

t.test('every numeric setting is read from its variable as an integer (OPSPILOT_MAX_UNAUTHENTICATED was read as text)', async (t) => {
  for (const [name, key] of Object.entries(ENV_KEYS)) {
    const fallback = DEFAULT_CONFIG[key];
    if (typeof fallback !== 'number') continue;
    const value = key === 'port' ? 9091 : key === 'metricsRawHours' ? 24 : fallback + 1;
    t.equal(configFromEnv({ [name]: String(value) })[key], value, name);
  }
  t.match(configFromEnv({ OPSPILOT_BULK_PER_MINUTE: '30', OPSPILOT_METRIC_SAMPLES_PER_MINUTE: '60', OPSPILOT_METRICS_RAW_HOURS: '6', OPSPILOT_METRICS_RETENTION_DAYS: '7', OPSPILOT_MAX_CONNECTIONS: '500' }), {
    bulkPerMinute: 30,
    metricSamplesPerMinute: 60,
    metricsRawHours: 6,
    metricsRetentionDays: 7,
    maxConnections: 500,
  });
  t.throws(() => configFromEnv({ OPSPILOT_METRICS_RAW_HOURS: '200', OPSPILOT_METRICS_RETENTION_DAYS: '7' }), /OPSPILOT_METRICS_RAW_HOURS: must not exceed/);
});

t.test('bad values fail with the variable named and never echo secrets', async (t) => {
  const cases: [Record<string, string>, RegExp][] = [
    [{ OPSPILOT_PORT: 'eighty' }, /OPSPILOT_PORT: expected an integer/],
    [{ OPSPILOT_PORT: '70000' }, /OPSPILOT_PORT: must be an integer from 0 to 65535/],
    [{ OPSPILOT_PORT: '-1' }, /OPSPILOT_PORT: expected an integer/],
    [{ OPSPILOT_LOG_LEVEL: 'loud' }, /OPSPILOT_LOG_LEVEL: must be one of/],
    [{ OPSPILOT_ADMIN_TOKEN: 'short' }, /OPSPILOT_ADMIN_TOKEN: must be at least 16 characters/],
    [{ DATABASE_URL: 'mysql://root@db/x' }, /DATABASE_URL: must be a postgres/],
    [{ OPSPILOT_MAX_FRAME_BYTES: '10' }, /OPSPILOT_MAX_FRAME_BYTES: must be an integer from 1024/],
  ];
  for (const [env, message] of cases) {
    try {
      configFromEnv(env);
      t.fail(`accepted ${JSON.stringify(env)}`);
    } catch (err) {
      t.ok(err instanceof ConfigError);
      t.match((err as Error).message, message);
      for (const secret of [env.OPSPILOT_ADMIN_TOKEN, env.DATABASE_URL]) {
        if (secret) t.notOk((err as Error).message.includes(secret), 'the value is not echoed');
      }
    }
  }
});

t.test('resolveConfig rejects unknown keys and bad combinations', async (t) => {
  t.throws(() => resolveConfig({ prot: 1 } as never), /invalid config prot: unknown key/);
  t.throws(() => resolveConfig({ execDefaultTimeoutMs: 200_000, execMaxTimeoutMs: 125_000 }), /execDefaultTimeoutMs/);
  t.throws(() => resolveConfig({ flushIntervalMs: -1 }), /flushIntervalMs/);
  t.equal(resolveConfig({}).flushIntervalMs, 0, 'written at the end of the turn by default');
  t.equal(resolveConfig({ flushIntervalMs: 7 }).flushIntervalMs, 7);
});

t.test('Slack and analysis settings from the environment', async (t) => {
  const config = configFromEnv({
    SLACK_BOT_TOKEN: 'xoxb-1-2-abc',
    SLACK_SIGNING_SECRET: 'a-signing-secret-of-32-chars-xx',
    SLACK_CHANNEL: 'C0123ABC',
    OPSPILOT_SLACK_ALLOWED_USERS: ' U01ABC, W02DEF ,',
    OPSPILOT_SLACK_API_URL: 'http://127.0.0.1:9999/api',
    OPSPILOT_ANALYSIS_REUSE_S: '0',
    OPSPILOT_REDACTIONS_FILE: '/etc/opspilot/redactions.json',
  });
  t.match(config, {
    slackBotToken: 'xoxb-1-2-abc',
    slackChannel: 'C0123ABC',
    slackAllowedUsers: ['U01ABC', 'W02DEF'],
    slackApiUrl: 'http://127.0.0.1:9999/api/',
    analysisReuseS: 0,
    redactionsFile: '/etc/opspilot/redactions.json',
  });
  t.match(configFromEnv({ SLACK_WEBHOOK_URL: 'https://hooks.slack.com/services/T/B/x' }), { slackWebhookUrl: 'https://hooks.slack.com/services/T/B/x', slackBotToken: null });

  const refused = (env: Record<string, string>, name: RegExp) => {
    let error: unknown;
    try {
      configFromEnv(env);
    } catch (err) {
      error = err;
    }
    t.type(error, ConfigError, JSON.stringify(env));
    t.match((error as Error).message, name);
    for (const v of Object.values(env)) if (v.length > 12) t.notOk((error as Error).message.includes(v), 'the value is not echoed');
  };
  refused({ SLACK_BOT_TOKEN: 'xoxb-1-2-abc' }, /SLACK_BOT_TOKEN.*go together/);
  refused({ SLACK_BOT_TOKEN: 'not-a-slack-token-value', SLACK_SIGNING_SECRET: 'a-signing-secret-of-32-chars-xx', SLACK_CHANNEL: 'C1' }, /SLACK_BOT_TOKEN/);
  refused({ OPSPILOT_SLACK_ALLOWED_USERS: 'alice,bob' }, /OPSPILOT_SLACK_ALLOWED_USERS/);
  refused({ SLACK_WEBHOOK_URL: 'ftp://example.com/hook/secret' }, /SLACK_WEBHOOK_URL/);
  refused({ OPSPILOT_ANALYSIS_REUSE_S: '-5' }, /OPSPILOT_ANALYSIS_REUSE_S/);
});
