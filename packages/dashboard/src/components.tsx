/** Pieces several pages use: severity and status badges, errors, exec results, the action form. */
import { useState } from 'preact/hooks';
import { BUILTIN_ACTION_CONTRACTS, type ParamSpec } from '@opspilot/protocol/catalogue';
import type { Agent, Exec } from '@opspilot/hub/views';
import { api, ApiError, describe } from './api.ts';

export function Sev({ severity }: { severity: string | null }) {
  return <span class={`sev sev-${severity ?? 'none'}`}>{severity ?? '–'}</span>;
}

export function Status({ status }: { status: string }) {
  return (
    <span class={`status status-${status}`} data-status>
      {status}
    </span>
  );
}

export function ErrorNote({ error }: { error: string | null }) {
  return error ? (
    <p role="alert" class="error">
      {error}
    </p>
  ) : null;
}

export function Loading() {
  return <p aria-busy="true">Loading…</p>;
}

/** Exec requests and their output, newest first. */
export function ExecList({ execs }: { execs: Exec[] }) {
  if (execs.length === 0) return <p class="muted">No actions run yet.</p>;
  return (
    <ul class="execs">
      {execs.map((e) => (
        <li key={e.id} data-exec={e.id}>
          <div>
            <strong>{e.command}</strong> {paramText(e.params)} · <span class={`exec-${e.status}`}>{e.status}</span>
            {e.exit_code !== null ? ` (exit ${e.exit_code})` : ''}
            {e.error_code ? ` ${e.error_code}` : ''} · {e.requested_by} · <time dateTime={e.created_at}>{new Date(e.created_at).toLocaleString()}</time>
          </div>
          {e.stdout ? (
            <pre tabIndex={0} aria-label={`output of ${e.command}`}>
              {e.stdout}
            </pre>
          ) : null}
          {e.stderr ? (
            <pre tabIndex={0} class="stderr" aria-label={`errors of ${e.command}`}>
              {e.stderr}
            </pre>
          ) : null}
        </li>
      ))}
    </ul>
  );
}

export const paramText = (p: Record<string, unknown>) =>
  Object.entries(p)
    .map(([k, v]) => `${k}=${String(v)}`)
    .join(' ');

type Params = Record<string, string | number | boolean>;

/**
 * Run an action from the agent's catalogue: typed fields for the built-in actions (from the
 * catalogue both hub and agent check against), `key=value` lines for an operator's own; an
 * action that may change the host asks for confirmation first.
 */
