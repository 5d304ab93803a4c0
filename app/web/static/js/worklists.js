// Worklists: held claims with their edits, denials by category, A/R aging by payer, expiring
// authorizations and visit limits, timely filing, failed background jobs, and every open item.
import {useState} from 'preact/hooks';
import {operation, param, read, search} from './fhir.js';
import {codeOf, day, money, nameOf, refId, taskInput} from './format.js';
import {html, ErrorBox, Loading, useLoad} from './ui.js';
import {OPEN, TaskTable} from './tasks.js';

const TABS = [
  ['held', 'Held claims'], ['denials', 'Denials'], ['aging', 'A/R aging'],
  ['authorizations', 'Authorizations & visit limits'], ['timely-filing', 'Timely filing'],
  ['failed-jobs', 'Failed jobs'], ['open', 'All open items'],
];

const TASK_TABS = {
  'authorizations': 'authorization-renewal,visit-limit-low,eligibility-problem',
  'timely-filing': 'timely-filing',
  'failed-jobs': 'job-failed,inbound-quarantined',
};

const names = {};
/** Display names of Organizations/Patients, read once per page view. */
export async function displayName(ref) {
  if (!ref || !ref.reference) return (ref && ref.display) || '';
  if (!(ref.reference in names)) {
    const [type, id] = ref.reference.split('/').slice(-2);
    names[ref.reference] = read(type, id).then((r) => (type === 'Patient' ? nameOf(r) : r.name || id), () => ref.display || id);
  }
  return names[ref.reference];
}

export function issuesOf(outcome) {
  return ((outcome && outcome.issue) || []).filter((i) => i.severity !== 'information').map((i) => ({
    severity: i.severity,
    code: codeOf(i.details),
    text: (i.details && i.details.text) || i.diagnostics || '',
    where: (i.expression || []).join(', '),
  }));
}

export function Edits({issues}) {
  if (!issues.length) return html`<p class="empty">No edits.</p>`;
  return html`<ul class="edits">${issues.map((i) => html`<li class=${'edit edit-' + i.severity} data-rule=${i.code}>
    <span class="sev">${i.severity}</span> <code>${i.code}</code> ${i.text}
    ${i.where ? html`<br /><span class="where">at <code>${i.where}</code></span>` : null}</li>`)}</ul>`;
}

function HeldClaims() {
  const {data, error, loading} = useLoad(async () => {
    const claims = await search('Claim', {lifecycle: 'draft', _sort: '-created', _count: 50});
    return Promise.all(claims.map(async (c) => ({
      claim: c,
      patient: await displayName(c.patient),
      payer: await displayName(c.insurer),
      issues: issuesOf(await operation(`Claim/${c.id}/$scrub`).catch((e) => ({issue: [{severity: 'error', diagnostics: e.message}]}))),
    })));
  }, []);
  if (loading && !data) return html`<${Loading} what="held claims" />`;
  if (error) return html`<${ErrorBox} error=${error} />`;
  if (!data.length) return html`<p class="empty">No claim is held.</p>`;
  return html`<table class="held"><thead><tr><th scope="col">Claim</th><th scope="col">Patient</th><th scope="col">Payer</th>
    <th scope="col">Service date</th><th scope="col">Total</th><th scope="col">Why it is held</th></tr></thead>
    <tbody>${data.map(({claim, patient, payer, issues}) => html`<tr data-claim=${claim.id}>
      <td><a href=${'#/claims/' + claim.id}>Open claim ${claim.id.slice(0, 8)}</a></td>
      <td><a href=${'#/patients/' + refId(claim.patient)}>${patient}</a></td><td>${payer}</td>
      <td>${day(claim.billablePeriod && claim.billablePeriod.start)}</td><td>${money(claim.total)}</td>
      <td><${Edits} issues=${issues} /></td></tr>`)}</tbody></table>`;
}

function Denials({params}) {
  const [category, setCategory] = useState(params.get('category') || '');
  const {data, error, loading, reload} = useLoad(() => search('Task', {code: 'denial', status: OPEN, _sort: '-modified'}), []);
  if (loading && !data) return html`<${Loading} what="denials" />`;
  if (error) return html`<${ErrorBox} error=${error} />`;
  const categories = [...new Set(data.map((t) => codeOf(taskInput(t, 'category')) || 'unknown'))].sort();
  const shown = category ? data.filter((t) => (codeOf(taskInput(t, 'category')) || 'unknown') === category) : data;
  return html`
    <label for="denial-category">Category</label>
    <select id="denial-category" value=${category} onChange=${(e) => setCategory(e.target.value)}>
      <option value="">All (${data.length})</option>
      ${categories.map((c) => html`<option value=${c}>${c} (${data.filter((t) => (codeOf(taskInput(t, 'category')) || 'unknown') === c).length})</option>`)}
    </select>
    <${TaskTable} tasks=${shown} onChanged=${reload} denial=${true} />`;
}

