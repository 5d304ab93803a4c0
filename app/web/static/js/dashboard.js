// Dashboard: the revenue-cycle KPIs of a period ($evaluate-measure), drillable to their claims
// (reportType=subject-list), and a trend from the weekly stored MeasureReports.
import {useEffect, useRef, useState} from 'preact/hooks';
import {fhir, operation, search} from './fhir.js';
import {day, isoDay, lifecycleOf, LIFECYCLE, money, refId} from './format.js';
import {html, ErrorBox, Loading, PeriodForm, useLoad, Badge} from './ui.js';

export const MEASURES = [
  ['clean-claim-rate', 'Clean claim rate'], ['first-pass-yield', 'First-pass yield'], ['denial-rate', 'Denial rate'],
  ['days-in-ar', 'Days in A/R'], ['aged-ar-over-90', 'A/R over 90 days'], ['net-collection-rate', 'Net collection rate'],
  ['days-to-payment', 'Days to payment'], ['eligibility-verification-rate', 'Eligibility verification rate'],
  ['authorization-rate', 'Authorization rate'],
];

function defaultPeriod() {
  const end = new Date();
  const start = new Date(end.getTime() - 89 * 86400000);
  return {start: isoDay(start), end: isoDay(end)};
}

/** The score as shown: a proportion or ratio (UCUM unit "1") as a percentage, days as days. */
export function scoreText(quantity, scoring) {
  if (!quantity || quantity.value === undefined || quantity.value === null) return 'no data';
  let value = Number(quantity.value);
  let unit = quantity.code || quantity.unit || '';
  if (unit === '1' || (!unit && scoring === 'proportion')) { value *= 100; unit = '%'; }
  const number = value.toLocaleString('en-US', {maximumFractionDigits: unit === '%' ? 1 : 2});
  if (unit === '%') return number + '%';
  if (unit === 'd') return number + (value === 1 ? ' day' : ' days');
  return unit ? `${number} ${unit}` : number;
}

const codeText = (concept) => (concept && ((concept.coding && concept.coding[0] && concept.coding[0].code) || concept.text)) || '';

function populationCount(group, code) {
  const p = ((group && group.population) || []).find((x) => x.code && x.code.coding && x.code.coding[0].code === code);
  return p ? p.count : undefined;
}

async function evaluate(id, start, end, reportType) {
  return operation(`Measure/${id}/$evaluate-measure`, {method: 'GET',
    params: {periodStart: start, periodEnd: end, reportType}});
}

function Tile({id, title, start, end, result}) {
  const body = () => {
    if (!result) return html`<p class="loading">Computing…</p>`;
    if (result.error) return html`<p class="error tile-error" role="alert">${result.error.message}</p>`;
    const [group = {}, ...others] = result.report.group || [];
    const num = populationCount(group, 'numerator');
    const den = populationCount(group, 'denominator');
    const all = populationCount(group, 'initial-population');
    const proportion = result.scoring === 'proportion';
    return html`
      <p class="score" data-score=${group.measureScore ? group.measureScore.value : ''}>${scoreText(group.measureScore, result.scoring)}</p>
      ${proportion && num !== undefined && den !== undefined ? html`<p class="counts">${num} of ${den} claims</p>`
        : all !== undefined ? html`<p class="counts">over ${all} claims</p>` : null}
      ${others.map((g) => html`<p class="counts">by ${codeText(g.code)}: ${scoreText(g.measureScore, result.scoring)}</p>`)}
      <a href=${`#/measure/${id}/${start}/${end}`}>Claims behind it<span class="sr"> (${title})</span></a>`;
  };
  return html`<section class="tile" data-measure=${id} aria-label=${title}>
    <h3>${title}</h3>${body()}</section>`;
}

