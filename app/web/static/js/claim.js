// The claim page: lines, modifiers, units, diagnoses, the scrubber's edits, the lifecycle with each
// payer answer (277CA ClaimResponses, 835 EOBs), the EOB itself and the actions; and a claim list.
import {useState} from 'preact/hooks';
import {operation, read, search} from './fhir.js';
import {codeOf, day, lifecycleHistory, lifecycleOf, LIFECYCLE, money, refId, textOf, when} from './format.js';
import {html, Badge, Done, ErrorBox, Loading, useAction, useLoad} from './ui.js';
import {displayName, Edits, issuesOf} from './worklists.js';
import {TaskTable} from './tasks.js';

function adjudication(item, category) {
  const a = (item.adjudication || []).find((x) => codeOf(x.category) === category);
  return a ? a.amount : null;
}

function adjustments(item) {
  return (item.adjudication || []).filter((a) => a.reason).map((a) => ({
    code: `${codeOf(a.category)}-${codeOf(a.reason)}`, text: textOf(a.reason), reason: a.reason, amount: a.amount,
  }));
}

function encounterOf(claim) {
  for (const item of claim.item || []) {
    for (const e of item.encounter || []) if (e.reference) return refId(e);
  }
  return null;
}

async function loadClaim(id) {
  const claim = await read('Claim', id);
  const [patient, payer, scrub, responses, eobs, tasks] = await Promise.all([
    displayName(claim.patient), displayName(claim.insurer),
    operation(`Claim/${id}/$scrub`).catch((e) => ({issue: [{severity: 'error', diagnostics: e.message}]})),
    search('ClaimResponse', {request: `Claim/${id}`, _sort: 'created'}).catch(() => []),
    search('ExplanationOfBenefit', {claim: `Claim/${id}`, _sort: 'created'}).catch(() => []),
    search('Task', {focus: `Claim/${id}`, _sort: '-modified'}).catch(() => []),
  ]);
  return {claim, patient, payer, issues: issuesOf(scrub), responses, eobs, tasks};
}

function timeline({claim, responses, eobs}) {
  const events = lifecycleHistory(claim).map((h) => ({at: h.at, kind: 'lifecycle', code: h.code,
    text: LIFECYCLE[h.code] || h.code}));
  for (const r of responses) {
    events.push({at: r.meta && r.meta.lastUpdated, kind: 'answer', code: r.outcome,
      text: `Payer answer: ${r.disposition || r.outcome}${(r.error || []).length ? ' — ' + r.error.map((e) => textOf(e.code)).join('; ') : ''}`});
  }
  for (const e of eobs) {
    const paid = e.payment && e.payment.amount;
    events.push({at: e.meta && e.meta.lastUpdated, kind: 'remittance', code: e.outcome,
      text: `Remittance (835): ${textOf(((e.extension || []).find((x) => x.valueCoding) || {}).valueCoding ? {coding: [e.extension.find((x) => x.valueCoding).valueCoding]} : null) || e.outcome}${paid ? ', paid ' + money(paid) : ''}`});
  }
  return events.sort((a, b) => String(a.at).localeCompare(String(b.at)));
}

/** What the payer decided per line: an 835's ExplanationOfBenefit, or a payer API's ClaimResponse. */
function Adjudication({answer, claim}) {
  const isEob = answer.resourceType === 'ExplanationOfBenefit';
  const lines = Object.fromEntries((claim.item || []).map((i) => [i.sequence, i]));
  const total = (code) => { const t = (answer.total || []).find((x) => codeOf(x.category) === code); return t ? t.amount : null; };
  const paid = (answer.payment && answer.payment.amount) || total('benefit')
    || {value: (answer.item || []).reduce((sum, i) => sum + Number((adjudication(i, 'benefit') || {}).value || 0), 0), currency: 'USD'};
  return html`<section class="adjudication" data-answer=${answer.id}>
    <h3>${isEob ? 'Remittance (835)' : 'Payer adjudication'} of ${day(answer.created)}</h3>
    <p>Paid ${money(paid)}${answer.payment && answer.payment.date ? ' on ' + day(answer.payment.date) : ''}.</p>
    <table><thead><tr><th scope="col">Line</th><th scope="col">Code</th><th scope="col">Units</th><th scope="col">Billed</th>
      <th scope="col">Allowed</th><th scope="col">Paid</th><th scope="col">Adjustments</th></tr></thead>
    <tbody>${(answer.item || []).map((i) => {
      const seq = i.sequence || i.itemSequence;
      const line = lines[seq] || {};
      const quantity = i.quantity || line.quantity;
      return html`<tr><td>${seq}</td><td>${codeOf(i.productOrService || line.productOrService)}</td>
      <td>${quantity ? quantity.value : ''}</td><td>${money(adjudication(i, 'submitted'))}</td>
      <td>${money(adjudication(i, 'eligible'))}</td><td>${money(adjudication(i, 'benefit'))}</td>
      <td><ul class="plain">${adjustments(i).map((a) => html`<li><code>${a.code}</code> ${a.text !== codeOf(a.reason) ? a.text : ''}: ${money(a.amount)}</li>`)}</ul></td></tr>`;
    })}</tbody></table>
  </section>`;
}

