/** Agents: the list with status and last seen; one agent's facts, charts, incidents, execs and an action form. */
import { useEffect, useRef, useState } from 'preact/hooks';
import type { Agent, Exec, IncidentSummary, MetricSample, Session } from '@opspilot/hub/views';
import { api, ago, canExec, describe, query } from '../api.ts';
import { useLive, useThrottled } from '../live.ts';
import { ActionForm, ErrorNote, ExecList, Loading, Sev, Status } from '../components.tsx';
import { link } from '../router.ts';
import type { ChartSpec } from '../chart.ts';
import { formatValue } from '../units.ts';

const labelText = (labels: Record<string, string>) =>
  Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');

export function AgentList() {
  const [agents, setAgents] = useState<Agent[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const load = () => api<{ agents: Agent[] }>('GET', '/v1/agents').then((r) => setAgents(r.agents), (err) => setError(describe(err)));
  useEffect(() => void load(), []);
  const reload = useThrottled(() => void load(), 1000);
  useLive((e) => {
    if (e === 'resync' || e.group === 'agent') reload();
  });
  return (
    <section aria-labelledby="agents-title">
      <h2 id="agents-title">Agents</h2>
      <ErrorNote error={error} />
      {agents === null ? (
        <Loading />
      ) : agents.length === 0 ? (
        <p>No agents yet: enrol one (README, "Put the agent on a host").</p>
      ) : (
        <table class="list">
          <thead>
            <tr>
              <th scope="col">Host</th>
              <th scope="col">Status</th>
              <th scope="col">Last seen</th>
              <th scope="col">Labels</th>
              <th scope="col">Version</th>
            </tr>
          </thead>
          <tbody>
            {agents.map((a) => (
              <tr key={a.id} data-agent={a.id}>
                <td>
                  <a href={link(`/agents/${a.id}`)}>{a.hostname ?? a.id}</a>
                </td>
                <td>
                  <Status status={a.status} />
                </td>
                <td>
                  <time dateTime={a.last_seen_at ?? ''}>{ago(a.last_seen_at)}</time>
                </td>
                <td class="wrap">{labelText(a.labels)}</td>
                <td>{a.facts?.agent_version ?? '–'}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

const RANGES = [
  [3600, 'last hour'],
  [6 * 3600, 'last 6 hours'],
  [24 * 3600, 'last 24 hours'],
] as const;

/** CPU, memory, disks and network of `samples` as charts. */
function chartsOf(samples: MetricSample[], from: number, to: number): ChartSpec[] {
  const xs = samples.map((s) => s.ts);
  const pct = { unit: '%' as const, format: (v: number | null) => formatValue('%', v) };
  const rate = { unit: 'B/s' as const, format: (v: number | null) => formatValue('B/s', v) };
  const x = { from, to };
  const mounts = [...new Set(samples.flatMap((s) => s.disks.map((d) => d.mount)))].slice(0, 6);
  const ifaces = [...new Set(samples.flatMap((s) => s.net.map((n) => n.iface)))].slice(0, 3);
  return [
    { title: 'CPU', ...pct, ...x, xs, series: [{ label: 'cpu', values: samples.map((s) => s.cpu_pct) }] },
    { title: 'Memory', ...pct, ...x, xs, series: [{ label: 'used', values: samples.map((s) => (s.mem_total > 0 ? (100 * s.mem_used) / s.mem_total : null)) }] },
    {
      title: 'Disks',
      ...pct,
      ...x,
      xs,
      series: mounts.map((m) => ({
        label: m,
        values: samples.map((s) => {
          const d = s.disks.find((x) => x.mount === m);
          return d && d.size > 0 ? (100 * d.used) / d.size : null;
        }),
      })),
    },
    {
      title: 'Network',
      ...rate,
      ...x,
      xs,
      series: ifaces.flatMap((i) => [
        { label: `${i} in`, values: samples.map((s) => s.net.find((n) => n.iface === i)?.rx_bps ?? null) },
        { label: `${i} out`, values: samples.map((s) => s.net.find((n) => n.iface === i)?.tx_bps ?? null) },
      ]),
    },
  ];
}

function Chart({ spec }: { spec: ChartSpec }) {
  const el = useRef<HTMLDivElement>(null);
  useEffect(() => {
    let undo: (() => void) | undefined;
    let gone = false;
    void import('../chart.ts').then(({ drawChart }) => {
      if (!gone && el.current) undo = drawChart(el.current, spec);
    });
    return () => {
      gone = true;
      undo?.();
    };
  }, [spec]);
  const last = spec.series.map((s) => `${s.label} ${formatValue(spec.unit, s.values.at(-1))}`).join(', ');
  return (
    <figure class="chart">
      <figcaption>
        {spec.title} <span class="muted small">now: {last || 'no data'}</span>
      </figcaption>
      <div ref={el} role="img" aria-label={`${spec.title} over the chosen range; latest: ${last || 'no data'}`} />
    </figure>
  );
}

export function AgentPage({ id, session }: { id: string; session: Session }) {
  const [agent, setAgent] = useState<Agent | null>(null);
  const [range, setRange] = useState(3600);
  const [charts, setCharts] = useState<ChartSpec[] | null>(null);
  const [incidents, setIncidents] = useState<IncidentSummary[]>([]);
  const [execs, setExecs] = useState<Exec[]>([]);
  const [error, setError] = useState<string | null>(null);
  const load = async () => {
    try {
      const [a, i, x] = await Promise.all([
        api<Agent>('GET', `/v1/agents/${id}`),
        api<{ incidents: IncidentSummary[] }>('GET', `/v1/agents/${id}/incidents?limit=20`),
        api<{ execs: Exec[] }>('GET', `/v1/exec${query({ agent_id: id, limit: 20 })}`),
      ]);
      setAgent(a);
      setIncidents(i.incidents);
      setExecs(x.execs);
    } catch (err) {
      setError(describe(err));
    }
  };
  const loadMetrics = () => {
    const to = Math.floor(Date.now() / 1000);
    const since = new Date((to - range) * 1000).toISOString();
    api<{ samples: MetricSample[] }>('GET', `/v1/agents/${id}/metrics${query({ since, limit: 10_000 })}`).then((r) => setCharts(chartsOf(r.samples, to - range, to)), (err) => setError(describe(err)));
  };
  useEffect(() => void load(), [id]);
  useEffect(loadMetrics, [id, range]);
  const reload = useThrottled(() => void load(), 1000);
  useLive((e) => {
    if (e === 'resync' || e.agent_id === id) reload();
  });
  if (!agent) return error ? <ErrorNote error={error} /> : <Loading />;
  const f = agent.facts;
  return (
    <article aria-labelledby="agent-title">
      <p>
        <a href={link('/agents')}>← Agents</a>
      </p>
      <h2 id="agent-title">{agent.hostname ?? agent.id}</h2>
      <ErrorNote error={error} />
      <dl class="facts">
        <dt>Status</dt>
        <dd>
          <Status status={agent.status} /> (last seen {ago(agent.last_seen_at)})
        </dd>
        <dt>System</dt>
        <dd>{f ? `${f.os} ${f.arch}${f.kernel ? `, kernel ${f.kernel}` : ''}` : '–'}</dd>
        <dt>Agent</dt>
        <dd>{f ? `${f.agent_version} (protocol ${f.protocol ?? 1})` : '–'}</dd>
        <dt>Labels</dt>
        <dd>{labelText(agent.labels) || '–'}</dd>
        <dt>Automatic actions</dt>
        <dd>{agent.autonomy ? 'allowed' : 'off for this agent'}</dd>
        <dt>Id</dt>
        <dd>
          <code>{agent.id}</code>
        </dd>
      </dl>
      <section aria-labelledby="metrics-title">
        <div class="bar">
          <h3 id="metrics-title">Metrics</h3>
          <span>
            <label for="range">Range</label>{' '}
            <select id="range" value={range} onChange={(e) => setRange(Number((e.target as HTMLSelectElement).value))}>
              {RANGES.map(([s, text]) => (
                <option value={s}>{text}</option>
              ))}
            </select>
          </span>
        </div>
        {charts === null ? <Loading /> : <div class="charts">{charts.map((c) => (c.series.length > 0 ? <Chart key={`${c.title}-${range}`} spec={c} /> : null))}</div>}
      </section>
      <div class="columns">
        <section aria-labelledby="agent-incidents-title">
          <h3 id="agent-incidents-title">Incidents</h3>
          {incidents.length === 0 ? (
            <p>None.</p>
          ) : (
            <ul class="plain">
              {incidents.map((i) => (
                <li>
                  <Sev severity={i.severity} /> <Status status={i.status} /> <a href={link(`/incidents/${i.id}`)}>{i.message}</a> <span class="muted">{ago(i.last_seen_at)}</span>
                </li>
              ))}
            </ul>
          )}
        </section>
        <section aria-labelledby="agent-actions-title">
          <h3 id="agent-actions-title">Actions</h3>
          {canExec(session) && agent.status === 'online' && <ActionForm agent={agent} onRan={(e) => setExecs((l) => [e, ...l.filter((x) => x.id !== e.id)])} />}
          {canExec(session) && agent.status !== 'online' && <p class="muted">The agent is offline: actions wait until it is back.</p>}
          <ExecList execs={execs} />
        </section>
      </div>
    </article>
  );
}
