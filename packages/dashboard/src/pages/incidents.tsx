/** The incident list (filters, kept live) and one incident (analysis, logs, timeline, actions). */
import { useEffect, useState } from 'preact/hooks';
import type { Agent, Exec, Incident, IncidentSummary, Session } from '@opspilot/hub/views';
import { api, ago, canExec, describe, INCIDENT_STATUSES, query, SEVERITIES } from '../api.ts';
import { useLive, useThrottled } from '../live.ts';
import { ActionForm, ErrorNote, ExecList, Loading, Sev, Status } from '../components.tsx';
import { go, link } from '../router.ts';

export interface IncidentFilters {
  status?: string;
  severity?: string;
  agent_id?: string;
  service?: string;
  label?: string;
  q?: string;
}

const PAGE = 200;

export function IncidentList({ filters }: { filters: IncidentFilters }) {
  const [incidents, setIncidents] = useState<IncidentSummary[] | null>(null);
  const [agents, setAgents] = useState<Agent[]>([]);
  const [error, setError] = useState<string | null>(null);
  const [draft, setDraft] = useState(filters);
  // The newest 200, and 200 more at each "Show more" (a live update reads as many again).
  const [limit, setLimit] = useState(PAGE);
  const key = JSON.stringify(filters);
  const load = () =>
    api<{ incidents: IncidentSummary[] }>('GET', `/v1/incidents${query({ limit, ...filters })}`).then(
      (r) => {
        setIncidents(r.incidents);
        setError(null);
      },
      (err) => setError(describe(err)),
    );
  useEffect(() => {
    setDraft(filters);
    void load();
  }, [key, limit]);
  useEffect(() => setLimit(PAGE), [key]);
  useEffect(() => {
    api<{ agents: Agent[] }>('GET', '/v1/agents').then((r) => setAgents(r.agents), () => undefined);
  }, []);
  // Live: whatever touches an incident reads the list again (at most every 400 ms in a burst).
  const reload = useThrottled(() => void load());
  useLive((e) => {
    if (e === 'resync' || e.incident_id !== null) reload();
  });
  const apply = (next: IncidentFilters) => go(`/incidents${query({ ...next })}`);
  const set = (k: keyof IncidentFilters, v: string, now = false) => {
    const next = { ...draft, [k]: v || undefined };
    setDraft(next);
    if (now) apply(next);
  };
  const hostname = (id: string | null) => (id ? (agents.find((a) => a.id === id)?.hostname ?? id) : '–');
  return (
    <section aria-labelledby="incidents-title">
      <h2 id="incidents-title">Incidents</h2>
      <form
        class="filters"
        role="search"
        aria-label="Filter incidents"
        onSubmit={(e) => {
          e.preventDefault();
          apply(draft);
        }}
      >
        <label>
          <span id="f-status-label">Status</span>
          <select aria-labelledby="f-status-label" value={draft.status ?? ''} onChange={(e) => set('status', (e.target as HTMLSelectElement).value, true)}>
            <option value="">any</option>
            {INCIDENT_STATUSES.map((s) => (
              <option value={s}>{s}</option>
            ))}
          </select>
        </label>
        <label>
          <span id="f-severity-label">Severity</span>
          <select aria-labelledby="f-severity-label" value={draft.severity ?? ''} onChange={(e) => set('severity', (e.target as HTMLSelectElement).value, true)}>
            <option value="">any</option>
            {SEVERITIES.map((s) => (
              <option value={s}>{s}</option>
            ))}
          </select>
        </label>
        <label>
          <span id="f-agent-label">Agent</span>
          <select aria-labelledby="f-agent-label" value={draft.agent_id ?? ''} onChange={(e) => set('agent_id', (e.target as HTMLSelectElement).value, true)}>
            <option value="">any</option>
            {agents.map((a) => (
              <option value={a.id}>{a.hostname ?? a.id}</option>
            ))}
          </select>
        </label>
        <label>
          <span id="f-service-label">Service</span>
          <input aria-labelledby="f-service-label" value={draft.service ?? ''} maxLength={256} onInput={(e) => set('service', (e.target as HTMLInputElement).value)} />
        </label>
        <label>
          <span id="f-label-label">Label</span>
          <input aria-labelledby="f-label-label" value={draft.label ?? ''} placeholder="env=prod" maxLength={1200} onInput={(e) => set('label', (e.target as HTMLInputElement).value)} />
        </label>
        <label>
          <span id="f-text-label">Text</span>
          <input aria-labelledby="f-text-label" type="search" value={draft.q ?? ''} maxLength={200} onInput={(e) => set('q', (e.target as HTMLInputElement).value)} />
        </label>
        <button type="submit">Filter</button>
      </form>
      <ErrorNote error={error} />
      {incidents === null ? (
        <Loading />
      ) : incidents.length === 0 ? (
        <p>No incidents.</p>
      ) : (
        <table class="list">
          <caption class="sr-only">{incidents.length} incidents, newest first</caption>
          <thead>
            <tr>
              <th scope="col">Severity</th>
              <th scope="col">Status</th>
              <th scope="col">Incident</th>
              <th scope="col">Agent</th>
              <th scope="col">Count</th>
              <th scope="col">Last seen</th>
            </tr>
          </thead>
          <tbody>
            {incidents.map((i) => (
              <tr key={i.id} data-incident={i.id}>
                <td>
                  <Sev severity={i.severity} />
                </td>
                <td>
                  <Status status={i.status} />
                </td>
                <td class="wrap">
                  <a href={link(`/incidents/${i.id}`)}>{i.message}</a>
                  <div class="muted small">
                    {i.type} · {i.source}
                  </div>
                </td>
                <td>{hostname(i.agent_id)}</td>
                <td>{i.count}</td>
                <td>
                  <time dateTime={i.last_seen_at}>{ago(i.last_seen_at)}</time>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {incidents !== null && incidents.length === limit && limit < 1000 && (
        <button type="button" class="secondary more" onClick={() => setLimit(limit + PAGE)}>
          Show more
        </button>
      )}
    </section>
  );
}

interface TimelineEntry {
  at: string;
  actor: string;
  by: string | null;
  kind: string;
  detail: Record<string, unknown> | null;
}

const IGNORE_FOR = [
  [60, '1 hour'],
  [240, '4 hours'],
  [1440, '1 day'],
  [10_080, '1 week'],
] as const;

export function IncidentPage({ id, session }: { id: string; session: Session }) {
  const [incident, setIncident] = useState<Incident | null>(null);
  const [timeline, setTimeline] = useState<TimelineEntry[]>([]);
  const [execs, setExecs] = useState<Exec[]>([]);
  const [agent, setAgent] = useState<Agent | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [ignoreFor, setIgnoreFor] = useState(1440);
  const [acting, setActing] = useState<{ command: string; params: Record<string, string | number | boolean> } | null | 'open'>(null);
  const load = async () => {
    try {
      const [i, t, x] = await Promise.all([
        api<Incident>('GET', `/v1/incidents/${id}`),
        api<{ events: TimelineEntry[] }>('GET', `/v1/incidents/${id}/timeline`),
        api<{ execs: Exec[] }>('GET', `/v1/exec${query({ incident_id: id, limit: 20 })}`),
      ]);
      setIncident(i);
      setTimeline(t.events);
      setExecs(x.execs);
      if (i.agent_id && agent?.id !== i.agent_id) setAgent(await api<Agent>('GET', `/v1/agents/${i.agent_id}`));
    } catch (err) {
      setError(describe(err));
    }
  };
  useEffect(() => {
    setIncident(null);
    void load();
  }, [id]);
  const reload = useThrottled(() => void load(), 300);
  useLive((e) => {
    if (e === 'resync' || e.incident_id === id) reload();
  });
  const act = async (what: 'acknowledge' | 'resolve' | 'ignore' | 'analyze') => {
    setError(null);
    try {
      await api('POST', `/v1/incidents/${id}/${what}`, what === 'ignore' ? { minutes: ignoreFor } : {});
      await load();
    } catch (err) {
      setError(describe(err));
    }
  };
  if (!incident) return error ? <ErrorNote error={error} /> : <Loading />;
  const a = incident.analysis;
  const open = incident.status !== 'resolved';
  return (
    <article aria-labelledby="incident-title">
      <p>
        <a href={link('/incidents')}>← Incidents</a>
      </p>
      <h2 id="incident-title" class="wrap">
        {incident.message}
      </h2>
      <p class="meta">
        <Sev severity={incident.severity} /> · <Status status={incident.status} /> · {incident.type} · {incident.source} · ×{incident.count}
        {agent ? (
          <>
            {' '}
            · on <a href={link(`/agents/${agent.id}`)}>{agent.hostname ?? agent.id}</a>
          </>
        ) : null}
        {incident.flapping ? ' · flapping' : ''}
        {incident.escalated ? ' · escalated' : ''}
      </p>
      {canExec(session) && open && (
        <div class="actions" role="group" aria-label="Incident actions">
          {incident.status !== 'acknowledged' && incident.status !== 'ignored' && (
            <button type="button" onClick={() => act('acknowledge')}>
              Acknowledge
            </button>
          )}
          <button type="button" onClick={() => act('resolve')}>
            Resolve
          </button>
          {incident.status !== 'ignored' && (
            <span class="ignore">
              <label for="ignore-for" class="sr-only">
                Ignore for
              </label>
              <select id="ignore-for" value={ignoreFor} onChange={(e) => setIgnoreFor(Number((e.target as HTMLSelectElement).value))}>
                {IGNORE_FOR.map(([m, text]) => (
                  <option value={m}>{text}</option>
                ))}
              </select>
              <button type="button" class="secondary" onClick={() => act('ignore')}>
                Ignore
              </button>
            </span>
          )}
          <button type="button" class="secondary" onClick={() => act('analyze')}>
            Analyse again
          </button>
        </div>
      )}
      <ErrorNote error={error} />
      <div class="columns">
        <section aria-labelledby="analysis-title">
          <h3 id="analysis-title">Analysis</h3>
          {a ? (
            <dl>
              <dt>Summary</dt>
              <dd>{a.summary}</dd>
              <dt>Root cause</dt>
              <dd>{a.root_cause}</dd>
              <dt>Confidence</dt>
              <dd>{Math.round(a.confidence * 100)} %</dd>
              <dt>Suggested action</dt>
              <dd>
                {a.suggested_action ? (
                  <>
                    {a.suggested_action.label} (<code>{a.suggested_action.command}</code>){' '}
                    {canExec(session) && agent && open && (
                      <button type="button" class="secondary" onClick={() => setActing({ command: a.suggested_action!.command, params: a.suggested_action!.params })}>
                        Prepare suggested action
                      </button>
                    )}
                  </>
                ) : (
                  'none'
                )}
              </dd>
              <dt>Risk</dt>
              <dd>{a.risk}</dd>
              <dt>By</dt>
              <dd>{a.source === 'llm' ? 'the model' : 'the built-in heuristics'}</dd>
              <dt>Secrets redacted</dt>
              <dd>{a.redactions}</dd>
            </dl>
          ) : (
            <p>{incident.analysis_status === 'pending' || incident.analysis_status === 'running' ? 'Being analysed…' : 'Not analysed yet.'}</p>
          )}
          {canExec(session) && agent && (
            <>
              <h3>Run an action</h3>
              {acting === null ? (
                <button type="button" class="secondary" onClick={() => setActing('open')}>
                  Choose an action…
                </button>
              ) : (
                <ActionForm
                  key={acting === 'open' ? 'any' : acting.command}
                  agent={agent}
                  incidentId={id}
                  {...(acting !== 'open' ? { preset: acting } : {})}
                  onRan={(e) => {
                    setExecs((list) => [e, ...list.filter((x) => x.id !== e.id)]);
                    void load();
                  }}
                />
              )}
            </>
          )}
          <h3>Actions run</h3>
          <ExecList execs={execs} />
        </section>
        <section aria-labelledby="timeline-title">
          <h3 id="timeline-title">Timeline</h3>
          <ol class="timeline" aria-live="polite">
            {timeline.map((e) => (
              <li>
                <time dateTime={e.at}>{new Date(e.at).toLocaleTimeString()}</time> {e.kind.replace(/_/g, ' ')} — {e.actor}
                {e.by ? ` (${e.by})` : ''}
              </li>
            ))}
          </ol>
        </section>
      </div>
      {incident.logs && (
        <section aria-labelledby="logs-title">
          <h3 id="logs-title">Logs</h3>
          <pre tabIndex={0} aria-labelledby="logs-title">
            {incident.logs}
          </pre>
        </section>
      )}
    </article>
  );
}
