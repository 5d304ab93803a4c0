// The patient page: coverages with the latest eligibility answer, authorizations with their usage
// ($usage) and a form to record one, claims, the balance ($balance) and statements; and a search.
import {useState} from 'preact/hooks';
import {fhir, operation, param, search} from './fhir.js';
import {codeOf, day, lifecycleOf, LIFECYCLE, money, nameOf, refId, showValue, textOf, when} from './format.js';
import {html, Badge, Done, ErrorBox, Loading, useAction, useLoad} from './ui.js';
import {displayName} from './worklists.js';

const DISCIPLINE = 'https://therabridge.dev/fhir/CodeSystem/therapy-discipline';

async function usageOf(auth) {
  try {
    const out = await operation(`ClaimResponse/${auth.id}/$usage`, {method: 'GET'});
    return (out.parameter || []).filter((p) => p.name === 'item').map((p) => ({
      what: codeOf(param(p.part, 'productOrService')) || showValue(param(p.part, 'productOrService')),
      unit: param(p.part, 'unit'), authorized: param(p.part, 'authorized'), used: param(p.part, 'used'),
      remaining: param(p.part, 'remaining'),
    }));
  } catch (err) {
    return err;
  }
}

async function loadPatient(id) {
  const patient = await fhir(`Patient/${encodeURIComponent(id)}`);
  const ref = `Patient/${id}`;
  const [coverages, answers, auths, claims, invoices, balance] = await Promise.all([
    search('Coverage', {patient: ref}),
    search('CoverageEligibilityResponse', {patient: ref, _sort: '-created', _count: 20}).catch((e) => e),
    search('ClaimResponse', {patient: ref, use: 'preauthorization'}).catch((e) => e),
    search('Claim', {patient: ref, _sort: '-created', _count: 100}),
    search('Invoice', {patient: ref, _sort: '-date'}).catch((e) => e),
    operation(`Patient/${id}/$balance`).catch((e) => e),
  ]);
  const usage = Array.isArray(auths) ? await Promise.all(auths.map(usageOf)) : [];
  const payers = Object.fromEntries(await Promise.all(coverages.flatMap((c) => c.payor || []).map(async (p) => [p.reference, await displayName(p)])));
  return {patient, coverages, answers, auths, usage, claims, invoices, balance, payers};
}

function latestAnswer(answers, coverage) {
  if (!Array.isArray(answers)) return null;
  return answers.find((a) => (a.insurance || []).some((i) => refId(i.coverage) === coverage.id)) || null;
}

function Eligibility({answer}) {
  if (!answer) return html`<p class="empty">No eligibility answer yet.</p>`;
  const ins = (answer.insurance || [])[0] || {};
  return html`<div class="eligibility" data-answer=${answer.id}>
    <p>Answer of ${when(answer.created)}: <strong>${ins.inforce === false ? 'not in force' : ins.inforce ? 'in force' : answer.outcome}</strong>${answer.disposition ? ' — ' + answer.disposition : ''}</p>
    <ul class="plain">${(ins.item || []).map((it) => html`<li>${textOf(it.category) || textOf(it.productOrService)}${it.authorizationRequired ? ' (authorization required)' : ''}:
      ${(it.benefit || []).map((b) => `${textOf(b.type)} ${showValue(b.allowedUnsignedInt ?? b.allowedMoney ?? b.allowedString ?? '')}${b.usedUnsignedInt !== undefined ? ' used ' + b.usedUnsignedInt : ''}`).join('; ')}</li>`)}</ul>
  </div>`;
}

