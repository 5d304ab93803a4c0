// Work items (FHIR Task): the table every worklist uses, and assigning, noting and closing them
// with plain Task updates (each re-reads the Task and writes with If-Match).
import {useState} from 'preact/hooks';
import {read, update} from './fhir.js';
import {currentSession} from './smart.js';
import {codeOf, day, refId, refType, showValue, taskInput, taskInputs, textOf, when} from './format.js';
import {html, ErrorBox, Done, useAction} from './ui.js';

export const OPEN = 'draft,requested,received,accepted,ready,in-progress,on-hold';

const CLOSE_REASONS = [
  ['resolved', 'Resolved'], ['corrected-and-resubmitted', 'Corrected and resubmitted'], ['appealed', 'Appealed'],
  ['written-off', 'Written off'], ['billed-patient', 'Billed to the patient'], ['no-action', 'No action needed'],
];

export function deadlineOf(task) {
  return (task.restriction && task.restriction.period && task.restriction.period.end)
    || showValue(taskInput(task, 'deadline')) || '';
}

export function focusLink(ref) {
  if (!ref || !ref.reference) return '—';
  const type = refType(ref);
  const id = refId(ref);
  if (type === 'Claim') return html`<a href=${'#/claims/' + id}>Claim ${id.slice(0, 8)}</a>`;
  if (type === 'Patient') return html`<a href=${'#/patients/' + id}>Patient ${id}</a>`;
  return ref.display || ref.reference;
}

async function change(task, edit) {
  const fresh = await read('Task', task.id);
  edit(fresh);
  fresh.lastModified = new Date().toISOString();
  return update(fresh);
}

function TaskActions({task, onChanged}) {
  const [note, setNote] = useState('');
  const [reason, setReason] = useState('resolved');
  const action = useAction(() => onChanged && onChanged());
  const session = currentSession() || {};
  const me = () => {
    const owner = {display: session.user};
    if (session.fhirUser) owner.reference = session.fhirUser.split('/').slice(-2).join('/');
    return owner;
  };
  const base = `task-${task.id}`;
  return html`<details class="work">
    <summary>Work this item</summary>
    <div class="work-body">
      <button type="button" disabled=${action.busy}
        onClick=${() => action.run('Assigned', () => change(task, (t) => { t.owner = me(); if (t.status === 'requested') t.status = 'in-progress'; }).then(() => 'Assigned to you.'))}>Assign to me</button>
      <form onSubmit=${(e) => { e.preventDefault(); action.run('Note', () => change(task, (t) => {
          t.note = [...(t.note || []), {text: note, time: new Date().toISOString(), authorString: session.user}];
        }).then(() => { setNote(''); return 'Note added.'; })); }}>
        <label for=${base + '-note'}>Note</label>
        <input id=${base + '-note'} value=${note} required onInput=${(e) => setNote(e.target.value)} />
        <button type="submit" disabled=${action.busy}>Add note</button>
      </form>
      <form onSubmit=${(e) => { e.preventDefault(); action.run('Closed', () => change(task, (t) => {
          t.status = 'completed'; t.businessStatus = {text: reason};
          // when the work ended (an appeal-send item: the day the package went out)
          t.executionPeriod = {...(t.executionPeriod || {}), end: new Date().toISOString()};
        }).then(() => 'Closed.')); }}>
        <label for=${base + '-reason'}>Outcome</label>
        <select id=${base + '-reason'} value=${reason} onChange=${(e) => setReason(e.target.value)}>
          ${CLOSE_REASONS.map(([code, label]) => html`<option value=${code}>${label}</option>`)}
        </select>
        <button type="submit" disabled=${action.busy}>Close item</button>
      </form>
      <${Done} text=${action.message} /><${ErrorBox} error=${action.error} />
    </div></details>`;
}

