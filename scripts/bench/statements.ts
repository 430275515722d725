/**
 * `pnpm bench statements`: what the hub's thread spends making an alert's statement, per alert:
 * Kysely building and compiling it each time (as the hub did) beside binding the alert's values
 * to its shape, built once (storage/shape.ts); and naming the text to prepare it under, by a
 * SHA-1 of the text (as the hub does: storage/database.ts) beside looking the text up in a map
 * (which it measured and kept away from: V8 hashes a string it has not hashed before more slowly
 * than OpenSSL's SHA-1). No database: the statement is compiled for PostgreSQL and not sent.
 */
import { createHash } from 'node:crypto';
import { alertQuery, alertStatement, type AlertValues } from '../../packages/hub/src/storage/incidents.ts';
import { compileOnly } from '../../packages/hub/src/storage/shape.ts';

export interface StatementsRow {
  /** Microseconds per call, the median of the rounds. */
  built_us: number;
  bound_us: number;
  sha1_us: number;
  map_us: number;
  /** The map, given the one string a shape hands out every time (its hash kept by V8). */
  map_same_us: number;
  text_chars: number;
}

const db = compileOnly();

function values(i: number): AlertValues {
  const at = new Date(Date.UTC(2026, 11, 2) + i * 1000);
  return {
    id: `inc${i}`,
    agentId: `agent${i % 200}`,
    type: 'systemd',
    source: 'nginx.service',
    message: `nginx.service: Failed with result 'exit-code' (${i})`,
    exitCode: 1,
    unitStatus: 'failed',
    context: null,
    logs: 'line\n'.repeat(20),
    at,
    atText: at.toISOString(),
    reopenSince: new Date(at.getTime() - 30 * 60_000),
    changeEventId: `ev${i}a`,
    classifiedEventId: `ev${i}b`,
    actor: 'agent',
    severity: 'high',
    category: 'service',
    rule: 'unit_failed',
    fresh: '{"severity":"high","category":"service","rule":"unit_failed"}',
    openedDetail: '{"message":"nginx failed"}',
    msgId: `m${i}`,
    receivedAt: at.toISOString(),
    notificationId: `n${i}`,
  };
}

/**
 * Microseconds per call of `fn`, the median of `rounds` rounds of `n` calls (after one round not
 * counted); `prepare` makes each round's inputs outside the timing.
 */
function time<I>(prepare: () => I, fn: (input: I, i: number) => unknown, n: number, rounds = 7): number {
  const perRound: number[] = [];
  let sink = 0;
  for (let r = 0; r <= rounds; r++) {
    const input = prepare();
    const t0 = performance.now();
    for (let i = 0; i < n; i++) if (fn(input, i)) sink++;
    if (r > 0) perRound.push(((performance.now() - t0) * 1000) / n);
  }
  if (sink < 0) console.log(sink);
  perRound.sort((a, b) => a - b);
  return Math.round(perRound[Math.floor(perRound.length / 2)]! * 100) / 100;
}

/** An agent's alert as the hub stores it by default (no Slack). */
const CLAIMED = { claimed: true, notify: false };

export function statementsBench(n = 2000): StatementsRow {
  const inputs = Array.from({ length: 256 }, (_, i) => values(i));
  const text = alertQuery(db, inputs[0]!, CLAIMED).sql;
  // Each query's text as the hub meets it: a string of its own, equal to those before (V8 keeps
  // a string's hash once computed, so each round looks up strings never hashed).
  const freshTexts = () => Array.from({ length: n }, () => text.split('').join(''));
  const names = new Map<string, string | null>([[text, 'opspilot_1']]);
  return {
    built_us: time(() => inputs, (inputs, i) => alertStatement(db, inputs[i % 256]!, CLAIMED).compile(), n),
    bound_us: time(() => inputs, (inputs, i) => alertQuery(db, inputs[i % 256]!, CLAIMED), n),
    sha1_us: time(freshTexts, (texts, i) => createHash('sha1').update(texts[i]!).digest('base64url'), n),
    map_us: time(freshTexts, (texts, i) => names.get(texts[i]!), n),
    map_same_us: Math.max(0, Math.round((time(() => inputs, (inputs, i) => names.get(alertQuery(db, inputs[i % 256]!, CLAIMED).sql), n) - time(() => inputs, (inputs, i) => alertQuery(db, inputs[i % 256]!, CLAIMED), n)) * 100) / 100),
    text_chars: text.length,
  };
}
