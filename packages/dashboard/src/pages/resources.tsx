/**
 * Rules, silences, tokens, monitors, integrations and heartbeat checks: each a list with create,
 * edit (where the API has it) and delete, described once as data. The API's errors are shown
 * next to the field they name (`error.field`), others above the form.
 */
import type { ComponentChildren } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import type { HeartbeatCheck, Integration, IntegrationBody, Monitor, MonitorBody, Rule, Session, Silence, Token } from '@opspilot/hub/views';
import { BUILTIN_ACTION_CONTRACTS } from '@opspilot/protocol/catalogue';
import { api, ApiError, ago, describe, isAdmin, canExec } from '../api.ts';
import { useLive, useThrottled } from '../live.ts';
import { ErrorNote, Loading, Status } from '../components.tsx';
import { paramText } from '../components.tsx';

type Kind = 'text' | 'number' | 'select' | 'checkbox' | 'json' | 'lines' | 'datetime';
interface FieldDef {
  /** The body path, dotted for nested (`action.command`). */
  name: string;
  label: string;
  kind: Kind;
  options?: readonly string[];
  help?: string;
  required?: boolean;
  /** Set when creating only (the API cannot change it later). */
  createOnly?: boolean;
  placeholder?: string;
}
type FormValues = Record<string, string | boolean>;
interface ResourceDef<T extends { id: string }> {
  title: string;
  singular: string;
  path: string;
  listKey: string;
  /** Who may change them. */
  write: (s: Session) => boolean;
  edit: 'PUT' | 'PATCH' | null;
  fields: FieldDef[];
  columns: { label: string; cell: (r: T) => ComponentChildren }[];
  /** The form's values for a row (edit) or a new one. */
  values: (r: T | null) => FormValues;
  /** What to show once after creating (a token, a secret). */
  created?: (body: Record<string, unknown>) => ComponentChildren;
  /** A body from the built one, when the API's shape differs from the form's. */
  body?: (b: Record<string, unknown>) => Record<string, unknown>;
}

const json = (v: unknown) => (v === undefined || v === null ? '' : JSON.stringify(v));
const local = (iso: string | null | undefined) => (iso ? new Date(new Date(iso).getTime() - new Date().getTimezoneOffset() * 60_000).toISOString().slice(0, 16) : '');

/** The body from the form, or the field whose value cannot be read. */
function buildBody(fields: FieldDef[], values: FormValues): { body: Record<string, unknown> } | { field: string; message: string } {
  const body: Record<string, unknown> = {};
  for (const f of fields) {
    const raw = values[f.name];
    let v: unknown;
    if (f.kind === 'checkbox') v = raw === true;
    else if (typeof raw !== 'string' || raw.trim() === '') continue;
    else if (f.kind === 'number') {
      v = Number(raw);
      if (!Number.isFinite(v)) return { field: f.name, message: 'a number' };
    } else if (f.kind === 'json') {
      try {
        v = JSON.parse(raw);
      } catch {
        return { field: f.name, message: 'not valid JSON' };
      }
    } else if (f.kind === 'lines') v = raw.split('\n').map((l) => l.trim()).filter(Boolean);
    else if (f.kind === 'datetime') {
      const d = new Date(raw);
      if (Number.isNaN(d.getTime())) return { field: f.name, message: 'not a date and time' };
      v = d.toISOString();
    } else v = raw.trim();
    const path = f.name.split('.');
    let at = body;
    for (const p of path.slice(0, -1)) at = (at[p] ??= {}) as Record<string, unknown>;
    at[path.at(-1)!] = v;
  }
  return { body };
}

/** The field an API error concerns: the one it names, or the first inside it, or the one it is inside. */
function fieldFor(fields: FieldDef[], named: string | undefined): string | undefined {
  if (!named) return undefined;
  return fields.find((f) => f.name === named || named.startsWith(`${f.name}.`) || f.name.startsWith(`${named}.`))?.name;
}

