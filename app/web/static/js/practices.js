// The practice switcher in the header, for a person granted several practices: the refresh
// grant with ``practice`` gives a token for the chosen practice; no password again.
import {useState} from 'preact/hooks';
import {practicesOf, switchPractice} from './smart.js';
import {html} from './ui.js';

export function PracticeSwitcher({session, onSwitch}) {
  const [busy, setBusy] = useState(false);
  const [problem, setProblem] = useState(null);
  const change = async (ev) => {
    const practice = ev.target.value;
    if (practice === session.practice) return;
    setBusy(true);
    setProblem(null);
    try {
      onSwitch(await switchPractice(practice));
      if ((location.hash || '').startsWith('#/combined')) return;
      location.hash = '#/dashboard'; // the open record belongs to the practice left behind
    } catch (err) {
      ev.target.value = session.practice;
      setProblem(err);
    } finally {
      setBusy(false);
    }
  };
  return html`<span class="switcher">
    <label for="practice-switch">Practice</label>
    <select id="practice-switch" disabled=${busy} value=${session.practice} onChange=${change}>
      ${practicesOf(session).map((p) => html`<option value=${p.id} selected=${p.id === session.practice}>${p.name}</option>`)}
    </select>
    ${problem ? html`<span class="error" role="alert">${problem.message}</span>` : null}
  </span>`;
}
