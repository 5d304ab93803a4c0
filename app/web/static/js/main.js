// The practice app: sign-in, navigation and the screens (hash routes).
import {render} from 'preact';
import {useEffect, useState} from 'preact/hooks';
import {currentSession, handleCallback, lastPractice, practicesOf, signIn, signOut} from './smart.js';
import {SESSION_ENDED} from './fhir.js';
import {html, ErrorBox} from './ui.js';
import {Dashboard, MeasureClaims} from './dashboard.js';
import {Combined} from './combined.js';
import {PracticeSwitcher} from './practices.js';
import {Worklists} from './worklists.js';
import {ClaimPage, ClaimList} from './claim.js';
import {PatientPage, PatientList} from './patient.js';

function route() {
  const hash = location.hash.replace(/^#\/?/, '');
  const [path, q] = hash.split('?');
  return {parts: path.split('/').filter(Boolean).map(decodeURIComponent), params: new URLSearchParams(q || '')};
}

function useRoute() {
  const [r, setR] = useState(route());
  useEffect(() => {
    const on = () => setR(route());
    window.addEventListener('hashchange', on);
    return () => window.removeEventListener('hashchange', on);
  }, []);
  return r;
}

function SignIn({error}) {
  const [practice, setPractice] = useState(new URLSearchParams(location.search).get('practice') || lastPractice());
  const [problem, setProblem] = useState(error);
  const [busy, setBusy] = useState(false);
  const submit = async (ev) => {
    ev.preventDefault();
    setBusy(true);
    try {
      await signIn(practice.trim().toLowerCase());
    } catch (err) {
      setProblem(err);
      setBusy(false);
    }
  };
  return html`<main class="signin">
    <h1>TheraBridge</h1>
    <p>Claims, denials and payments of your practice.</p>
    <${ErrorBox} error=${problem} />
    <form onSubmit=${submit}>
      <label for="practice">Practice code</label>
      <input id="practice" name="practice" required pattern="[a-z0-9][a-z0-9\\-]*" autocomplete="organization"
        value=${practice} onInput=${(e) => setPractice(e.target.value)} />
      <button type="submit" disabled=${busy}>Sign in</button>
    </form>
    <p class="hint">You sign in on the TheraBridge login page; this app never sees your password.</p>
  </main>`;
}

const NAV = [
  ['dashboard', 'Dashboard'], ['worklists', 'Worklists'], ['claims', 'Claims'], ['patients', 'Patients'],
];

function Screen({r}) {
  const [first, second, third, fourth] = r.parts;
  switch (first || 'dashboard') {
    case 'dashboard': return html`<${Dashboard} params=${r.params} />`;
    case 'combined': return html`<${Combined} params=${r.params} />`;
    case 'measure': return html`<${MeasureClaims} id=${second} start=${third} end=${fourth} />`;
    case 'worklists': return html`<${Worklists} tab=${second || 'held'} params=${r.params} />`;
    case 'claims': return second ? html`<${ClaimPage} id=${second} />` : html`<${ClaimList} params=${r.params} />`;
    case 'patients': return second ? html`<${PatientPage} id=${second} />` : html`<${PatientList} params=${r.params} />`;
    default: return html`<p role="alert">No such page. <a href="#/dashboard">Go to the dashboard</a>.</p>`;
  }
}

function Shell({session, onSignOut, onSwitch}) {
  const r = useRoute();
  const several = practicesOf(session).length > 1;
  const nav = several ? [NAV[0], ['combined', 'All my practices'], ...NAV.slice(1)] : NAV;
  const current = r.parts[0] || 'dashboard';
  useEffect(() => {
    const main = document.getElementById('content');
    if (main && document.activeElement && document.activeElement.closest('nav, .top')) main.focus();
  }, [r.parts.join('/')]);
  return html`
    <a class="skip" href="#content" onClick=${(e) => { e.preventDefault(); document.getElementById('content').focus(); }}>Skip to content</a>
    <header class="top">
      <span class="brand">TheraBridge</span>
      <nav aria-label="Main">
        <ul>${nav.map(([key, label]) => html`<li><a href=${'#/' + key}
          aria-current=${current === key || (key === 'dashboard' && current === 'measure') ? 'page' : null}>${label}</a></li>`)}</ul>
      </nav>
      <span class="who">${session.user} · <span id="current-practice" data-practice=${session.practice}>${
        (practicesOf(session).find((p) => p.id === session.practice) || {name: session.practice}).name}</span></span>
      ${several ? html`<${PracticeSwitcher} session=${session} onSwitch=${onSwitch} />` : null}
      <button type="button" class="secondary" onClick=${onSignOut}>Sign out</button>
    </header>
    <main id="content" tabindex="-1"><${Screen} key=${session.practice} r=${r} /></main>`;
}

function App() {
  const [session, setSession] = useState(currentSession());
  const [error, setError] = useState(null);
  const [ready, setReady] = useState(false);
  useEffect(() => {
    handleCallback().then((s) => { if (s) setSession(s); }, setError).finally(() => setReady(true));
    const ended = () => setSession(null);
    window.addEventListener(SESSION_ENDED, ended);
    return () => window.removeEventListener(SESSION_ENDED, ended);
  }, []);
  if (!ready) return html`<p class="loading">Signing in…</p>`;
  if (!session) return html`<${SignIn} error=${error} />`;
  const out = async () => { await signOut(); setSession(null); };
  return html`<${Shell} session=${session} onSignOut=${out} onSwitch=${setSession} />`;
}

render(html`<${App} />`, document.getElementById('root'));
