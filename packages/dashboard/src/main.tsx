/**
 * The dashboard: sign in with a token (exchanged for an HttpOnly session cookie), the incident
 * list kept live by the event stream, an incident with its analysis and timeline, and the actions
 * the session's scope allows. Preact (3 KB) for a small, fast bundle; no other runtime library.
 */
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';

interface Session {
  actor: string;
  scope: 'read' | 'exec' | 'admin';
  csrf_token: string;
}
interface Incident {
  id: string;
  status: string;
  severity: string | null;
  type: string;
  source: string;
  message: string;
  count: number;
  last_seen_at: string;
  agent_id: string | null;
  service: string | null;
}

class ApiError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

let csrf = '';
async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const res = await fetch(path, {
    method,
    credentials: 'same-origin',
    headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...(method !== 'GET' && csrf ? { 'x-csrf-token': csrf } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  const parsed = text ? JSON.parse(text) : null;
  if (!res.ok) throw new ApiError(parsed?.error?.code ?? `HTTP_${res.status}`, parsed?.error?.message ?? res.statusText, res.status);
  return parsed as T;
}

const canAct = (s: Session) => s.scope === 'exec' || s.scope === 'admin';

function SignIn({ onSignedIn }: { onSignedIn: (s: Session) => void }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState<string | null>(null);
  const submit = async (e: Event) => {
    e.preventDefault();
    setError(null);
    try {
      const s = await api<Session>('POST', '/v1/sessions', { token });
      csrf = s.csrf_token;
      onSignedIn(s);
    } catch (err) {
      setError(err instanceof ApiError ? `${err.code}: ${err.message}` : String(err));
    }
  };
  return (
    <main class="signin">
      <h1>OpsPilot</h1>
      <form onSubmit={submit} aria-describedby={error ? 'signin-error' : undefined}>
        <label for="token">API token</label>
        <input id="token" name="token" type="password" autocomplete="off" required value={token} onInput={(e) => setToken((e.target as HTMLInputElement).value)} />
        <button type="submit">Sign in</button>
        {error && (
          <p id="signin-error" role="alert" class="error">
            {error}
          </p>
        )}
      </form>
    </main>
  );
}

function IncidentList({ onOpen }: { onOpen: (id: string) => void }) {
  const [incidents, setIncidents] = useState<Incident[] | null>(null);
  const [status, setStatus] = useState('');
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    let gone = false;
    api<{ incidents: Incident[] }>('GET', `/v1/incidents?limit=200${status ? `&status=${status}` : ''}`).then(
      (r) => !gone && setIncidents(r.incidents),
      (err: Error) => setError(err.message),
    );
    // Live: every incident event carries the incident as it is now.
    const stream = new EventSource('/v1/events?types=incident,analysis');
    stream.addEventListener('incident', (m) => update(m as MessageEvent));
    stream.addEventListener('analysis', (m) => update(m as MessageEvent));
    function update(m: MessageEvent) {
      const e = JSON.parse(m.data) as { incident: (Partial<Incident> & { id: string }) | null };
      if (!e.incident) return;
      const changed = e.incident;
      setIncidents((list) => {
        if (!list) return list;
        const i = list.findIndex((x) => x.id === changed.id);
        const merged = { ...(i >= 0 ? list[i] : { source: '', agent_id: null, last_seen_at: new Date().toISOString() }), ...changed } as Incident;
        if (status && merged.status !== status) return list.filter((x) => x.id !== changed.id);
        return i >= 0 ? list.map((x, j) => (j === i ? merged : x)) : [merged, ...list];
      });
    }
    return () => {
      gone = true;
      stream.close();
    };
  }, [status]);
  return (
    <section aria-labelledby="incidents-title">
      <div class="bar">
        <h2 id="incidents-title">Incidents</h2>
        <label>
          Status{' '}
          <select value={status} onChange={(e) => setStatus((e.target as HTMLSelectElement).value)}>
            <option value="">any</option>
            {['new', 'analyzing', 'open', 'acknowledged', 'ignored', 'resolved'].map((s) => (
              <option value={s}>{s}</option>
            ))}
          </select>
        </label>
      </div>
      {error && <p role="alert" class="error">{error}</p>}
      {incidents === null ? (
        <p>Loading…</p>
      ) : incidents.length === 0 ? (
        <p>No incidents.</p>
      ) : (
        <table aria-live="polite">
          <thead>
            <tr>
              <th scope="col">Severity</th>
              <th scope="col">Status</th>
              <th scope="col">Incident</th>
              <th scope="col">Count</th>
            </tr>
          </thead>
          <tbody>
            {incidents.map((i) => (
              <tr key={i.id} data-incident={i.id}>
                <td class={`sev sev-${i.severity ?? 'none'}`}>{i.severity ?? '–'}</td>
                <td>{i.status}</td>
                <td>
                  <a
                    href={`#/incidents/${i.id}`}
                    onClick={(e) => {
                      e.preventDefault();
                      onOpen(i.id);
                    }}
                  >
                    {i.message}
                  </a>
                </td>
                <td>{i.count}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

function IncidentPage({ id, session, onBack }: { id: string; session: Session; onBack: () => void }) {
  const [incident, setIncident] = useState<any>(null);
  const [timeline, setTimeline] = useState<any[]>([]);
  const [error, setError] = useState<string | null>(null);
  const load = () =>
    Promise.all([api<any>('GET', `/v1/incidents/${id}`), api<{ events: any[] }>('GET', `/v1/incidents/${id}/timeline`)]).then(
      ([i, t]) => {
        setIncident(i);
        setTimeline(t.events);
      },
      (err: Error) => setError(err.message),
    );
  useEffect(() => {
    void load();
    const stream = new EventSource(`/v1/events?incident_id=${encodeURIComponent(id)}`);
    stream.onmessage = () => void load();
    for (const g of ['incident', 'analysis', 'exec', 'remediation']) stream.addEventListener(g, () => void load());
    return () => stream.close();
  }, [id]);
  const act = async (what: 'acknowledge' | 'resolve') => {
    setError(null);
    try {
      await api('POST', `/v1/incidents/${id}/${what}`, {});
      await load();
    } catch (err) {
      setError(err instanceof ApiError ? `${err.code}: ${err.message}` : String(err));
    }
  };
  if (!incident) return <p>{error ?? 'Loading…'}</p>;
  const a = incident.analysis;
  return (
    <article aria-labelledby="incident-title">
      <button type="button" class="link" onClick={onBack}>
        ← Incidents
      </button>
      <h2 id="incident-title">{incident.message}</h2>
      <p>
        <span class={`sev sev-${incident.severity ?? 'none'}`}>{incident.severity ?? '–'}</span> · <span data-status>{incident.status}</span> · {incident.type} {incident.source} · ×{incident.count}
      </p>
      {canAct(session) && incident.status !== 'resolved' && (
        <div class="actions">
          {incident.status !== 'acknowledged' && (
            <button type="button" onClick={() => act('acknowledge')}>
              Acknowledge
            </button>
          )}
          <button type="button" onClick={() => act('resolve')}>
            Resolve
          </button>
        </div>
      )}
      {error && <p role="alert" class="error">{error}</p>}
      <h3>Analysis</h3>
      {a ? (
        <dl>
          <dt>Root cause</dt>
          <dd>{a.root_cause}</dd>
          <dt>Confidence</dt>
          <dd>{Math.round(a.confidence * 100)}%</dd>
          <dt>Suggested action</dt>
          <dd>{a.suggested_action ? `${a.suggested_action.label} (${a.suggested_action.command})` : 'none'}</dd>
          <dt>Secrets redacted</dt>
          <dd>{a.redactions}</dd>
        </dl>
      ) : (
        <p>{incident.analysis_status ?? 'Not analysed yet.'}</p>
      )}
      {incident.logs && (
        <>
          <h3>Logs</h3>
          <pre tabIndex={0}>{incident.logs}</pre>
        </>
      )}
      <h3>Timeline</h3>
      <ol class="timeline">
        {timeline.map((e) => (
          <li>
            <time dateTime={e.at}>{new Date(e.at).toLocaleString()}</time> {e.kind} — {e.actor}
            {e.by ? ` (${e.by})` : ''}
          </li>
        ))}
      </ol>
    </article>
  );
}

function App() {
  const [session, setSession] = useState<Session | null | undefined>(undefined);
  const [open, setOpen] = useState<string | null>(() => /^#\/incidents\/([A-Za-z0-9_-]+)$/.exec(location.hash)?.[1] ?? null);
  useEffect(() => {
    api<Session>('GET', '/v1/sessions/current').then(
      (s) => {
        csrf = s.csrf_token;
        setSession(s);
      },
      () => setSession(null),
    );
    const onHash = () => setOpen(/^#\/incidents\/([A-Za-z0-9_-]+)$/.exec(location.hash)?.[1] ?? null);
    addEventListener('hashchange', onHash);
    return () => removeEventListener('hashchange', onHash);
  }, []);
  if (session === undefined) return <p>Loading…</p>;
  if (session === null) return <SignIn onSignedIn={setSession} />;
  const signOut = async () => {
    await api('DELETE', '/v1/sessions/current').catch(() => undefined);
    csrf = '';
    setSession(null);
  };
  const go = (id: string | null) => {
    location.hash = id ? `#/incidents/${id}` : '';
    setOpen(id);
  };
  return (
    <>
      <header>
        <h1>OpsPilot</h1>
        <span class="who">
          {session.actor} ({session.scope})
        </span>
        <button type="button" onClick={signOut}>
          Sign out
        </button>
      </header>
      <main>{open ? <IncidentPage id={open} session={session} onBack={() => go(null)} /> : <IncidentList onOpen={go} />}</main>
    </>
  );
}

render(<App />, document.getElementById('app')!);