export function ActionForm({ agent, incidentId, preset, onRan }: { agent: Agent; incidentId?: string; preset?: { command: string; params: Params }; onRan: (e: Exec) => void }) {
  const offered = agent.actions ?? Object.keys(BUILTIN_ACTION_CONTRACTS);
  const [command, setCommand] = useState(preset?.command && offered.includes(preset.command) ? preset.command : (offered[0] ?? ''));
  const [values, setValues] = useState<Record<string, string>>(() => stringify(preset?.command === command ? preset.params : {}));
  const [free, setFree] = useState('');
  const [confirming, setConfirming] = useState<Params | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<{ text: string; field?: string } | null>(null);
  const contract = BUILTIN_ACTION_CONTRACTS[command];
  const changesHost = !contract?.readOnly;
  const idp = `act-${agent.id}`;

  const collect = (): Params | string => {
    if (!contract) {
      const out: Params = {};
      for (const line of free.split('\n').map((l) => l.trim()).filter(Boolean)) {
        const at = line.indexOf('=');
        if (at < 1) return `"${line.slice(0, 40)}" is not key=value`;
        out[line.slice(0, at)] = line.slice(at + 1);
      }
      return out;
    }
    const out: Params = {};
    for (const [name, spec] of Object.entries(contract.params)) {
      const raw = values[name] ?? '';
      if (spec.type === 'boolean') out[name] = raw === 'true';
      else if (raw === '') continue;
      else if (spec.type === 'integer') {
        const n = Number(raw);
        if (!Number.isInteger(n)) return `${name}: a whole number`;
        out[name] = n;
      } else out[name] = raw;
    }
    return out;
  };

  const run = async (params: Params) => {
    setBusy(true);
    setError(null);
    try {
      const e = await api<Exec>('POST', '/v1/admin/exec', { agent_id: agent.id, command, params, ...(incidentId ? { incident_id: incidentId } : {}) });
      onRan(e);
    } catch (err) {
      setError({ text: describe(err), ...(err instanceof ApiError && err.field ? { field: err.field } : {}) });
    } finally {
      setBusy(false);
      setConfirming(null);
    }
  };

  const submit = (ev: Event) => {
    ev.preventDefault();
    const params = collect();
    if (typeof params === 'string') return setError({ text: params });
    if (changesHost) setConfirming(params);
    else void run(params);
  };

  if (offered.length === 0) return <p class="muted">This agent offers no actions.</p>;
  return (
    <form class="action-form" onSubmit={submit} aria-label={`Run an action on ${agent.hostname ?? agent.id}`}>
      <label for={`${idp}-command`}>Action</label>
      <select
        id={`${idp}-command`}
        value={command}
        onChange={(e) => {
          setCommand((e.target as HTMLSelectElement).value);
          setValues({});
          setConfirming(null);
        }}
      >
        {offered.map((a) => (
          <option value={a}>
            {a}
            {BUILTIN_ACTION_CONTRACTS[a]?.readOnly ? ' (reads only)' : ''}
          </option>
        ))}
      </select>
      {contract ? (
        Object.entries(contract.params).map(([name, spec]) => (
          <ParamField key={`${command}-${name}`} id={`${idp}-${name}`} name={name} spec={spec} value={values[name] ?? ''} onChange={(v) => setValues({ ...values, [name]: v })} />
        ))
      ) : (
        <>
          <label for={`${idp}-free`}>Parameters (one key=value per line)</label>
          <textarea id={`${idp}-free`} rows={3} value={free} onInput={(e) => setFree((e.target as HTMLTextAreaElement).value)} />
        </>
      )}
      {confirming ? (
        <div class="confirm" role="group" aria-label="Confirm">
          <p>
            <strong>{command}</strong> {paramText(confirming)} may change <strong>{agent.hostname ?? agent.id}</strong>. Run it?
          </p>
          <button type="button" disabled={busy} onClick={() => void run(confirming)}>
            Confirm: run {command}
          </button>{' '}
          <button type="button" class="secondary" onClick={() => setConfirming(null)}>
            Cancel
          </button>
        </div>
      ) : (
        <button type="submit" disabled={busy}>
          {busy ? 'Running…' : `Run ${command}`}
        </button>
      )}
      {error && (
        <p role="alert" class="error">
          {error.field ? `${error.field}: ` : ''}
          {error.text}
        </p>
      )}
    </form>
  );
}

function stringify(p: Params): Record<string, string> {
  return Object.fromEntries(Object.entries(p).map(([k, v]) => [k, String(v)]));
}

function ParamField({ id, name, spec, value, onChange }: { id: string; name: string; spec: ParamSpec; value: string; onChange: (v: string) => void }) {
  const hint = spec.type === 'integer' ? `${spec.min}–${spec.max}${spec.default !== undefined ? `, default ${spec.default}` : ''}` : spec.default !== undefined ? `default ${String(spec.default)}` : spec.required ? 'required' : '';
  if (spec.type === 'boolean') {
    return (
      <label class="check">
        <input id={id} type="checkbox" checked={value === 'true'} onChange={(e) => onChange((e.target as HTMLInputElement).checked ? 'true' : 'false')} /> {name}
      </label>
    );
  }
  return (
    <>
      <label for={id}>
        {name} {hint && <span class="muted">({hint})</span>}
      </label>
      <input
        id={id}
        name={name}
        type={spec.type === 'integer' ? 'number' : 'text'}
        {...(spec.type === 'integer' ? { min: spec.min, max: spec.max, step: 1 } : { maxLength: spec.maxLength ?? 4096 })}
        required={spec.required === true}
        autocomplete="off"
        value={value}
        onInput={(e) => onChange((e.target as HTMLInputElement).value)}
      />
    </>
  );
}