function TrendChart({measures}) {
  const [chosen, setChosen] = useState('denial-rate');
  const canvas = useRef(null);
  const chart = useRef(null);
  const measure = measures.find((m) => m.id === chosen);
  const {data, error, loading} = useLoad(async () => {
    const params = {_sort: 'period', _count: 200, measure: (measure && measure.url) || `Measure/${chosen}`};
    const reports = await search('MeasureReport', params);
    return reports.map((r) => {
      const score = ((r.group || [])[0] || {}).measureScore || {};
      const percent = score.code === '1';
      return {end: day(r.period && r.period.end), text: scoreText(score),
        value: score.value === undefined || score.value === null ? null : Number(score.value) * (percent ? 100 : 1)};
    });
  }, [chosen, measure && measure.url]);
  useEffect(() => {
    if (!canvas.current || !data || !data.length || !window.Chart) return undefined;
    if (chart.current) chart.current.destroy();
    chart.current = new window.Chart(canvas.current, {
      type: 'line',
      data: {labels: data.map((p) => p.end),
        datasets: [{label: measure ? measure.title : chosen, data: data.map((p) => p.value), borderColor: '#1d5fa7',
          backgroundColor: '#1d5fa7', tension: 0.2, spanGaps: true}]},
      options: {animation: false, responsive: true, maintainAspectRatio: false, plugins: {legend: {display: false}},
        scales: {y: {beginAtZero: true}}},
    });
    return () => { if (chart.current) { chart.current.destroy(); chart.current = null; } };
  }, [data]);
  return html`<section class="trend" aria-labelledby="trend-title">
    <h2 id="trend-title">Weekly trend</h2>
    <label for="trend-measure">Measure</label>
    <select id="trend-measure" value=${chosen} onChange=${(e) => setChosen(e.target.value)}>
      ${measures.map((m) => html`<option value=${m.id}>${m.title}</option>`)}
    </select>
    ${loading ? html`<${Loading} what="weekly reports" />` : null}
    <${ErrorBox} error=${error} />
    ${data && !data.length ? html`<p>No weekly reports stored for this measure yet.</p>` : null}
    ${data && data.length ? html`
      <div class="chart"><canvas ref=${canvas} role="img" aria-label=${`Weekly ${measure ? measure.title : chosen}`}></canvas></div>
      <details><summary>Figures</summary><table><thead><tr><th scope="col">Week ending</th><th scope="col">Score</th></tr></thead>
        <tbody>${data.map((p) => html`<tr><td>${p.end}</td><td>${p.text}</td></tr>`)}</tbody></table></details>` : null}
  </section>`;
}

export function Dashboard({params}) {
  const initial = defaultPeriod();
  const start = params.get('start') || initial.start;
  const end = params.get('end') || initial.end;
  const [form, setForm] = useState({start, end});
  const [results, setResults] = useState({});
  const [problem, setProblem] = useState(null);
  const [asked, setAsked] = useState(0); // "Show" again recomputes the same period
  const measures = useLoad(async () => {
    try {
      const found = await search('Measure', {_count: 50});
      const byId = Object.fromEntries(found.map((m) => [m.id, m]));
      return MEASURES.map(([id, title]) => ({id, title: (byId[id] && byId[id].title) || title,
        url: byId[id] && byId[id].url, scoring: byId[id] && ((byId[id].scoring || {}).coding || [{}])[0].code}));
    } catch {
      return MEASURES.map(([id, title]) => ({id, title}));
    }
  }, []);
  useEffect(() => { setForm({start, end}); }, [start, end]);
  useEffect(() => {
    if (!measures.data) return;
    let live = true;
    setResults({});
    setProblem(start > end ? new Error('The period ends before it starts: choose an end on or after the start.') : null);
    for (const m of measures.data) {
      evaluate(m.id, start, end).then(
        (report) => live && setResults((r) => ({...r, [m.id]: {report, scoring: m.scoring}})),
        (error) => live && setResults((r) => ({...r, [m.id]: {error}})),
      );
    }
    return () => { live = false; };
  }, [measures.data, start, end, asked]);
  const apply = (ev) => {
    ev.preventDefault();
    location.hash = `#/dashboard?start=${form.start}&end=${form.end}`;
    setAsked((n) => n + 1);
  };
  return html`
    <h1>Dashboard</h1>
    <${PeriodForm} form=${form} setForm=${setForm} onSubmit=${apply} />
    ${problem ? html`<p class="error" id="period-error" role="alert">${problem.message}</p>` : null}
    ${measures.loading ? html`<${Loading} what="measures" />` : html`
      <div class="tiles" aria-live="polite">
        ${measures.data.map((m) => html`<${Tile} id=${m.id} title=${m.title} start=${start} end=${end} result=${results[m.id]} />`)}
      </div>
      <${TrendChart} measures=${measures.data} />`}`;
}