function Aging() {
  const [asOf, setAsOf] = useState('');
  const [basis, setBasis] = useState('service');
  const [asked, setAsked] = useState({asOf: '', basis: 'service'});
  const {data, error, loading} = useLoad(async () => {
    const report = await operation('Claim/$ar-aging', {method: 'GET', params: asked});
    const rows = [];
    for (const p of report.parameter || []) {
      if (p.name !== 'payer' && p.name !== 'total') continue;
      const insurer = param(p.part, 'insurer');
      const name = p.name === 'total' ? 'All payers' : (typeof insurer === 'string' ? insurer : await displayName(insurer));
      const buckets = (p.part || []).filter((x) => x.name === 'bucket').map((b) => ({
        range: param(b.part, 'range'), count: param(b.part, 'count'), outstanding: param(b.part, 'outstanding'),
        claims: (b.part || []).filter((x) => x.name === 'claim').map((x) => refId(x.valueReference)),
      }));
      rows.push({name, total: p.name === 'total', count: param(p.part, 'count'), outstanding: param(p.part, 'outstanding'), buckets});
    }
    return {asOf: param(report.parameter, 'asOf'), rows};
  }, [asked.asOf, asked.basis]);
  const [open, setOpen] = useState(null);
  return html`
    <form class="inline" onSubmit=${(e) => { e.preventDefault(); setAsked({asOf, basis}); }}>
      <label for="aging-asof">As of</label><input id="aging-asof" type="date" value=${asOf} onInput=${(e) => setAsOf(e.target.value)} />
      <label for="aging-basis">Age from</label>
      <select id="aging-basis" value=${basis} onChange=${(e) => setBasis(e.target.value)}>
        <option value="service">date of service</option><option value="submission">date sent</option></select>
      <button type="submit">Show</button>
    </form>
    ${loading ? html`<${Loading} what="A/R aging" />` : null}
    <${ErrorBox} error=${error} />
    ${data ? html`<p>Outstanding insurance A/R as of ${data.asOf}.</p>
      <table class="aging"><thead><tr><th scope="col">Payer</th>${(data.rows[0] ? data.rows[0].buckets : []).map((b) => html`<th scope="col">${b.range} days</th>`)}<th scope="col">Total</th></tr></thead>
      <tbody>${data.rows.map((r) => html`<tr class=${r.total ? 'total' : ''}><th scope="row">${r.name}</th>
        ${r.buckets.map((b) => html`<td>${b.count ? html`<button type="button" class="link" aria-expanded=${open === b ? 'true' : 'false'} onClick=${() => setOpen(open === b ? null : b)}>${money(b.outstanding)} (${b.count})</button>` : '—'}</td>`)}
        <td>${money(r.outstanding)} (${r.count})</td></tr>`)}</tbody></table>
      ${open ? html`<section><h3>Claims ${open.range} days</h3><ul>${open.claims.map((c) => html`<li><a href=${'#/claims/' + c}>Claim ${c.slice(0, 8)}</a></li>`)}</ul></section>` : null}` : null}`;
}

function TaskList({codes}) {
  const {data, error, loading, reload} = useLoad(() => search('Task', {...(codes ? {code: codes} : {}), status: OPEN, _sort: '-modified'}), [codes]);
  if (loading && !data) return html`<${Loading} what="work items" />`;
  if (error) return html`<${ErrorBox} error=${error} />`;
  return html`<${TaskTable} tasks=${data} onChanged=${reload} />`;
}

export function Worklists({tab, params}) {
  const body = () => {
    switch (tab) {
      case 'held': return html`<${HeldClaims} />`;
      case 'denials': return html`<${Denials} params=${params} />`;
      case 'aging': return html`<${Aging} />`;
      case 'open': return html`<${TaskList} codes=${null} />`;
      default: return TASK_TABS[tab] ? html`<${TaskList} codes=${TASK_TABS[tab]} />` : html`<p role="alert">No such worklist.</p>`;
    }
  };
  const title = (TABS.find(([k]) => k === tab) || [tab, 'Worklist'])[1];
  return html`
    <h1>Worklists</h1>
    <nav aria-label="Worklists" class="tabs"><ul>${TABS.map(([key, label]) => html`<li>
      <a href=${'#/worklists/' + key} aria-current=${key === tab ? 'page' : null}>${label}</a></li>`)}</ul></nav>
    <h2>${title}</h2>
    ${body()}`;
}

