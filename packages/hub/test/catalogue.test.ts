// The built-in action catalogue is defined once, in the protocol package: the hub (REST, Slack,
// remediation rules) and the agent check parameters with the same rules, so what the hub lets
// through is what the agent runs, and the reverse.
import t from 'tap';
import { BUILTIN_ACTION_CONTRACTS, READ_ONLY_ACTIONS, type ExecParams } from '@opspilot/protocol';
import { BUILTIN_ACTIONS, buildArgv } from '@opspilot/agent';
import { paramsProblem } from '../src/exec/actions.ts';
import { actionProblem } from '../src/remediation/params.ts';

t.test('the agent runs exactly the actions of the contract, with its parameter rules', async (t) => {
  t.same(Object.keys(BUILTIN_ACTIONS).sort(), Object.keys(BUILTIN_ACTION_CONTRACTS).sort());
  for (const [name, contract] of Object.entries(BUILTIN_ACTION_CONTRACTS)) t.equal(BUILTIN_ACTIONS[name]!.params, contract.params, name);
  t.same([...READ_ONLY_ACTIONS].sort(), ['disk_usage', 'service_logs', 'service_status', 'top_processes']);
});

t.test('the hub accepts a built-in request exactly when the agent would run it', async (t) => {
  const cases: [string, ExecParams][] = [
    ['restart_service', { service: 'nginx.service' }],
    ['restart_service', {}],
    ['restart_service', { service: '-nginx' }],
    ['restart_service', { service: 'nginx; reboot' }],
    ['restart_service', { service: 'a'.repeat(201) }],
    ['restart_service', { service: 'nginx', extra: 'x' }],
    ['restart_service', { service: 5 }],
    ['service_logs', { service: 'api' }],
    ['service_logs', { service: 'api', lines: 1000 }],
    ['service_logs', { service: 'api', lines: 1001 }],
    ['service_logs', { service: 'api', lines: 0 }],
    ['service_logs', { service: 'api', lines: 2.5 }],
    ['service_logs', { service: 'api', lines: '50' }],
    ['top_processes', {}],
    ['top_processes', { limit: -5 }],
    ['top_processes', { limit: true }],
    ['disk_usage', {}],
    ['disk_usage', { path: '/' }],
    ['service_status', { service: 'sshd.service' }],
    ['stop_service', { service: 'user@1000.service' }],
  ];
  for (const [command, params] of cases) {
    let agentRuns = true;
    try {
      buildArgv(BUILTIN_ACTIONS[command]!, params);
    } catch {
      agentRuns = false;
    }
    t.equal(paramsProblem(command, params) === null, agentRuns, `${command} ${JSON.stringify(params)}: the hub and the agent agree`);
  }
});

t.test('remediation rules are checked against the same contract, templates filled in later', async (t) => {
  t.equal(actionProblem('restart_service', { service: '{{source}}' }), null);
  t.match(actionProblem('restart_service', {}), /parameter "service" is required/);
  t.match(actionProblem('restart_service', { unit: '{{source}}' }), /unknown parameter "unit"/);
  t.match(actionProblem('service_logs', { service: '{{source}}', lines: 5000 }), /"lines" must be from 1 to 1000/);
  t.equal(actionProblem('flush_cache', { region: 'eu-west-1' }), null, "an operator action's params are the agent's to check");
});