function attachmentLink(doc) {
  const att = ((doc.content || [])[0] || {}).attachment || {};
  if (att.data) {
    const bytes = Uint8Array.from(atob(att.data), (c) => c.charCodeAt(0));
    const url = URL.createObjectURL(new Blob([bytes], {type: att.contentType || 'application/octet-stream'}));
    return html`<a href=${url} download=${att.title || 'appeal-letter'}>Download ${att.title || 'the letter'}</a>`;
  }
  return att.url ? html`<span>Letter at ${att.url}</span>` : null;
}

function Actions({data, onDone}) {
  const {claim} = data;
  const action = useAction(onDone);
  const [letter, setLetter] = useState(null);
  const encounter = encounterOf(claim);
  const regenerate = () => action.run('Regenerate', async () => {
    const bundle = await operation(`Encounter/${encounter}/$generate-claim`);
    const made = (bundle.entry || []).map((e) => e.resource).find((r) => r.resourceType === 'Claim');
    if (made && made.id !== claim.id) { location.hash = '#/claims/' + made.id; return 'Regenerated as a new claim.'; }
    return `Regenerated: the claim is now ${LIFECYCLE[lifecycleOf(made || claim)] || lifecycleOf(made || claim)}.`;
  });
  const submit = () => action.run('Submit', async () => {
    const out = await operation(`Claim/${claim.id}/$submit`);
    return `Submitted: the claim is ${LIFECYCLE[lifecycleOf(out)] || lifecycleOf(out)}.`;
  });
  const voidIt = () => action.run('Void', async () => {
    const out = await operation(`Claim/${claim.id}/$void`);
    return `Void queued as claim ${out.id.slice(0, 8)}.`;
  });
  const appeal = () => action.run('Appeal', async () => {
    // a collection Bundle: the letter (DocumentReference), the denial Task and, when a person
    // sends it, the appeal-send Task
    const out = await operation(`Claim/${claim.id}/$appeal`);
    const found = out.resourceType === 'Bundle' ? (out.entry || []).map((e) => e.resource) : [out];
    const doc = found.find((r) => r.resourceType === 'DocumentReference');
    const send = found.find((r) => r.resourceType === 'Task' && codeOf(r.code) === 'appeal-send');
    setLetter(doc || null);
    const sending = send ? ` ${send.description || 'Send the package to the payer.'}`
      : ' It goes to the payer electronically.';
    return `Appeal letter ready.${sending}`;
  });
  return html`<section class="actions" aria-labelledby="actions-title">
    <h2 id="actions-title">Actions</h2>
    <div class="buttons">
      <button type="button" disabled=${action.busy || !encounter} onClick=${regenerate}>Regenerate claim</button>
      <button type="button" disabled=${action.busy} onClick=${submit}>Submit</button>
      <button type="button" class="secondary" disabled=${action.busy} onClick=${voidIt}>Void</button>
      <button type="button" class="secondary" disabled=${action.busy} onClick=${appeal}>Appeal</button>
    </div>
    <${Done} text=${action.message} /><${ErrorBox} error=${action.error} />
    ${letter ? html`<p class="letter">${attachmentLink(letter)}</p>` : null}
  </section>`;
}

