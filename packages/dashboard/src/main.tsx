/**
 * The dashboard: sign in (an API token, or the one-time link `pnpm start` prints) for an HttpOnly
 * session cookie; then the overview, incidents, agents and the settings pages, kept live by one
 * event stream. Preact (4 KB) renders; uPlot draws the charts (loaded with the agent page only).
 * The scope of the session decides what is shown; the hub checks it again on every request.
 */
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import type { Session } from '@opspilot/hub/views';
import { api, describe, setCsrf } from './api.ts';
import { startLive, stopLive } from './live.ts';
import { idIn, link, useRoute } from './router.ts';
import { Overview } from './pages/overview.tsx';
import { IncidentList, IncidentPage, type IncidentFilters } from './pages/incidents.tsx';
import { AgentList, AgentPage } from './pages/agents.tsx';
import { Resource, RESOURCES, type ResourceName } from './pages/resources.tsx';

function SignIn({ onSignedIn, linkError }: { onSignedIn: (s: Session) => void; linkError: string | null }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState<string | null>(linkError);
  const submit = async (e: Event) => {
    e.preventDefault();
    setError(null);
    try {
      onSignedIn(await api<Session>('POST', '/v1/sessions', { token }));
    } catch (err) {
      setError(describe(err));
    }
  };
  return (
    <main class="signin">
      <h1>OpsPilot</h1>
      <form onSubmit={submit}>
        <label for="token">API token</label>
        <input id="token" name="token" type="password" autocomplete="off" required value={token} aria-describedby={error ? 'signin-error' : undefined} onInput={(e) => setToken((e.target as HTMLInputElement).value)} />
        <button type="submit">Sign in</button>
        {error && (
          <p id="signin-error" role="alert" class="error">
            {error}
          </p>
        )}
      </form>
      <p class="muted small">The admin token, or a token from API tokens. `pnpm start` prints a link that signs in once.</p>
    </main>
  );
}

const NAV: [string, string][] = [
  ['/', 'Overview'],
  ['/incidents', 'Incidents'],
  ['/agents', 'Agents'],
  ['/monitors', 'Monitors'],
  ['/rules', 'Rules'],
  ['/silences', 'Silences'],
  ['/integrations', 'Integrations'],
  ['/heartbeats', 'Heartbeats'],
  ['/tokens', 'Tokens'],
];

function Page({ session }: { session: Session }) {
  const { path, query } = useRoute();
  const incident = idIn(path, 'incidents');
  if (incident) return <IncidentPage id={incident} session={session} />;
  const agent = idIn(path, 'agents');
  if (agent) return <AgentPage id={agent} session={session} />;
  if (path === '/incidents') return <IncidentList filters={query as IncidentFilters} />;
  if (path === '/agents') return <AgentList />;
  const name = path.slice(1);
  if (Object.hasOwn(RESOURCES, name)) return <Resource name={name as ResourceName} session={session} />;
  if (path === '/' || path === '') return <Overview />;
  return (
    <p>
      No such page. <a href={link('/')}>Overview</a>
    </p>
  );
}

function Shell({ session, onSignOut }: { session: Session; onSignOut: () => void }) {
  const { path } = useRoute();
  useEffect(() => {
    startLive();
    return stopLive;
  }, []);
  const here = (p: string) => (p === '/' ? path === '/' || path === '' : path === p || path.startsWith(`${p}/`));
  return (
    <>
      <a
        class="skip"
        href="#content"
        onClick={(e) => {
          // The fragment is the router's: move focus without changing the page.
          e.preventDefault();
          document.getElementById('content')?.focus();
        }}
      >
        Skip to content
      </a>
      <header>
        <h1>OpsPilot</h1>
        <nav aria-label="Main">
          <ul>
            {NAV.map(([p, label]) => (
              <li>
                <a href={link(p)} aria-current={here(p) ? 'page' : undefined}>
                  {label}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <span class="who">
          {session.actor} ({session.scope})
        </span>
        <button type="button" class="secondary" onClick={onSignOut}>
          Sign out
        </button>
      </header>
      <main id="content" tabIndex={-1}>
        <Page session={session} />
      </main>
    </>
  );
}

function App() {
  const [session, setSession] = useState<Session | null | undefined>(undefined);
  const [linkError, setLinkError] = useState<string | null>(null);
  const signedIn = (s: Session) => {
    setCsrf(s.csrf_token);
    setSession(s);
  };
  useEffect(() => {
    // A one-time sign-in link: `#signin=<code>` (a fragment: never sent in a request line or a
    // Referer), opened in a new tab or pasted into this one.
    const fromLink = () => {
      const code = /^#signin=([A-Za-z0-9_-]{1,200})$/.exec(location.hash)?.[1];
      if (!code) return false;
      history.replaceState(null, '', location.pathname);
      api<Session>('POST', '/v1/sessions', { code }).then(
        (s) => {
          setLinkError(null);
          signedIn(s);
        },
        (err) => {
          setLinkError(describe(err));
          setSession(null);
        },
      );
      return true;
    };
    if (!fromLink()) api<Session>('GET', '/v1/sessions/current').then(signedIn, () => setSession(null));
    const onHash = () => void fromLink();
    addEventListener('hashchange', onHash);
    return () => removeEventListener('hashchange', onHash);
  }, []);
  if (session === undefined) return <p aria-busy="true">Loading…</p>;
  if (session === null) return <SignIn key={linkError ?? ''} onSignedIn={signedIn} linkError={linkError} />;
  const signOut = async () => {
    await api('DELETE', '/v1/sessions/current').catch(() => undefined);
    stopLive();
    setCsrf('');
    setSession(null);
  };
  return <Shell session={session} onSignOut={signOut} />;
}

render(<App />, document.getElementById('app')!);
