// Every regular expression OpsPilot itself runs on V8 (a backtracking engine) is proven free of
// catastrophic backtracking by recheck, a static ReDoS checker (automata-theoretic where it can,
// fuzzing where the pattern has lookaround). Operator patterns run on RE2JS and are linear by
// construction (classify.test.ts, redact.test.ts, the agent's config tests).
import { execFile, execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import ts from 'typescript';
import { check, type Diagnostics } from 'recheck';
import { BUILTIN_RULES } from '../src/incidents/classify.ts';
import { BUILTIN_REDACTIONS } from '../src/incidents/redact.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

const PARAMS = { timeout: 30_000 } as const;
// Fuzzing reads a bounded repeat ({0,256}) on short inputs as polynomial growth. Where it says so,
// the pattern is checked again by the automaton (exact for patterns without lookaround), with the
// bounded repeats unrolled into it.
const UNROLLED = { timeout: 60_000, checker: 'automaton', maxRepeatCount: 2_000, maxNFASize: 200_000 } as const;

async function diagnose(source: string, flags: string): Promise<Diagnostics> {
  const d = await check(source, flags, PARAMS);
  if (d.status !== 'vulnerable' || !d.complexity.isFuzz) return d;
  const exact = await check(source, flags, UNROLLED);
  if (exact.status !== 'unknown') return exact;
  return (await reproducedOnV8(source, flags, d)) ? d : { ...d, status: 'safe', complexity: { type: 'safe', summary: 'fuzz finding not reproduced on V8', isFuzz: true } };
}

/**
 * Where the exact checker cannot run (lookaround), a fuzzing finding is a guess: fuzzing is not
 * deterministic, and its VM is not V8 (it read the lookbehind-guarded `jwt` pattern as quadratic
 * once in CI; V8 runs that attack in 4 ms). The finding stands unless V8, in a child process,
 * runs the attack pumped to four times the size the fuzzer needed to exceed its step budget in
 * under a second: a real quadratic takes far longer there (16× the budget), a real exponential
 * never ends (the child is killed).
 */
async function reproducedOnV8(source: string, flags: string, d: Diagnostics & { status: 'vulnerable' }): Promise<boolean> {
  const { pumps, suffix, base } = d.attack;
  const input = pumps.map((p) => p.prefix + p.pump.repeat(Math.max(1, p.bias + base * 4))).join('') + suffix;
  const run = `const [s, f] = JSON.parse(process.argv[1]); const input = require('fs').readFileSync(0, 'utf8');
const re = new RegExp(s, f); const t0 = performance.now(); re.exec(input); process.stdout.write(String(performance.now() - t0));`;
  const ms = await new Promise<number>((resolve) => {
    const child = execFile(process.execPath, ['-e', run, JSON.stringify([source, flags.replace(/[gy]/g, '')])], { timeout: 5_000, killSignal: 'SIGKILL' }, (err, out) =>
      resolve(err ? Infinity : Number(out)),
    );
    child.stdin!.end(input);
  });
  return ms > 1_000;
}

interface Found {
  where: string;
  source: string;
  flags: string;
}

/** Regular expression literals, and `new RegExp('…')` with a constant source, in every package's src/. */
function literals(): Found[] {
  const files = execFileSync('git', ['ls-files', '--', 'packages/*/src/*.ts', 'packages/*/src/**/*.ts'], { cwd: root, encoding: 'utf8' }).split('\n').filter(Boolean);
  const out: Found[] = [];
  for (const file of files) {
    const sf = ts.createSourceFile(file, readFileSync(path.join(root, file), 'utf8'), ts.ScriptTarget.Latest, true);
    const visit = (node: ts.Node): void => {
      const at = () => `${file}:${sf.getLineAndCharacterOfPosition(node.getStart(sf)).line + 1}`;
      if (node.kind === ts.SyntaxKind.RegularExpressionLiteral) {
        const text = node.getText(sf);
        const end = text.lastIndexOf('/');
        out.push({ where: at(), source: text.slice(1, end), flags: text.slice(end + 1) });
      } else if (ts.isNewExpression(node) && ts.isIdentifier(node.expression) && node.expression.text === 'RegExp' && node.arguments?.[0]) {
        const [src, flags] = node.arguments;
        if (ts.isStringLiteral(src) || ts.isNoSubstitutionTemplateLiteral(src)) {
          out.push({ where: at(), source: src.text, flags: flags && ts.isStringLiteral(flags) ? flags.text : '' });
        }
      }
      ts.forEachChild(node, visit);
    };
    visit(sf);
  }
  return out;
}

/** The built-in patterns assembled at run time (classification rules, redactions). */
function assembled(): Found[] {
  return [
    ...BUILTIN_RULES.filter((r) => r.pattern).map((r) => ({ where: `classification rule ${r.name}`, engine: r.pattern!.engine, source: r.pattern!.source, flags: r.pattern!.flags })),
    ...BUILTIN_REDACTIONS.map((r) => ({ where: `redaction ${r.name}`, engine: r.pattern.engine, source: r.pattern.source, flags: r.pattern.flags })),
  ].filter((p) => p.engine === 'v8');
}

async function checkAll(patterns: Found[]): Promise<{ p: Found; d: Diagnostics }[]> {
  const results: { p: Found; d: Diagnostics }[] = [];
  let next = 0;
  const worker = async () => {
    while (next < patterns.length) {
      const p = patterns[next++]!;
      results.push({ p, d: await diagnose(p.source, p.flags) });
    }
  };
  await Promise.all([worker(), worker(), worker(), worker()]);
  return results;
}

t.test('the checker finds what it should (else a pass below would mean nothing)', async (t) => {
  const [exp, poly, safe] = await Promise.all([diagnose('^(a+)+$', ''), diagnose('\\s*x$', ''), diagnose('(?:connect|refused)[^\\n]{0,80}(?:postgres|mysql)', 'i')]);
  t.equal(exp.status, 'vulnerable');
  t.equal(exp.status === 'vulnerable' && exp.complexity.type, 'exponential');
  t.equal(poly.status, 'vulnerable', 'quadratic counts too');
  t.equal(safe.status, 'safe');
  const lookaround = await diagnose('(?<!y)\\s*x$', '');
  t.equal(lookaround.status, 'vulnerable', 'a quadratic with lookaround is confirmed on V8');
});

t.test('no built-in pattern can backtrack catastrophically', async (t) => {
  t.setTimeout(600_000);
  const found = [...literals(), ...assembled()];
  t.ok(found.length > 80, `the scan found the patterns (${found.length})`);
  t.ok(found.some((p) => p.where.startsWith('packages/agent/')), 'the agent is scanned');
  t.ok(found.some((p) => p.where.startsWith('redaction url_credentials')), 'assembled patterns are included');
  for (const { p, d } of await checkAll(found)) {
    const detail = d.status === 'vulnerable' ? `${d.complexity.summary}, attack ${JSON.stringify(d.attack.pattern)}` : d.status === 'unknown' ? d.error.kind : '';
    t.equal(d.status, 'safe', `${p.where}: /${p.source}/${p.flags} ${detail}`);
  }
});
