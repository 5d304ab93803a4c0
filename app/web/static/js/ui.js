// Shared pieces: the htm binding, a data-loading hook and message boxes.
import {h} from 'preact';
import {useCallback, useEffect, useState} from 'preact/hooks';
import htm from 'htm';

export const html = htm.bind(h);

/** Runs ``load`` when ``deps`` change; returns {data, error, loading, reload}. */
export function useLoad(load, deps) {
  const [state, setState] = useState({data: null, error: null, loading: true});
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    setState((s) => ({...s, loading: true, error: null}));
    load().then(
      (data) => live && setState({data, error: null, loading: false}),
      (error) => live && setState({data: null, error, loading: false}),
    );
    return () => { live = false; };
  }, [...deps, tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return {...state, reload};
}

export function ErrorBox({error}) {
  if (!error) return null;
  return html`<p class="error" role="alert">${error.message || String(error)}</p>`;
}

/** The From / To dates of a report period and its Show button (dashboard, combined view). */
export function PeriodForm({form, setForm, onSubmit}) {
  return html`
    <form class="period" onSubmit=${onSubmit}>
      <div><label for="period-start">From</label>
        <input id="period-start" type="date" required value=${form.start} onInput=${(e) => setForm({...form, start: e.target.value})} /></div>
      <div><label for="period-end">To</label>
        <input id="period-end" type="date" required value=${form.end} onInput=${(e) => setForm({...form, end: e.target.value})} /></div>
      <button type="submit">Show</button>
    </form>`;
}

export function Done({text}) {
  if (!text) return null;
  return html`<p class="done" role="status">${text}</p>`;
}

export function Loading({what}) {
  return html`<p class="loading" aria-busy="true">Loading ${what || ''}…</p>`;
}

/** Wraps an action: runs it, reports success or the server's reason, and reloads on success. */
export function useAction(after) {
  const [busy, setBusy] = useState(false);
  const [message, setMessage] = useState(null);
  const [error, setError] = useState(null);
  const run = async (label, fn) => {
    setBusy(true); setError(null); setMessage(null);
    try {
      const result = await fn();
      setMessage(typeof result === 'string' ? result : `${label}: done.`);
      if (after) after(result);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return {busy, message, error, run};
}

export function Badge({code, label}) {
  return html`<span class=${'badge badge-' + (code || 'none')}>${label || code}</span>`;
}
