import { missingParams, paramProblem, paramsProblem } from '../exec/actions.ts';

/**
 * Incident fields a rule's params may name: `{"service": "{{source}}"}`. `unit` is the systemd
 * unit the incident is about (an agent's systemd alert's source, or the unit an integration's
 * alert names: see unitOf); `service` the service an integration's alert names.
 */
export const TEMPLATE_FIELDS = ['source', 'type', 'agent_id', 'hostname', 'incident_id', 'severity', 'category', 'unit', 'service'] as const;
export type TemplateField = (typeof TEMPLATE_FIELDS)[number];
const WHOLE = /^\{\{\s*([a-z_]+)\s*\}\}$/;

type Params = Record<string, string | number | boolean>;

/**
 * Why a rule's action cannot be accepted, or null. Templates are whole values only (a value is
 * `{{field}}` or has no braces at all): a template inside a longer string could build arguments
 * nobody reviewed. Literal params of built-in actions are checked now; templated ones when they
 * are filled in.
 */
export function actionProblem(command: string, params: Params): string | null {
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(command)) return `"${command.slice(0, 64)}" is not an action name`;
  for (const [k, v] of Object.entries(params)) {
    if (typeof v !== 'string' || !v.includes('{{')) {
      const problem = paramProblem(command, k, v);
      if (problem) return problem;
      continue;
    }
    const m = WHOLE.exec(v);
    if (!m) return `param ${k}: a template must be the whole value, like "{{source}}"`;
    if (!(TEMPLATE_FIELDS as readonly string[]).includes(m[1]!)) return `param ${k}: {{${m[1]}}} is not one of ${TEMPLATE_FIELDS.join(', ')}`;
    const problem = paramProblem(command, k, undefined);
    if (problem) return problem;
  }
  return missingParams(command, Object.keys(params));
}

/**
 * Fill the templates from the incident, each as one whole value, and check the result against
 * the action's rules. Returns the params, or why they cannot be used.
 */
export function fillParams(command: string, params: Params, fields: Record<TemplateField, string | null>): { params: Params } | { problem: string } {
  const out: Params = {};
  for (const [k, v] of Object.entries(params)) {
    const m = typeof v === 'string' ? WHOLE.exec(v) : null;
    if (!m) {
      out[k] = v;
      continue;
    }
    const value = fields[m[1] as TemplateField];
    if (value === null || value === undefined) return { problem: `param ${k}: the incident has no ${m[1]}` };
    out[k] = value;
  }
  const problem = paramsProblem(command, out);
  return problem ? { problem } : { params: out };
}
