import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createRedactor, loadRedactions, redactionFromConfig } from '../src/incidents/redact.ts';

const { redact } = createRedactor();

t.test('every kind of secret the issue lists is removed', async (t) => {
  const cases: [string, string, string][] = [
    ['key=value', 'connecting with password=hunter2 to db', 'hunter2'],
    ['key: value', 'api_key: sk-live-0123456789abcdef', 'sk-live-0123456789abcdef'],
    ['env var', 'PGPASSWORD=s3cr3t psql -h db', 's3cr3t'],
    ['env var with prefix', 'AWS_SESSION_TOKEN=FwoGZXIvYXdzEJr export', 'FwoGZXIvYXdzEJr'],
    ['CLI flag', 'mysql --password s3cr3tflag -u root', 's3cr3tflag'],
    ['JSON', '{"user":"app","password":"p@ss \\"quoted\\" word","port":5432}', 'p@ss'],
    ['JSON single quotes', "{'client_secret': 'abc123xyz'}", 'abc123xyz'],
    ['URL credentials', 'redis://default:r3d1spass@cache:6379/0', 'r3d1spass'],
    ['connection string', 'DATABASE_URL=postgres://app:pgpa55@db.internal:5432/prod', 'pgpa55'],
    ['bearer', 'curl -H "Authorization: Bearer abcdef0123456789xyz" https://api', 'abcdef0123456789xyz'],
    ['AWS access key', 'using AKIAIOSFODNN7EXAMPLE for s3', 'AKIAIOSFODNN7EXAMPLE'],
    ['AWS secret', 'aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY', 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY'],
    ['JWT', 'token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U rejected', 'dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U'],
    ['private key', 'key:\n-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7\nabc\n-----END RSA PRIVATE KEY-----\nnext', 'MIIEowIBAAKCAQEA7'],
    ['truncated private key', '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA', 'b3BlbnNzaC1rZXktdjEAAAAA'],
    ['OpsPilot token', 'agent token opa_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789', 'opa_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789'],
  ];
  for (const [name, input, secret] of cases) {
    const out = redact(input);
    t.notOk(out.text.includes(secret), `${name}: ${out.text}`);
    t.ok(out.count >= 1, `${name}: counted`);
  }
});

t.test('the line stays readable and ordinary text is left alone', async (t) => {
  t.same(redact('password=hunter2 user=bob'), { text: 'password=[REDACTED] user=bob', count: 1 });
  t.same(redact('postgres://app:pgpa55@db:5432/prod'), { text: 'postgres://app:[REDACTED:password]@db:5432/prod', count: 1 });
  t.equal(redact('Authorization: Bearer abcdef0123456789xyz').text, 'Authorization: Bearer [REDACTED:token]');
  const plain = "nginx.service: Failed with result 'exit-code'. bind() to 0.0.0.0:80 failed (98: Address already in use)";
  t.same(redact(plain), { text: plain, count: 0 });
  t.same(redact('password reset email sent to user 42'), { text: 'password reset email sent to user 42', count: 0 }, 'the word alone is not a secret');
  t.same(redact('compass=north bypass=on'), { text: 'compass=north bypass=on', count: 0 }, 'words that merely end in "pass"');
  t.same(redact('https://example.com/path?x=1'), { text: 'https://example.com/path?x=1', count: 0 });
  const jwt = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dozjgNryP4J3jVmNHl0w';
  t.same(redact(jwt), { text: '[REDACTED:jwt]', count: 1 }, 'a JWT at the start of the text');
  t.same(redact(`auth=(${jwt}),${jwt}`).text, 'auth=([REDACTED:jwt]),[REDACTED:jwt]', 'the character before a JWT stays');
  t.same(redact(`x-${jwt}`), { text: `x-${jwt}`, count: 0 }, 'not inside a longer token run');
});

t.test('counts every redaction', async (t) => {
  t.equal(redact('password=a token=b secret=c').count, 3);
});

t.test('operator patterns from config', async (t) => {
  const r = createRedactor([redactionFromConfig('customer_id', 'CUST-[0-9]{6}')]);
  t.same(r.redact('order for CUST-123456 failed'), { text: 'order for [REDACTED:customer_id] failed', count: 1 });
  const keep = createRedactor([redactionFromConfig('pin', '(?P<keep>pin: )[0-9]{4}')]);
  t.same(keep.redact('card pin: 1234, pin: 99'), { text: 'card pin: [REDACTED:pin], pin: 99', count: 1 }, 'a group named keep stays');
  t.equal(createRedactor([redactionFromConfig('emoji', '😀+')]).redact('a😀😀b').text, 'a[REDACTED:emoji]b', 'positions are UTF-16 like the text');
});

t.test("an operator's pattern runs in linear time: a catastrophic one would hang V8 past the test timeout", async (t) => {
  // On a backtracking engine each of these takes 2^40 steps or more on its input.
  const r = createRedactor([redactionFromConfig('evil', '(a|a)*b'), redactionFromConfig('nested', '(x+x+)+y')]);
  t.same(r.redact('a'.repeat(40) + '!' + 'x'.repeat(100_000)), { text: 'a'.repeat(40) + '!' + 'x'.repeat(100_000), count: 0 });
  t.same(r.redact('aaab xxy'), { text: '[REDACTED:evil] [REDACTED:nested]', count: 2 });
});

t.test('hostile input is handled (a catastrophic backtrack would hang past the test timeout)', async (t) => {
  t.same(redact('password='.repeat(20000)), { text: 'password=[REDACTED]', count: 1 }, 'with no separator the value runs to the end');
  t.equal(redact('a'.repeat(200000)).count, 0);
  t.equal(redact('x://' + 'a:'.repeat(50000)).count, 0);
  t.equal(redact('Bearer '.repeat(30000)).count, 0);
  t.ok(redact('"password":"' + '\\'.repeat(100000)).text.length > 0);
});

t.test('the redactions file: read, and refused with the bad entry named', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'opspilot-redactions-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = (content: string) => {
    const f = path.join(dir, `r${Math.random()}.json`);
    writeFileSync(f, content);
    return f;
  };
  t.same(loadRedactions(null), []);
  const [p] = loadRedactions(file(JSON.stringify([{ name: 'ticket', pattern: 'TCK-\\d+' }])));
  t.equal(createRedactor([p!]).redact('see TCK-42 and TCK-7').text, 'see [REDACTED:ticket] and [REDACTED:ticket]');
  const cases: [string, RegExp][] = [
    ['{not json', /redactions file .*: file: /],
    ['{"name":"x","pattern":"y"}', /file: must be a JSON array/],
    ['[1]', /\[0\]: must be an object/],
    ['[{"name":"x","pattern":"y","replace":"z"}]', /\[0\]\.replace: unknown key/],
    ['[{"name":"bad name","pattern":"y"}]', /\[0\]\.name: /],
    ['[{"name":"x","pattern":""}]', /\[0\]\.pattern: must be a regular expression/],
    ['[{"name":"x","pattern":"(unclosed"}]', /\[0\]\.pattern: error parsing regexp: missing closing \)/],
    ['[{"name":"x","pattern":"a(?=b)"}]', /\[0\]\.pattern: .*RE2: no lookaround/],
    ['[{"name":"x","pattern":"(a)\\\\1"}]', /\[0\]\.pattern: .*backreferences/],
    [JSON.stringify([{ name: 'x', pattern: 'a'.repeat(5000) }]), /\[0\]\.pattern: is longer than 4096/],
    [JSON.stringify([{ name: 'x', pattern: '(?:[a-z]{1,1000}){1,1000}' }]), /\[0\]\.pattern: (?:error parsing regexp|is too large)/],
    ['[{"name":"x","pattern":"a*"}]', /\[0\]\.pattern: matches the empty string/],
    ['[{"name":"__proto__","pattern":"a"},{"name":"x","pattern":"("}]', /\[1\]\.pattern/],
  ];
  for (const [content, message] of cases) t.throws(() => loadRedactions(file(content)), { name: 'RedactionsFileError', message }, content);
  t.throws(() => loadRedactions(path.join(dir, 'missing.json')), { name: 'RedactionsFileError', message: /ENOENT/ });
});