function RecordAuthorization({patientId, coverages, payers, claims, onDone}) {
  const payerRefs = [...new Set(coverages.flatMap((c) => (c.payor || []).map((p) => p.reference)))];
  const today = new Date().toISOString().slice(0, 10);
  const [form, setForm] = useState({insurer: payerRefs[0] || '', ref: '', start: today, end: '', discipline: 'OT', visits: '12'});
  const action = useAction(onDone);
  const set = (k) => (e) => setForm({...form, [k]: e.target.value});
  const provider = (claims.find((c) => c.provider) || {}).provider;
  const submit = (e) => {
    e.preventDefault();
    action.run('Authorization', async () => {
      const auth = {
        resourceType: 'ClaimResponse', status: 'active', use: 'preauthorization', outcome: 'complete',
        type: {coding: [{system: 'http://terminology.hl7.org/CodeSystem/claim-type', code: 'professional'}]},
        patient: {reference: `Patient/${patientId}`}, created: new Date().toISOString(),
        insurer: {reference: form.insurer}, preAuthRef: form.ref.trim(),
        preAuthPeriod: {start: form.start, ...(form.end ? {end: form.end} : {})},
        addItem: [{productOrService: {coding: [{system: DISCIPLINE, code: form.discipline}]},
          quantity: {value: Number(form.visits)},
          adjudication: [{category: {coding: [{system: 'http://terminology.hl7.org/CodeSystem/adjudication', code: 'submitted'}]}}]}],
      };
      if (provider && provider.reference) auth.requestor = {reference: provider.reference};
      await fhir('ClaimResponse', {method: 'POST', body: auth});
      return `Authorization ${auth.preAuthRef} recorded. Regenerate the held claims it covers.`;
    });
  };
  return html`<details class="record-auth"><summary>Record an authorization</summary>
    <form class="grid" onSubmit=${submit}>
      <div><label for="auth-insurer">Payer</label>
        <select id="auth-insurer" value=${form.insurer} onChange=${set('insurer')} required>
          ${payerRefs.map((r) => html`<option value=${r}>${payers[r] || r}</option>`)}</select></div>
      <div><label for="auth-ref">Authorization number</label><input id="auth-ref" value=${form.ref} onInput=${set('ref')} required /></div>
      <div><label for="auth-start">From</label><input id="auth-start" type="date" value=${form.start} onInput=${set('start')} required /></div>
      <div><label for="auth-end">To</label><input id="auth-end" type="date" value=${form.end} onInput=${set('end')} /></div>
      <div><label for="auth-discipline">Discipline</label>
        <select id="auth-discipline" value=${form.discipline} onChange=${set('discipline')}>
          <option value="OT">Occupational therapy</option><option value="PT">Physical therapy</option><option value="SLP">Speech-language pathology</option></select></div>
      <div><label for="auth-visits">Visits authorized</label><input id="auth-visits" type="number" min="1" step="1" value=${form.visits} onInput=${set('visits')} required /></div>
      <div><button type="submit" disabled=${action.busy}>Record authorization</button></div>
    </form>
    <${Done} text=${action.message} /><${ErrorBox} error=${action.error} />
  </details>`;
}

function Balance({balance}) {
  if (balance instanceof Error) return html`<${ErrorBox} error=${balance} />`;
  const rows = [['Balance due', 'balance'], ['Patient responsibility', 'patientResponsibility'], ['Patient payments', 'patientPayments'],
    ['Adjustments', 'patientAdjustments'], ['Waiting on other payers', 'pendingOtherPayers']];
  return html`<dl class="facts">${rows.map(([label, name]) => html`<dt>${label}</dt><dd data-balance=${name}>${money(param(balance.parameter, name))}</dd>`)}</dl>`;
}

