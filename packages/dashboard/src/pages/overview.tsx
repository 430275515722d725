/** The page an engineer keeps open: open incidents by severity, agents online and offline, the last hour's changes, live. */
import { useEffect, useState } from 'preact/hooks';
import type { Agent, AuditEvent, IncidentSummary } from '@opspilot/hub/views';
import { api, ago, describe, query, SEVERITIES, UNRESOLVED } from '../api.ts';
import { useLive, useThrottled } from '../live.ts';
import { ErrorNote, Loading, Sev, Status } from '../components.tsx';
import { link } from '../router.ts';

export function Overview() {
  const [open, setOpen] = useState<IncidentSummary[] | null>(null);
  const [agents, setAgents] = useState<Agent[] | null>(null);
  const [changes, setChanges] = useState<AuditEvent[]>([]);
  const [error, setError] = useState<string | null>(null);
  const load = async () => {
    try {
      const since = new Date(Date.now() - 3600_000).toISOString();
      const [lists, a, c] = await Promise.all([
        Promise.all(UNRESOLVED.map((status) => api<{ incidents: IncidentSummary[] }>('GET', `/v1/incidents${query({ status, limit: 1000 })}`))),
        api<{ agents: Agent[] }>('GET', '/v1/agents'),
        api<{ events: AuditEvent[] }>('GET', `/v1/audit${query({ since, order: 'desc', limit: 30 })}`),
      ]);
      setOpen(lists.flatMap((l) => l.incidents).sort((x, y) => (x.id < y.id ? 1 : -1)));
      setAgents(a.agents);
      setChanges(c.events);
      setError(null);
    } catch (err) {
      setError(describe(err));
    }
  };
  useEffect(() => void load(), []);
  const reload = useThrottled(() => void load(), 1000);
  useLive(() => reload());
  if (!open || !agents) return error ? <ErrorNote error={error} /> : <Loading />;
  const bySeverity = (s: string | null) => open.filter((i) => i.severity === s).length;
  const online = agents.filter((a) => a.status === 'online');
  const offline = agents.filter((a) => a.status === 'offline');
  const host = (id: string | null) => (id ? (agents.find((a) => a.id === id)?.hostname ?? id) : null);
  return (
    <section aria-labelledby="overview-title">
      <h2 id="overview-title">Overview</h2>
      <ErrorNote error={error} />
      <div class="cards">
        <section class="card" aria-labelledby="open-title">
          <h3 id="open-title">Open incidents</h3>
          <p class="big">{open.length}</p>
          <ul class="counts">
            {SEVERITIES.map((s) => (
              <li>
                <a href={link(`/incidents?severity=${s}`)}>
                  <Sev severity={s} /> {bySeverity(s)}
                </a>
              </li>
            ))}
            {bySeverity(null) > 0 && <li>unclassified {bySeverity(null)}</li>}
          </ul>
        </section>
        <section class="card" aria-labelledby="agents-title">
          <h3 id="agents-title">Agents</h3>
          <p class="big">
            {online.length} <span class="muted small">online</span> · {offline.length} <span class="muted small">offline</span>
          </p>
          {offline.length > 0 && (
            <ul class="plain">
              {offline.slice(0, 5).map((a) => (
                <li>
                  <a href={link(`/agents/${a.id}`)}>{a.hostname ?? a.id}</a> <span class="muted">last seen {ago(a.last_seen_at)}</span>
                </li>
              ))}
            </ul>
          )}
        </section>
      </div>
      <div class="columns">
        <section aria-labelledby="recent-title">
          <h3 id="recent-title">Open now</h3>
          {open.length === 0 ? (
            <p>Nothing open.</p>
          ) : (
            <ul class="plain">
              {open.slice(0, 10).map((i) => (
                <li>
                  <Sev severity={i.severity} /> <Status status={i.status} /> <a href={link(`/incidents/${i.id}`)}>{i.message}</a>{' '}
                  <span class="muted">{host(i.agent_id) ?? ''}</span>
                </li>
              ))}
            </ul>
          )}
        </section>
        <section aria-labelledby="changes-title">
          <h3 id="changes-title">The last hour</h3>
          {changes.length === 0 ? (
            <p>No changes in the last hour.</p>
          ) : (
            <ol class="timeline" aria-live="polite">
              {changes.map((e) => (
                <li>
                  <time dateTime={e.at}>{new Date(e.at).toLocaleTimeString()}</time> {e.kind.replace(/_/g, ' ')}
                  {e.incident_id ? (
                    <>
                      {' '}
                      <a href={link(`/incidents/${e.incident_id}`)}>incident</a>
                    </>
                  ) : null}
                  {e.agent_id && host(e.agent_id) ? ` · ${host(e.agent_id)}` : ''} — {e.by ?? e.actor}
                </li>
              ))}
            </ol>
          )}
        </section>
      </div>
    </section>
  );
}