function ResourceForm<T extends { id: string }>({ def, row, onDone, onCancel }: { def: ResourceDef<T>; row: T | null; onDone: (created: Record<string, unknown> | null) => void; onCancel: () => void }) {
  const [values, setValues] = useState<FormValues>(() => def.values(row));
  const [errors, setErrors] = useState<{ field?: string; message: string } | null>(null);
  const [busy, setBusy] = useState(false);
  const fields = row ? def.fields.filter((f) => !f.createOnly) : def.fields;
  const formId = `${def.listKey}-form`;
  const submit = async (e: Event) => {
    e.preventDefault();
    const built = buildBody(fields, values);
    if ('field' in built) return setErrors({ field: built.field, message: built.message });
    setBusy(true);
    setErrors(null);
    try {
      const body = def.body ? def.body(built.body) : built.body;
      const res = await api<Record<string, unknown>>(row ? def.edit! : 'POST', row ? `${def.path}/${row.id}` : def.path, body);
      onDone(row ? null : res);
    } catch (err) {
      const field = err instanceof ApiError ? fieldFor(fields, err.field) : undefined;
      setErrors({ ...(field ? { field } : {}), message: describe(err) });
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class="resource-form" id={formId} onSubmit={submit} aria-label={row ? `Edit ${def.singular}` : `New ${def.singular}`} noValidate>
      <h3>{row ? `Edit ${def.singular}` : `New ${def.singular}`}</h3>
      {errors && !errors.field && (
        <p role="alert" class="error">
          {errors.message}
        </p>
      )}
      {fields.map((f) => {
        const id = `${formId}-${f.name.replace(/\./g, '-')}`;
        const err = errors?.field === f.name ? errors.message : null;
        const describedBy = [f.help ? `${id}-help` : '', err ? `${id}-error` : ''].filter(Boolean).join(' ') || undefined;
        const common = { id, name: f.name, 'aria-invalid': err ? true : undefined, 'aria-describedby': describedBy };
        const str = typeof values[f.name] === 'string' ? (values[f.name] as string) : '';
        const set = (v: string | boolean) => setValues({ ...values, [f.name]: v });
        return (
          <div class={`field${err ? ' invalid' : ''}`} key={f.name}>
            {f.kind === 'checkbox' ? (
              <label class="check">
                <input type="checkbox" {...common} checked={values[f.name] === true} onChange={(e) => set((e.target as HTMLInputElement).checked)} /> {f.label}
              </label>
            ) : (
              <label for={id}>
                {f.label}
                {f.required ? <span aria-hidden="true"> *</span> : null}
              </label>
            )}
            {f.kind === 'select' ? (
              <select {...common} value={str} onChange={(e) => set((e.target as HTMLSelectElement).value)}>
                {!f.required && <option value="">–</option>}
                {f.options!.map((o) => (
                  <option value={o}>{o}</option>
                ))}
              </select>
            ) : f.kind === 'json' || f.kind === 'lines' ? (
              <textarea {...common} rows={3} placeholder={f.placeholder} value={str} onInput={(e) => set((e.target as HTMLTextAreaElement).value)} />
            ) : f.kind !== 'checkbox' ? (
              <input
                {...common}
                type={f.kind === 'number' ? 'number' : f.kind === 'datetime' ? 'datetime-local' : 'text'}
                required={f.required}
                placeholder={f.placeholder}
                autocomplete="off"
                value={str}
                onInput={(e) => set((e.target as HTMLInputElement).value)}
              />
            ) : null}
            {f.help && (
              <p id={`${id}-help`} class="muted small">
                {f.help}
              </p>
            )}
            {err && (
              <p id={`${id}-error`} class="error small" role="alert">
                {err}
              </p>
            )}
          </div>
        );
      })}
      <div class="actions">
        <button type="submit" disabled={busy}>
          {row ? 'Save' : 'Create'}
        </button>
        <button type="button" class="secondary" onClick={onCancel}>
          Cancel
        </button>
      </div>
    </form>
  );
}

function ResourcePage<T extends { id: string }>({ def, session }: { def: ResourceDef<T>; session: Session }) {
  const [rows, setRows] = useState<T[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [editing, setEditing] = useState<T | 'new' | null>(null);
  const [shown, setShown] = useState<ComponentChildren>(null);
  const [deleting, setDeleting] = useState<string | null>(null);
  const load = () =>
    api<Record<string, T[]>>('GET', def.path).then(
      (r) => setRows(r[def.listKey] ?? []),
      (err) => setError(describe(err)),
    );
  useEffect(() => {
    setRows(null);
    setEditing(null);
    setShown(null);
    void load();
  }, [def.path]);
  const reload = useThrottled(() => void load(), 1000);
  useLive((e) => {
    if (e === 'resync' || e.group === 'config' || e.group === 'monitor') reload();
  });
  const canWrite = def.write(session);
  const remove = async (id: string) => {
    setError(null);
    try {
      await api('DELETE', `${def.path}/${id}`);
      setDeleting(null);
      await load();
    } catch (err) {
      setError(describe(err));
    }
  };
  return (
    <section aria-labelledby={`${def.listKey}-title`}>
      <div class="bar">
        <h2 id={`${def.listKey}-title`}>{def.title}</h2>
        {canWrite && editing === null && (
          <button type="button" onClick={() => (setEditing('new'), setShown(null))}>
            New {def.singular}
          </button>
        )}
      </div>
      <ErrorNote error={error} />
      {shown && (
        <div class="notice" role="status">
          {shown}
        </div>
      )}
      {editing !== null && (
        <ResourceForm
          key={editing === 'new' ? 'new' : editing.id}
          def={def}
          row={editing === 'new' ? null : editing}
          onCancel={() => setEditing(null)}
          onDone={(created) => {
            setEditing(null);
            if (created && def.created) setShown(def.created(created));
            void load();
          }}
        />
      )}
      {rows === null ? (
        <Loading />
      ) : rows.length === 0 ? (
        <p>None yet.</p>
      ) : (
        <table class="list">
          <thead>
            <tr>
              {def.columns.map((c) => (
                <th scope="col">{c.label}</th>
              ))}
              {canWrite && (
                <th scope="col">
                  <span class="sr-only">Changes</span>
                </th>
              )}
            </tr>
          </thead>
          <tbody>
            {rows.map((r) => (
              <tr key={r.id} data-row={r.id}>
                {def.columns.map((c) => (
                  <td class="wrap">{c.cell(r)}</td>
                ))}
                {canWrite && (
                  <td class="row-actions">
                    {def.edit && (
                      <button type="button" class="secondary" onClick={() => (setEditing(r), setShown(null))}>
                        Edit<span class="sr-only"> {String((r as { name?: string }).name ?? r.id)}</span>
                      </button>
                    )}
                    {deleting === r.id ? (
                      <>
                        <button type="button" class="danger" onClick={() => void remove(r.id)}>
                          Confirm delete
                        </button>
                        <button type="button" class="secondary" onClick={() => setDeleting(null)}>
                          Keep
                        </button>
                      </>
                    ) : (
                      <button type="button" class="secondary" onClick={() => setDeleting(r.id)}>
                        Delete<span class="sr-only"> {String((r as { name?: string }).name ?? r.id)}</span>
                      </button>
                    )}
                  </td>
                )}
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

const ACTIONS = Object.keys(BUILTIN_ACTION_CONTRACTS);
const matchText = (m: Record<string, unknown>) =>
  Object.entries(m)
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');

const RULES: ResourceDef<Rule> = {
  title: 'Remediation rules',
  singular: 'rule',
  path: '/v1/rules',
  listKey: 'rules',
  write: isAdmin,
  edit: 'PUT',
  fields: [
    { name: 'name', label: 'Name', kind: 'text', required: true, placeholder: 'restart-nginx' },
    { name: 'match', label: 'Match', kind: 'json', required: true, placeholder: '{"source": "nginx*", "severity": "high"}', help: 'type, source (glob), severity, category, agent_id, integration_id, service (glob), labels' },
    { name: 'action.command', label: 'Action', kind: 'select', options: ACTIONS, required: true },
    { name: 'action.params', label: 'Parameters', kind: 'json', placeholder: '{"service": "{{source}}"}' },
    { name: 'mode', label: 'Mode', kind: 'select', options: ['approve', 'auto'], required: true, help: 'approve: a person says yes first; auto: it runs at once' },
    { name: 'cooldown_s', label: 'Cooldown (s)', kind: 'number' },
    { name: 'max_per_hour', label: 'At most per hour', kind: 'number' },
    { name: 'verify_s', label: 'Verify after (s)', kind: 'number' },
    { name: 'enabled', label: 'Enabled', kind: 'checkbox' },
  ],
  columns: [
    { label: 'Name', cell: (r) => r.name },
    { label: 'Match', cell: (r) => matchText(r.match) },
    { label: 'Action', cell: (r) => `${r.action.command} ${paramText(r.action.params)}` },
    { label: 'Mode', cell: (r) => r.mode },
    { label: 'State', cell: (r) => (!r.enabled ? 'disabled' : r.suspended_at ? `suspended: ${r.suspended_reason ?? ''}` : 'enabled') },
  ],
  values: (r) => ({
    name: r?.name ?? '',
    match: r ? json(r.match) : '',
    'action.command': r?.action.command ?? 'restart_service',
    'action.params': r ? json(r.action.params) : '',
    mode: r?.mode ?? 'approve',
    cooldown_s: String(r?.cooldown_s ?? 600),
    max_per_hour: String(r?.max_per_hour ?? 3),
    verify_s: String(r?.verify_s ?? 120),
    enabled: r?.enabled ?? true,
  }),
};

const SILENCES: ResourceDef<Silence> = {
  title: 'Silences',
  singular: 'silence',
  path: '/v1/silences',
  listKey: 'silences',
  write: canExec,
  edit: null,
  fields: [
    { name: 'match', label: 'Match', kind: 'json', required: true, placeholder: '{"agent_id": "…"} or {"service": "backup*"}' },
    { name: 'reason', label: 'Reason', kind: 'text', required: true },
    { name: 'ends_at', label: 'Ends', kind: 'datetime', help: 'a one-off silence; or give a cron and a duration for a recurring one' },
    { name: 'cron', label: 'Recurring (cron, UTC)', kind: 'text', placeholder: '0 2 * * *' },
    { name: 'duration_s', label: 'Window (s)', kind: 'number' },
  ],
  columns: [
    { label: 'Match', cell: (r) => matchText(r.match) },
    { label: 'Reason', cell: (r) => r.reason },
    { label: 'When', cell: (r) => (r.cron ? `${r.cron} for ${r.duration_s ?? 0} s` : `until ${r.ends_at ? new Date(r.ends_at).toLocaleString() : '–'}`) },
    { label: 'By', cell: (r) => r.created_by },
  ],
  values: () => ({ match: '', reason: '', ends_at: local(new Date(Date.now() + 3600_000).toISOString()), cron: '', duration_s: '' }),
};

const TOKENS: ResourceDef<Token> = {
  title: 'API tokens',
  singular: 'token',
  path: '/v1/tokens',
  listKey: 'tokens',
  write: isAdmin,
  edit: null,
  fields: [
    { name: 'name', label: 'Name', kind: 'text', required: true, placeholder: 'grafana' },
    { name: 'scope', label: 'Scope', kind: 'select', options: ['read', 'exec', 'admin'], required: true, help: 'read sees; exec also acts on incidents and runs actions; admin also changes rules, tokens and agents' },
  ],
  body: ({ scope, ...rest }) => ({ ...rest, scopes: [scope] }),
  columns: [
    { label: 'Name', cell: (r) => r.name },
    { label: 'Scopes', cell: (r) => r.scopes.join(', ') },
    { label: 'Last used', cell: (r) => ago(r.last_used_at) },
    { label: 'By', cell: (r) => r.created_by },
  ],
  values: () => ({ name: '', scope: 'read' }),
  created: (b) => (
    <>
      <p>
        Token <strong>{String(b.name)}</strong> (shown once; only its hash is kept):
      </p>
      <pre tabIndex={0}>{String(b.token)}</pre>
    </>
  ),
};

// Checked against the hub's body types both ways: a kind added there fails to compile here.
const MONITOR_KINDS = ['http', 'tcp', 'tls', 'dns'] as const satisfies readonly MonitorBody['kind'][];
export const ALL_MONITOR_KINDS: [Exclude<MonitorBody['kind'], (typeof MONITOR_KINDS)[number]>] extends [never] ? true : never = true;
const MONITORS: ResourceDef<Monitor> = {
  title: 'Monitors',
  singular: 'monitor',
  path: '/v1/monitors',
  listKey: 'monitors',
  write: isAdmin,
  edit: 'PATCH',
  fields: [
    { name: 'name', label: 'Name', kind: 'text', required: true },
    { name: 'kind', label: 'Kind', kind: 'select', options: MONITOR_KINDS, required: true },
    { name: 'target', label: 'Target', kind: 'text', required: true, placeholder: 'https://example.com/health, db:5432, example.com' },
    { name: 'interval_s', label: 'Every (s)', kind: 'number' },
    { name: 'timeout_ms', label: 'Timeout (ms)', kind: 'number' },
    { name: 'run_on', label: 'Run on', kind: 'json', placeholder: '"hub" or {"labels": {"region": "eu"}}' },
    { name: 'conditions', label: 'Conditions (one per line)', kind: 'lines', placeholder: '[STATUS] == 200' },
    { name: 'enabled', label: 'Enabled', kind: 'checkbox' },
  ],
  columns: [
    { label: 'Name', cell: (r) => r.name },
    { label: 'Status', cell: (r) => <Status status={r.status} /> },
    { label: 'Target', cell: (r) => `${r.kind} ${r.target}` },
    { label: 'Every', cell: (r) => `${r.interval_s} s` },
    { label: 'Uptime 24 h', cell: (r) => (r.uptime?.['24h'].uptime_pct != null ? `${r.uptime['24h'].uptime_pct.toFixed(2)} %` : '–') },
  ],
  values: (r) => ({
    name: r?.name ?? '',
    kind: r?.kind ?? 'http',
    target: r?.target ?? '',
    interval_s: String(r?.interval_s ?? 60),
    timeout_ms: String(r?.timeout_ms ?? 10_000),
    run_on: r ? json(r.run_on) : '"hub"',
    conditions: r ? r.conditions.join('\n') : '',
    enabled: r?.enabled ?? true,
  }),
};

const INTEGRATION_KINDS = ['alertmanager', 'grafana', 'sentry', 'pagerduty', 'error_report', 'generic'] as const satisfies readonly IntegrationBody['kind'][];
export const ALL_INTEGRATION_KINDS: [Exclude<IntegrationBody['kind'], (typeof INTEGRATION_KINDS)[number]>] extends [never] ? true : never = true;
const INTEGRATIONS: ResourceDef<Integration> = {
  title: 'Integrations',
  singular: 'integration',
  path: '/v1/integrations',
  listKey: 'integrations',
  write: isAdmin,
  edit: 'PATCH',
  fields: [
    { name: 'name', label: 'Name', kind: 'text', required: true, placeholder: 'prometheus' },
    { name: 'kind', label: 'Sends', kind: 'select', options: INTEGRATION_KINDS, required: true, createOnly: true },
    { name: 'labels', label: 'Labels added to its alerts', kind: 'json', placeholder: '{"team": "payments"}' },
    { name: 'enabled', label: 'Enabled', kind: 'checkbox' },
  ],
  columns: [
    { label: 'Name', cell: (r) => r.name },
    { label: 'Kind', cell: (r) => r.kind },
    { label: 'Receives at', cell: (r) => <code>{r.url_path}</code> },
    { label: 'Last delivery', cell: (r) => (r.last_error ? `error: ${r.last_error}` : ago(r.last_delivery_at)) },
    { label: 'State', cell: (r) => (r.enabled ? 'enabled' : 'disabled') },
  ],
  values: (r) => ({ name: r?.name ?? '', kind: r?.kind ?? 'alertmanager', labels: r ? json(r.labels) : '', enabled: r?.enabled ?? true }),
  created: (b) => (
    <>
      <p>
        Integration <strong>{String(b.name)}</strong> receives at <code>{String(b.url_path)}</code>. Its secret (shown once):
      </p>
      <pre tabIndex={0}>{String(b.secret)}</pre>
    </>
  ),
};

const HEARTBEATS: ResourceDef<HeartbeatCheck> = {
  title: 'Heartbeat checks',
  singular: 'check',
  path: '/v1/heartbeats',
  listKey: 'heartbeats',
  write: isAdmin,
  edit: 'PATCH',
  fields: [
    { name: 'name', label: 'Name', kind: 'text', required: true, placeholder: 'nightly-backup' },
    { name: 'period_s', label: 'Expected every (s)', kind: 'number' },
    { name: 'cron', label: 'Or on a schedule (cron)', kind: 'text', placeholder: '0 3 * * *' },
    { name: 'grace_s', label: 'Grace (s)', kind: 'number' },
    { name: 'service', label: 'Service', kind: 'text' },
  ],
  columns: [
    { label: 'Name', cell: (r) => r.name },
    { label: 'Status', cell: (r) => <Status status={r.status} /> },
    { label: 'Expected', cell: (r) => (r.cron ? r.cron : `every ${r.period_s ?? '?'} s`) },
    { label: 'Last ping', cell: (r) => ago(r.last_ping_at) },
  ],
  values: (r) => ({ name: r?.name ?? '', period_s: r?.period_s != null ? String(r.period_s) : '', cron: r?.cron ?? '', grace_s: r ? String(r.grace_s) : '', service: r?.service ?? '' }),
  created: (b) => (
    <p>
      Ping it at <code>{String(b.ping_path)}</code> (after the hub's address) when the job succeeds.
    </p>
  ),
};

export const RESOURCES = { rules: RULES, silences: SILENCES, tokens: TOKENS, monitors: MONITORS, integrations: INTEGRATIONS, heartbeats: HEARTBEATS } as const;
export type ResourceName = keyof typeof RESOURCES;

export function Resource({ name, session }: { name: ResourceName; session: Session }) {
  const def = RESOURCES[name] as unknown as ResourceDef<{ id: string }>;
  return <ResourcePage key={name} def={def} session={session} />;
}