/** A stored document (an appeal letter) opened from its inline data. */
async function openDocument(reference) {
  const [type, id] = reference.split('/').slice(-2);
  const doc = await read(type, id);
  const att = ((doc.content || [])[0] || {}).attachment || {};
  if (!att.data) throw new Error('This document has no content to show.');
  const bytes = Uint8Array.from(atob(att.data), (c) => c.charCodeAt(0));
  const link = document.createElement('a');
  link.href = URL.createObjectURL(new Blob([bytes], {type: att.contentType || 'application/octet-stream'}));
  link.download = att.title || `${type}-${id}`;
  link.click();
}

function Outputs({task}) {
  const [error, setError] = useState(null);
  const outputs = task.output || [];
  if (!outputs.length) return null;
  return html`<ul class="outputs">${outputs.map((o) => {
    const name = codeOf(o.type);
    const ref = o.valueReference && o.valueReference.reference;
    if (ref && ref.startsWith('DocumentReference/')) {
      return html`<li><button type="button" class="link" onClick=${() => openDocument(ref).catch(setError)}>Download ${name}</button></li>`;
    }
    const key = Object.keys(o).find((k) => k.startsWith('value'));
    return html`<li>${name}: ${key ? showValue(o[key]) : ''}</li>`;
  })}</ul><${ErrorBox} error=${error} />`;
}

function details(task) {
  const out = [];
  const skip = new Set(['category', 'next-action', 'amount', 'reason', 'remark', 'source', 'line', 'claim']);
  for (const i of task.input || []) {
    const name = codeOf(i.type);
    if (skip.has(name)) continue;
    const key = Object.keys(i).find((k) => k.startsWith('value'));
    const value = key ? showValue(i[key]) : '';
    out.push(value ? `${name}: ${value}` : name);
  }
  return out;
}

/** One row per Task: what, about what, deadline, owner, notes and the actions. */
export function TaskTable({tasks, onChanged, denial}) {
  if (!tasks.length) return html`<p class="empty">Nothing to do here.</p>`;
  return html`<table class="tasks">
    <thead><tr>
      <th scope="col">Priority</th><th scope="col">Item</th><th scope="col">About</th>
      ${denial ? html`<th scope="col">Category</th><th scope="col">Next action</th><th scope="col">At stake</th>` : null}
      <th scope="col">Deadline</th><th scope="col">Owner</th><th scope="col">Status</th><th scope="col">Actions</th>
    </tr></thead>
    <tbody>${tasks.map((t) => html`<tr key=${t.id} data-task=${t.id} data-code=${codeOf(t.code)}>
      <td><span class=${'prio prio-' + (t.priority || 'routine')}>${t.priority || 'routine'}</span></td>
      <td><strong>${textOf(t.code)}</strong><br /><span class="desc">${t.description || ''}</span>
        ${denial ? html`<ul class="reasons">${taskInputs(t, 'reason').concat(taskInputs(t, 'remark')).map((r) => html`<li>${showValue(r)}</li>`)}</ul>` : null}
        ${!denial && details(t).length ? html`<ul class="reasons">${details(t).map((d) => html`<li>${d}</li>`)}</ul>` : null}
        <${Outputs} task=${t} />
        ${(t.note || []).length ? html`<ul class="notes">${t.note.map((n) => html`<li>${n.authorString ? n.authorString + ': ' : ''}${n.text}</li>`)}</ul>` : null}</td>
      <td>${focusLink(t.focus)}${t.for ? html`<br />${focusLink(t.for)}` : null}</td>
      ${denial ? html`<td>${showValue(taskInput(t, 'category'))}</td><td>${showValue(taskInput(t, 'next-action'))}</td>
        <td>${showValue(taskInput(t, 'amount'))}</td>` : null}
      <td>${day(deadlineOf(t))}</td>
      <td class="owner">${(t.owner && (t.owner.display || t.owner.reference)) || '—'}</td>
      <td>${t.status}${t.businessStatus && t.businessStatus.text ? html`<br /><small>${t.businessStatus.text}</small>` : null}<br /><small>${when(t.lastModified)}</small></td>
      <td><${TaskActions} task=${t} onChanged=${onChanged} /></td>
    </tr>`)}</tbody></table>`;
}
