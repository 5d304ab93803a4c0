// "All my practices": each KPI evaluated in every practice the person may see, each with a token
// issued for that practice (smart.tokenFor), and combined here the way the server's
// app/measures/combine.py does: population counts and amounts summed, proportions and ratios
// scored again from the sums, medians not combinable (each practice's value is shown instead).
import {useEffect, useState} from 'preact/hooks';
import {operation, search} from './fhir.js';
import {currentSession, practicesOf, tokenFor} from './smart.js';
import {MEASURES, scoreText} from './dashboard.js';
import {isoDay} from './format.js';
import {html, ErrorBox, PeriodForm, useLoad} from './ui.js';

const AMOUNT_URL = 'https://therabridge.dev/fhir/StructureDefinition/measure-population-amount';
// Places of a score, by its UCUM unit: fractions to 4 places, days to 1 (as $evaluate-measure scores).
const PLACES = {'1': 4, d: 1};

const codeOf = (concept) => (((concept || {}).coding || [])[0] || {}).code || '';

/** Cents of a population's amount extension, or null (dollars in the report, exact to the cent). */
function cents(pop) {
  const ext = (pop.extension || []).find((e) => e.url === AMOUNT_URL);
  return ext ? Math.round(Number(ext.valueMoney.value) * 100) : null;
}

/** ``num / den`` to ``places`` decimals, rounding half to even (as Python's Decimal.quantize), in integers. */
export function divide(num, den, places) {
  if (den === 0n) return null;
  const scale = 10n ** BigInt(places);
  const scaled = num * scale;
  let q = scaled / den;
  const r = scaled - q * den;
  const twice = 2n * (r < 0n ? -r : r);
  if (twice > den || (twice === den && q % 2n !== 0n)) q += 1n;
  return Number(q) / Number(scale);
}

/** One report over several practices' reports (same measure, same period). */
export function combineReports(reports, scoring) {
  const first = reports[0];
  const days = Math.round((Date.parse(first.period.end.slice(0, 10)) - Date.parse(first.period.start.slice(0, 10))) / 86400000) + 1;
  const group = (first.group || []).map((g, index) => {
    const counts = {};
    const amounts = {};
    let unit = null;
    for (const report of reports) {
      const mine = report.group[index];
      if (mine.measureScore && mine.measureScore.code) unit = mine.measureScore;
      for (const pop of mine.population || []) {
        const code = codeOf(pop.code);
        counts[code] = (counts[code] || 0) + Number(pop.count || 0);
        const amount = cents(pop);
        if (amount !== null) amounts[code] = (amounts[code] || 0) + amount;
      }
    }
    const out = {code: g.code, population: g.population.map((pop) => {
      const code = codeOf(pop.code);
      const combined = {code: pop.code, count: counts[code]};
      if (code in amounts) combined.extension = [{url: AMOUNT_URL, valueMoney: {value: amounts[code] / 100, currency: 'USD'}}];
      return combined;
    })};
    if (scoring !== 'continuous-variable' && unit) {
      const byAmount = 'numerator' in amounts && 'denominator' in amounts;
      let num = BigInt(byAmount ? amounts.numerator : counts.numerator || 0);
      const den = BigInt(byAmount ? amounts.denominator : counts.denominator || 0);
      if (unit.code === 'd') num *= BigInt(days); // a ratio of amounts in days: A/R over the period's days
      const value = divide(num, den, PLACES[unit.code] ?? 4);
      if (value !== null) out.measureScore = {value, unit: unit.unit, system: unit.system, code: unit.code};
    }
    return out;
  });
  return {resourceType: 'MeasureReport', status: 'complete', type: 'summary', measure: first.measure,
    period: first.period, group};
}

function defaultPeriod() {
  const end = new Date();
  return {start: isoDay(new Date(end.getTime() - 89 * 86400000)), end: isoDay(end)};
}

async function evaluateIn(practice, id, start, end) {
  const token = await tokenFor(practice);
  return operation(`Measure/${id}/$evaluate-measure`, {method: 'GET', token, params: {periodStart: start, periodEnd: end}});
}

function CombinedTile({id, title, scoring, practices, answers}) {
  const got = practices.map((p) => answers[p.id]);
  let body;
  if (!scoring || got.some((a) => !a)) body = html`<p class="loading">Computing…</p>`;
  else if (got.some((a) => a.error)) {
    const failed = practices.filter((p) => answers[p.id].error);
    body = html`<p class="error tile-error" role="alert">${failed.map((p) => `${p.name}: ${answers[p.id].error.message}`).join(' ')}</p>`;
  } else {
    const combined = combineReports(got.map((a) => a.report), scoring);
    const score = (combined.group[0] || {}).measureScore;
    const median = scoring === 'continuous-variable';
    body = html`
      ${median ? html`<p class="score per-practice">per practice only</p>`
        : html`<p class="score" data-score=${score ? score.value : ''}>${scoreText(score, scoring)}</p>`}
      <ul class="plain by-practice">${practices.map((p) => {
        const own = (answers[p.id].report.group || [])[0] || {};
        return html`<li data-practice=${p.id} data-score=${own.measureScore ? own.measureScore.value : ''}>
          ${p.name}: ${scoreText(own.measureScore, scoring)}</li>`;
      })}</ul>`;
  }
  return html`<section class="tile" data-measure=${id} aria-label=${title}><h3>${title}</h3>${body}</section>`;
}

/** The combined dashboard; only for a person who may see more than one practice. */
export function Combined({params}) {
  const session = currentSession();
  const practices = practicesOf(session);
  const initial = defaultPeriod();
  const start = params.get('start') || initial.start;
  const end = params.get('end') || initial.end;
  const [form, setForm] = useState({start, end});
  const [answers, setAnswers] = useState({});
  const [asked, setAsked] = useState(0);
  const scorings = useLoad(async () => Object.fromEntries((await search('Measure', {_count: 50}))
    .map((m) => [m.id, codeOf(m.scoring)])), []);
  useEffect(() => { setForm({start, end}); }, [start, end]);
  useEffect(() => {
    if (practices.length < 2) return undefined;
    let live = true;
    setAnswers({});
    for (const [id] of MEASURES) {
      for (const p of practices) {
        evaluateIn(p.id, id, start, end).then(
          (report) => live && setAnswers((a) => ({...a, [id]: {...a[id], [p.id]: {report}}})),
          (error) => live && setAnswers((a) => ({...a, [id]: {...a[id], [p.id]: {error}}})),
        );
      }
    }
    return () => { live = false; };
  }, [start, end, asked, practices.map((p) => p.id).join()]);
  if (practices.length < 2) return html`<h1>All my practices</h1><p>You work for one practice: see the <a href="#/dashboard">dashboard</a>.</p>`;
  const apply = (ev) => {
    ev.preventDefault();
    location.hash = `#/combined?start=${form.start}&end=${form.end}`;
    setAsked((n) => n + 1);
  };
  return html`
    <h1>All my practices</h1>
    <p>${practices.map((p) => p.name).join(', ')}: each figure combined from every practice's own counts and amounts.</p>
    <${PeriodForm} form=${form} setForm=${setForm} onSubmit=${apply} />
    ${start > end ? html`<${ErrorBox} error=${new Error('The period ends before it starts: choose an end on or after the start.')} />` : null}
    <${ErrorBox} error=${scorings.error} />
    <div class="tiles combined" aria-live="polite">
      ${MEASURES.map(([id, title]) => html`<${CombinedTile} id=${id} title=${title}
        scoring=${(scorings.data || {})[id]} practices=${practices} answers=${answers[id] || {}} />`)}
    </div>`;
}