async function subjectClaims(report) {
  const out = [];
  const lists = {};
  for (const group of report.group || []) {
    for (const pop of group.population || []) {
      const ref = pop.subjectResults && pop.subjectResults.reference;
      if (!ref) continue;
      if (!(ref in lists)) {
        lists[ref] = ref.startsWith('#') ? (report.contained || []).find((c) => c.id === ref.slice(1)) : await fhir(ref);
      }
      const ids = ((lists[ref] && lists[ref].entry) || []).map((e) => refId(e.item)).filter(Boolean);
      const label = codeText(pop.code) || 'population';
      if (!out.some((o) => o.population === label && o.ids.join() === ids.join())) out.push({population: label, ids});
    }
  }
  const all = [...new Set(out.flatMap((p) => p.ids))];
  const claims = {};
  for (let i = 0; i < all.length; i += 100) {
    for (const c of await search('Claim', {_id: all.slice(i, i + 100).join(','), _count: 100})) claims[c.id] = c;
  }
  return {populations: out, claims};
}

function Strata({report}) {
  const groups = report.group || [];
  return groups.map((group) => html`<section class="strata">
    <h2>Score ${groups.length > 1 ? `(${codeText(group.code)})` : ''}: ${scoreText(group.measureScore, report.scoring)}</h2>
    ${(group.stratifier || []).map((st) => html`<table><caption>By ${codeText((st.code || [])[0])}</caption>
      <thead><tr><th scope="col">Stratum</th><th scope="col">Score</th><th scope="col">Claims</th></tr></thead>
      <tbody>${(st.stratum || []).map((x) => html`<tr><td>${(x.value && (x.value.text || codeText(x.value))) || '—'}</td>
        <td>${scoreText(x.measureScore)}</td><td>${((x.population || []).find((p) => codeText(p.code) === 'initial-population') || {}).count ?? ''}</td></tr>`)}</tbody></table>`)}
  </section>`);
}

export function MeasureClaims({id, start, end}) {
  const title = (MEASURES.find(([m]) => m === id) || [id, id])[1];
  const {data, error, loading} = useLoad(async () => {
    const [listed, summary] = await Promise.all([evaluate(id, start, end, 'subject-list'), evaluate(id, start, end)]);
    return {...(await subjectClaims(listed)), summary};
  }, [id, start, end]);
  return html`
    <p><a href=${`#/dashboard?start=${start}&end=${end}`}>← Dashboard</a></p>
    <h1>${title}: claims from ${start} to ${end}</h1>
    ${loading ? html`<${Loading} what="claims" />` : null}
    <${ErrorBox} error=${error} />
    ${data ? html`<${Strata} report=${data.summary} />` : null}
    ${data && !data.populations.length ? html`<p>This measure lists no claims for the period.</p>` : null}
    ${data && data.populations.map((p) => html`
      <section><h2>${p.population} (${p.ids.length})</h2>
        <table class="claims"><thead><tr><th scope="col">Claim</th><th scope="col">Service date</th><th scope="col">Status</th><th scope="col">Total</th></tr></thead>
        <tbody>${p.ids.map((cid) => {
          const c = data.claims[cid];
          return html`<tr><td><a href=${'#/claims/' + cid}>${cid.slice(0, 8)}</a></td>
            <td>${c ? day(c.billablePeriod && c.billablePeriod.start) : '—'}</td>
            <td>${c ? html`<${Badge} code=${lifecycleOf(c)} label=${LIFECYCLE[lifecycleOf(c)]} />` : '—'}</td>
            <td>${c ? money(c.total) : '—'}</td></tr>`;
        })}</tbody></table></section>`)}`;
}
