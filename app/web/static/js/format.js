// Display helpers: money, dates, codes, references.
export const LIFECYCLE = {
  draft: 'Held', clean: 'Clean', queued: 'Queued', submitted: 'Sent', acknowledged: 'Acknowledged (999)',
  accepted: 'Accepted (277CA)', rejected: 'Rejected', paid: 'Paid', 'partially-paid': 'Partly paid',
  denied: 'Denied',
};
export const LIFECYCLE_URL = 'https://therabridge.dev/fhir/StructureDefinition/claim-lifecycle';
export const HISTORY_URL = 'https://therabridge.dev/fhir/StructureDefinition/claim-lifecycle-history';

export function money(m) {
  if (!m || m.value === undefined || m.value === null) return '—';
  return new Intl.NumberFormat('en-US', {style: 'currency', currency: m.currency || 'USD'}).format(Number(m.value));
}

export function day(text) {
  if (!text) return '—';
  return String(text).slice(0, 10);
}

export function when(text) {
  if (!text) return '—';
  const d = new Date(text);
  return isNaN(d) ? String(text) : d.toLocaleString('en-US', {dateStyle: 'medium', timeStyle: 'short'});
}

export function lifecycleOf(claim) {
  const ext = (claim.extension || []).find((e) => e.url === LIFECYCLE_URL);
  if (ext) return ext.valueCode;
  return claim.status === 'draft' ? 'draft' : claim.status;
}

export function lifecycleHistory(claim) {
  const ext = (claim.extension || []).find((e) => e.url === HISTORY_URL);
  return ((ext && ext.extension) || []).map((e) => ({code: e.url, at: e.valueInstant || e.valueDateTime}));
}

export function codeOf(concept) {
  const c = concept && concept.coding && concept.coding[0];
  return (c && c.code) || (concept && concept.text) || '';
}

export function textOf(concept) {
  if (!concept) return '';
  const c = concept.coding && concept.coding[0];
  return concept.text || (c && (c.display || c.code)) || '';
}

export function refId(ref) {
  const r = ref && ref.reference;
  return r ? r.split('/').pop() : '';
}

export function refType(ref) {
  const r = ref && ref.reference;
  return r && r.includes('/') ? r.split('/').slice(-2)[0] : '';
}

export function nameOf(patient) {
  const n = (patient && patient.name && patient.name[0]) || {};
  return n.text || [...(n.given || []), n.family].filter(Boolean).join(' ') || (patient && patient.id) || '';
}

/** A Task input's value by its type code (coding code or text). */
export function taskInput(task, name) {
  const i = (task.input || []).find((x) => codeOf(x.type) === name || (x.type && x.type.text === name));
  if (!i) return undefined;
  const key = Object.keys(i).find((k) => k.startsWith('value'));
  return key ? i[key] : undefined;
}

export function taskInputs(task, name) {
  return (task.input || []).filter((x) => codeOf(x.type) === name).map((i) => {
    const key = Object.keys(i).find((k) => k.startsWith('value'));
    return i[key];
  });
}

export function showValue(v) {
  if (v === undefined || v === null) return '';
  if (typeof v !== 'object') return String(v);
  if (v.value !== undefined && v.currency) return money(v);
  if (v.coding || v.text) return textOf(v);
  if (v.reference) return v.display || v.reference;
  if (v.value !== undefined) return `${v.value}${v.unit ? ' ' + v.unit : ''}`;
  return JSON.stringify(v);
}

export function isoDay(date) {
  return date.toISOString().slice(0, 10);
}
