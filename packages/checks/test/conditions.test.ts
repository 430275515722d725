import t from 'tap';
import { ConditionError, evaluate, parseCondition, parseConditions } from '../src/index.ts';

t.test('the Gatus forms parse into what they mean', async (t) => {
  t.match(parseCondition('[STATUS] == 200'), { left: { kind: 'placeholder', name: 'STATUS' }, op: '==', right: { kind: 'number', value: 200 } });
  t.match(parseCondition('[RESPONSE_TIME] < 300'), { op: '<', right: { value: 300 } });
  t.match(parseCondition('[BODY].status == "ok"'), { left: { name: 'BODY', path: ['status'] }, right: { kind: 'string', value: 'ok' } });
  t.match(parseCondition('[BODY].data[0].id==42'), { left: { path: ['data', 0, 'id'] }, right: { value: 42 } });
  t.match(parseCondition('[CERTIFICATE_EXPIRATION] > 14d'), { right: { kind: 'number', value: 14 * 86_400_000, duration: true } });
  t.match(parseCondition('[CONNECTED] == true'), { right: { kind: 'bool', value: true } });
  t.match(parseCondition('len([BODY].items) >= 1'), { left: { kind: 'len', of: { name: 'BODY', path: ['items'] } } });
  t.match(parseCondition('[BODY] == pong'), { right: { kind: 'string', value: 'pong' } });
  t.match(parseCondition('[DNS_RCODE] == NXDOMAIN'), { right: { value: 'NXDOMAIN' } });
});

t.test('a bad condition is refused with what is wrong and where', async (t) => {
  const refused = (text: string, why: RegExp) => {
    try {
      parseCondition(text);
      t.fail(`${text}: accepted`);
    } catch (err) {
      t.ok(err instanceof ConditionError && why.test(err.message), `${text.slice(0, 40)}: ${(err as Error).message}`);
    }
  };
  refused('', /empty/);
  refused('[STATUS]', /operator is missing/);
  refused('[STATUS] = 200', /operator is missing|unexpected/);
  refused('[STATUS] == ', /operand is missing/);
  refused('[STATE] == 200', /\[STATE\] is not a placeholder/);
  refused('[STATUS].code == 200', /only \[BODY\] takes a path/);
  refused('[BODY]. == 1', /field name is missing/);
  refused('[BODY][x] == 1', /an index is/);
  refused('[BODY].a == "open', /not closed/);
  refused('200 == 200', /two constants/);
  refused('[BODY].status > "ok"', /compares numbers/);
  refused('[STATUS] == 200 extra', /unexpected/);
  refused('len(len([BODY])) > 1', /len\(\) inside len\(\)/);
  refused(`[BODY]${'.a'.repeat(20)} == 1`, /more than 16 steps/);
  refused(`[STATUS] == ${'9'.repeat(300)}`, /longer than 256/);
  t.throws(() => parseConditions(Array(21).fill('[STATUS] == 200')), /more than 20 conditions/);
});

t.test('conditions are evaluated against what the check saw', async (t) => {
  const cs = parseConditions(['[STATUS] == 200', '[RESPONSE_TIME] < 300', '[BODY].status == "ok"', 'len([BODY].items) > 1', '[CERTIFICATE_EXPIRATION] > 14d']);
  const seen = { status: 200, responseMs: 120, body: '{"status":"ok","items":[1,2,3]}', certificateExpirationMs: 30 * 86_400_000 };
  t.same(evaluate(cs, seen), { ok: true, failures: [] });
  const bad = evaluate(cs, { status: 503, responseMs: 900, body: '{"status":"degraded","items":[]}', certificateExpirationMs: 3 * 86_400_000 });
  t.equal(bad.ok, false);
  t.same(bad.failures, [
    '[STATUS] == 200 (found 503)',
    '[RESPONSE_TIME] < 300 (found 900)',
    '[BODY].status == "ok" (found "degraded")',
    'len([BODY].items) > 1 (found 0)',
    '[CERTIFICATE_EXPIRATION] > 14d (found 259200000)',
  ]);
  t.same(evaluate(parseConditions(['[BODY].status == "ok"']), { body: 'not json' }).failures, ['[BODY].status == "ok" (found nothing)'], 'a body that is not JSON has no fields');
  t.equal(evaluate(parseConditions(['[BODY].a.b != 1']), { body: '{"a":null}' }).ok, true, 'an absent field is not 1');
  t.equal(evaluate(parseConditions(['[BODY] == pong']), { body: 'pong' }).ok, true);
  t.equal(evaluate(parseConditions(['[CONNECTED] == true']), { connected: false }).ok, false);
  // A hostile body: deep, wide, huge numbers; bounded work and a plain answer.
  const deep = '['.repeat(5000) + ']'.repeat(5000);
  t.equal(evaluate(parseConditions(['[BODY][0][0][0] == 1']), { body: deep }).ok, false);
  t.equal(evaluate(parseConditions(['[BODY].n > 5']), { body: `{"n": "${'9'.repeat(100_000)}"}` }).ok, true);
});
