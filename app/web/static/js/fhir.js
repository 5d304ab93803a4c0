// The app's only way to the server: the public FHIR API with the session's bearer token.
// Every failure becomes an ApiError whose message is readable (from the OperationOutcome).
import {currentSession, fhirBase, forget} from './smart.js';

export class ApiError extends Error {
  constructor(status, message, outcome) {
    super(message);
    this.status = status;
    this.outcome = outcome;
  }
}

/** One sentence per issue: its text, and where (the FHIRPath expression) when it says. */
export function describeOutcome(outcome) {
  const issues = (outcome && outcome.issue) || [];
  return issues.map((i) => {
    const text = (i.details && i.details.text) || i.diagnostics || i.code || 'Problem';
    const where = (i.expression || i.location || []).join(', ');
    return where ? `${text} (at ${where})` : text;
  }).join(' ');
}

const STATUS_TEXT = {
  400: 'The server could not accept this request.',
  401: 'Your session has ended; sign in again.',
  403: 'You are not allowed to do this.',
  404: 'Not found.',
  409: 'This conflicts with what is already recorded.',
  412: 'Someone else changed this first; reload and try again.',
  422: 'The server refused this change.',
};

export const SESSION_ENDED = 'tb-session-ended';

/** A FHIR interaction: ``path`` relative to the FHIR base (or an absolute URL the server gave).
 * ``token`` (from smart.tokenFor) sends the request to that token's practice instead of the session's. */
export async function fhir(path, {method = 'GET', body, headers = {}, token} = {}) {
  const session = token ? {accessToken: token.accessToken} : currentSession();
  if (!session) {
    window.dispatchEvent(new Event(SESSION_ENDED));
    throw new ApiError(401, STATUS_TEXT[401]);
  }
  const url = /^https?:/.test(path) ? path : fhirBase() + '/' + path;
  let res;
  try {
    res = await fetch(url, {
      method,
      cache: 'no-store', // always the current version (If-Match needs it), and no PHI in the HTTP cache
      headers: {
        Accept: 'application/fhir+json',
        Authorization: 'Bearer ' + session.accessToken,
        ...(body !== undefined ? {'Content-Type': 'application/fhir+json'} : {}),
        ...headers,
      },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
  } catch {
    throw new ApiError(0, 'The server cannot be reached; check the connection and try again.');
  }
  const text = await res.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (!res.ok) {
    if (res.status === 401 && !token) {
      forget();
      window.dispatchEvent(new Event(SESSION_ENDED));
    }
    const detail = json && json.resourceType === 'OperationOutcome' ? describeOutcome(json) : '';
    const lead = STATUS_TEXT[res.status] || `The server answered ${res.status}.`;
    throw new ApiError(res.status, detail ? `${lead} ${detail}` : lead, json);
  }
  return json;
}

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === '') continue;
    for (const one of [].concat(v)) q.append(k, one);
  }
  return q.toString();
}

/** A search: the resources of the first page (``_count`` up to 200 by default). */
export async function search(type, params = {}) {
  const bundle = await fhir(`${type}?${query({_count: 200, ...params})}`);
  return (bundle.entry || []).filter((e) => !e.search || e.search.mode !== 'outcome').map((e) => e.resource);
}

export function read(type, id) {
  return fhir(`${type}/${encodeURIComponent(id)}`);
}

/** Update with the version read (If-Match), so a change made meanwhile is never overwritten. */
export function update(resource) {
  const version = resource.meta && resource.meta.versionId;
  return fhir(`${resource.resourceType}/${encodeURIComponent(resource.id)}`, {
    method: 'PUT', body: resource, headers: version ? {'If-Match': `W/"${version}"`} : {},
  });
}

export function operation(path, {method = 'POST', params, body, token} = {}) {
  const q = params ? query(params) : '';
  return fhir(q ? `${path}?${q}` : path, {method, body, token});
}

/** The value of a named parameter of a Parameters resource (or of a parameter's parts). */
export function param(parts, name) {
  const p = (parts || []).find((x) => x.name === name);
  if (!p) return undefined;
  const key = Object.keys(p).find((k) => k.startsWith('value'));
  return key ? p[key] : p.part;
}
