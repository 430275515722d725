import t from 'tap';
import { BUILTIN_ACTIONS } from '@opspilot/agent';
import { NO_RESTART_RULES, heuristicAnalysis, type AnalysisInput } from '../src/incidents/heuristics.ts';

const FULL = Object.keys(BUILTIN_ACTIONS);
const unit = (rule: string | null, message = 'failed'): AnalysisInput => ({ type: 'systemd', source: 'nginx.service', message, rule, exit_code: 1 });

t.test('each known cause gets its explanation and a safe first step', async (t) => {
  const cases: [string, string | null][] = [
    ['address_in_use', 'service_status'],
    ['permission_denied', 'service_logs'],
    ['oom_kill', 'restart_service'],
    ['disk_full', 'disk_usage'],
    ['config_syntax_error', 'service_logs'],
    ['dependency_failed', 'service_status'],
  ];
  for (const [rule, command] of cases) {
    const a = heuristicAnalysis(unit(rule), FULL);
    t.equal(a.source, 'heuristic');
    t.equal(a.suggested_action?.command ?? null, command, rule);
    t.ok(a.confidence > 0.5 && a.confidence <= 1, `${rule}: confident`);
    t.ok(a.root_cause.length > 20 && a.rationale.length > 20);
  }
});

t.test('restarts are never suggested where they cannot help', async (t) => {
  for (const rule of NO_RESTART_RULES) {
    for (const catalogue of [FULL, ['restart_service'], null]) {
      t.not(heuristicAnalysis(unit(rule), catalogue).suggested_action?.command, 'restart_service', `${rule} with ${JSON.stringify(catalogue)}`);
    }
  }
  t.ok(NO_RESTART_RULES.has('config_syntax_error'));
});

t.test('only actions the agent offers, with valid parameters', async (t) => {
  t.equal(heuristicAnalysis(unit('oom_kill'), ['top_processes']).suggested_action?.command, 'top_processes', 'falls back to the next offered one');
  t.equal(heuristicAnalysis(unit('oom_kill'), []).suggested_action, null, 'nothing offered, nothing suggested');
  t.same(heuristicAnalysis(unit('address_in_use'), FULL).suggested_action?.params, { service: 'nginx.service' });
  const hostile: AnalysisInput = { type: 'systemd', source: '-H attacker', message: 'x', rule: 'oom_kill', exit_code: 1 };
  t.equal(heuristicAnalysis(hostile, FULL).suggested_action?.command, 'top_processes', 'an unsafe unit name is never a parameter');
  t.equal(heuristicAnalysis({ type: 'log', source: '/var/log/app.log', message: 'x', rule: 'config_syntax_error', exit_code: null }, FULL).suggested_action, null, 'no unit, no unit action');
});

t.test('unknown causes get a cautious read-only step', async (t) => {
  const a = heuristicAnalysis(unit('unclassified'), FULL);
  t.match(a, { confidence: 0.2, risk: 'low', suggested_action: { command: 'service_logs' } });
  t.equal(heuristicAnalysis({ type: 'host', source: 'cpu', message: 'CPU at 97%', rule: 'host_threshold', exit_code: null }, FULL).suggested_action?.command, 'top_processes');
  t.equal(heuristicAnalysis({ type: 'log', source: '/x', message: 'y', rule: null, exit_code: null }, FULL).suggested_action, null);
});