export function PatientPage({id}) {
  const {data, error, loading, reload} = useLoad(() => loadPatient(id), [id]);
  const statement = useAction(reload);
  if (loading && !data) return html`<${Loading} what="patient" />`;
  if (error) return html`<h1>Patient</h1><${ErrorBox} error=${error} />`;
  const {patient} = data;
  return html`
    <h1>${nameOf(patient)}</h1>
    <dl class="facts"><dt>Born</dt><dd>${patient.birthDate || '—'}</dd><dt>Sex</dt><dd>${patient.gender || '—'}</dd>
      <dt>Record</dt><dd>${patient.id}</dd></dl>
    <section><h2>Coverages</h2>
      ${data.coverages.length ? data.coverages.map((c) => html`<article class="coverage" data-coverage=${c.id}>
        <h3>${(c.payor || []).map((p) => data.payers[p.reference] || p.display || p.reference).join(', ')} <${Badge} code=${c.status} /></h3>
        <p>Member ${c.subscriberId || (c.identifier && c.identifier[0] && c.identifier[0].value) || '—'} · order ${c.order || 1}
          ${c.period ? ` · ${day(c.period.start)} – ${day(c.period.end)}` : ''}</p>
        <${Eligibility} answer=${latestAnswer(data.answers, c)} /></article>`) : html`<p class="empty">No coverage on file.</p>`}
      ${data.answers instanceof Error ? html`<${ErrorBox} error=${data.answers} />` : null}
    </section>
    <section><h2>Authorizations</h2>
      ${data.auths instanceof Error ? html`<${ErrorBox} error=${data.auths} />` : null}
      ${Array.isArray(data.auths) && data.auths.length ? html`<table class="auths"><thead><tr><th scope="col">Number</th><th scope="col">Period</th>
        <th scope="col">Limit</th><th scope="col">Authorized</th><th scope="col">Used</th><th scope="col">Remaining</th></tr></thead>
        <tbody>${data.auths.map((a, n) => {
          const usage = data.usage[n];
          const rows = usage instanceof Error ? [] : usage;
          const period = `${day(a.preAuthPeriod && a.preAuthPeriod.start)} – ${day(a.preAuthPeriod && a.preAuthPeriod.end)}`;
          if (usage instanceof Error) return html`<tr><td>${a.preAuthRef}</td><td>${period}</td><td colspan="4"><${ErrorBox} error=${usage} /></td></tr>`;
          if (!rows.length) return html`<tr><td>${a.preAuthRef}</td><td>${period}</td><td colspan="4">dates only</td></tr>`;
          return rows.map((u) => html`<tr data-auth=${a.preAuthRef}><td>${a.preAuthRef}</td><td>${period}</td><td>${u.what} (${u.unit})</td>
            <td>${u.authorized}</td><td>${u.used}</td><td>${u.remaining}</td></tr>`);
        })}</tbody></table>` : html`<p class="empty">No authorization on file.</p>`}
      <${RecordAuthorization} patientId=${id} coverages=${data.coverages} payers=${data.payers} claims=${data.claims} onDone=${reload} />
    </section>
    <section><h2>Claims</h2>
      ${data.claims.length ? html`<table class="claims"><thead><tr><th scope="col">Claim</th><th scope="col">Service date</th>
        <th scope="col">Status</th><th scope="col">Total</th></tr></thead>
        <tbody>${data.claims.map((c) => html`<tr><td><a href=${'#/claims/' + c.id}>Claim ${c.id.slice(0, 8)}</a></td>
          <td>${day(c.billablePeriod && c.billablePeriod.start)}</td><td><${Badge} code=${lifecycleOf(c)} label=${LIFECYCLE[lifecycleOf(c)]} /></td>
          <td>${money(c.total)}</td></tr>`)}</tbody></table>` : html`<p class="empty">No claims.</p>`}
    </section>
    <section><h2>Balance</h2><${Balance} balance=${data.balance} /></section>
    <section><h2>Statements</h2>
      ${data.invoices instanceof Error ? html`<${ErrorBox} error=${data.invoices} />` : !data.invoices.length ? html`<p class="empty">No statement issued.</p>`
        : html`<ul class="plain">${data.invoices.map((i) => html`<li>${day(i.date)}: ${money(i.totalGross || i.totalNet)} (${i.status})</li>`)}</ul>`}
      <button type="button" disabled=${statement.busy}
        onClick=${() => statement.run('Statement', () => operation(`Patient/${id}/$statement`).then((inv) => `Statement issued: ${money(inv.totalGross || inv.totalNet)} due.`))}>Issue statement</button>
      <${Done} text=${statement.message} /><${ErrorBox} error=${statement.error} />
    </section>`;
}

export function PatientList({params}) {
  const [name, setName] = useState(params.get('name') || '');
  const [asked, setAsked] = useState(name);
  const {data, error, loading} = useLoad(() => search('Patient', {name: asked, _sort: '_id', _count: 100}), [asked]);
  return html`<h1>Patients</h1>
    <form class="inline" role="search" onSubmit=${(e) => { e.preventDefault(); setAsked(name); }}>
      <label for="patient-name">Name</label><input id="patient-name" value=${name} onInput=${(e) => setName(e.target.value)} />
      <button type="submit">Search</button></form>
    ${loading ? html`<${Loading} what="patients" />` : null}<${ErrorBox} error=${error} />
    ${data ? html`<ul class="plain patients">${data.map((p) => html`<li><a href=${'#/patients/' + p.id}>${nameOf(p)}</a> (${p.birthDate || 'birth date unknown'})</li>`)}</ul>` : null}`;
}
