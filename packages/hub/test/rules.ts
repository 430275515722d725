/** A remediation rule the remediation and autonomy suites share (a module, so neither suite imports the other). */
export const RULE = {
  name: 'restart-api',
  match: { type: 'systemd', source: 'api*.service' },
  action: { command: 'restart_service', params: { service: '{{source}}' } },
  mode: 'auto',
  cooldown_s: 600,
  max_per_hour: 3,
  verify_s: 60,
};