export function ClaimPage({id}) {
  const {data, error, loading, reload} = useLoad(() => loadClaim(id), [id]);
  if (loading && !data) return html`<${Loading} what="claim" />`;
  if (error) return html`<h1>Claim</h1><${ErrorBox} error=${error} />`;
  const {claim} = data;
  const state = lifecycleOf(claim);
  const adjudicated = [...data.eobs, ...data.responses.filter((r) => (r.item || []).length)];
  const dx = Object.fromEntries((claim.diagnosis || []).map((d) => [d.sequence, codeOf(d.diagnosisCodeableConcept)]));
  return html`
    <h1>Claim ${claim.id.slice(0, 8)} <${Badge} code=${state} label=${LIFECYCLE[state] || state} /></h1>
    <dl class="facts">
      <dt>Patient</dt><dd><a href=${'#/patients/' + refId(claim.patient)}>${data.patient}</a></dd>
      <dt>Payer</dt><dd>${data.payer}</dd>
      <dt>Service dates</dt><dd>${day(claim.billablePeriod && claim.billablePeriod.start)} – ${day(claim.billablePeriod && claim.billablePeriod.end)}</dd>
      <dt>Total</dt><dd>${money(claim.total)}</dd>
      <dt>Status</dt><dd data-lifecycle=${state}>${LIFECYCLE[state] || state}</dd>
      ${(claim.related || []).length ? html`<dt>Related</dt><dd>${claim.related.map((r) => html`<a href=${'#/claims/' + refId(r.claim)}>${refId(r.claim).slice(0, 8)}</a> (${codeOf(r.relationship)}) `)}</dd>` : null}
    </dl>
    <${Actions} data=${data} onDone=${reload} />
    <section class="claim-edits"><h2>Edits</h2><${Edits} issues=${data.issues} /></section>
    <section><h2>Diagnoses</h2><ol class="dx">${(claim.diagnosis || []).map((d) => html`<li>${codeOf(d.diagnosisCodeableConcept)} ${textOf(d.diagnosisCodeableConcept) !== codeOf(d.diagnosisCodeableConcept) ? textOf(d.diagnosisCodeableConcept) : ''}</li>`)}</ol></section>
    <section><h2>Lines</h2>
      <table class="lines"><thead><tr><th scope="col">#</th><th scope="col">Date</th><th scope="col">Code</th><th scope="col">Modifiers</th>
        <th scope="col">Units</th><th scope="col">Charge</th><th scope="col">Diagnoses</th></tr></thead>
      <tbody>${(claim.item || []).map((i) => html`<tr><td>${i.sequence}</td><td>${day(i.servicedDate)}</td><td>${codeOf(i.productOrService)}</td>
        <td>${(i.modifier || []).map(codeOf).join(' ')}</td><td>${i.quantity ? i.quantity.value : ''}</td><td>${money(i.net)}</td>
        <td>${(i.diagnosisSequence || []).map((s) => dx[s] || s).join(', ')}</td></tr>`)}</tbody></table></section>
    <section><h2>Lifecycle</h2>
      <ol class="timeline">${timeline(data).map((e) => html`<li class=${'ev ev-' + e.kind}><time>${when(e.at)}</time> ${e.text}</li>`)}</ol></section>
    ${adjudicated.length ? html`<section><h2>What the payer paid</h2>${adjudicated.map((a) => html`<${Adjudication} answer=${a} claim=${claim} />`)}</section>` : null}
    <section><h2>Work items</h2><${TaskTable} tasks=${data.tasks} onChanged=${reload} /></section>`;
}

export function ClaimList({params}) {
  const [lifecycle, setLifecycle] = useState(params.get('lifecycle') || '');
  const {data, error, loading} = useLoad(async () => {
    const claims = await search('Claim', {lifecycle, _sort: '-created', _count: 100});
    return Promise.all(claims.map(async (c) => ({claim: c, patient: await displayName(c.patient), payer: await displayName(c.insurer)})));
  }, [lifecycle]);
  return html`<h1>Claims</h1>
    <label for="claim-lifecycle">Status</label>
    <select id="claim-lifecycle" value=${lifecycle} onChange=${(e) => setLifecycle(e.target.value)}>
      <option value="">Any</option>${Object.entries(LIFECYCLE).map(([k, v]) => html`<option value=${k}>${v}</option>`)}</select>
    ${loading ? html`<${Loading} what="claims" />` : null}<${ErrorBox} error=${error} />
    ${data ? html`<table class="claims"><thead><tr><th scope="col">Claim</th><th scope="col">Patient</th><th scope="col">Payer</th>
      <th scope="col">Service date</th><th scope="col">Status</th><th scope="col">Total</th></tr></thead>
      <tbody>${data.map(({claim, patient, payer}) => html`<tr><td><a href=${'#/claims/' + claim.id}>${claim.id.slice(0, 8)}</a></td>
        <td>${patient}</td><td>${payer}</td><td>${day(claim.billablePeriod && claim.billablePeriod.start)}</td>
        <td><${Badge} code=${lifecycleOf(claim)} label=${LIFECYCLE[lifecycleOf(claim)]} /></td><td>${money(claim.total)}</td></tr>`)}</tbody></table>` : null}`;
}

