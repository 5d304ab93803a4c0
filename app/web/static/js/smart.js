// SMART App Launch (standalone): authorization code + PKCE S256 against this server's own
// authorization server, as a public client. The token lives in sessionStorage (this tab only)
// and leaves the URL as soon as the callback is handled.
const SESSION = 'tb.session';
const PENDING = 'tb.pending';
const PRACTICE = 'tb.practice';
// The most the app asks for; consent and the user's role narrow it. online_access brings a
// refresh token for this session: a person granted several practices switches with it.
export const SCOPES = 'openid fhirUser online_access user/*.cruds';

/** The app's own URL, without query or fragment: also its registered redirect URI. */
export function appUrl() {
  return new URL('./', location.href.split(/[?#]/)[0]).href;
}

/** The FHIR base the tokens are for (the server that serves the app). */
export function fhirBase() {
  return new URL('../fhir', appUrl()).href;
}

function b64url(bytes) {
  let text = '';
  for (const b of new Uint8Array(bytes)) text += String.fromCharCode(b);
  return btoa(text).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function randomText(n) {
  return b64url(crypto.getRandomValues(new Uint8Array(n)));
}

async function sha256(text) {
  return crypto.subtle.digest('SHA-256', new TextEncoder().encode(text));
}

/** The client id the server registered for a practice: app-<slug>, or app-<sha256 hex> when too long. */
export async function clientIdFor(practice) {
  if (practice.length + 4 <= 64) return 'app-' + practice;
  const hex = [...new Uint8Array(await sha256(practice))].map((b) => b.toString(16).padStart(2, '0')).join('');
  return 'app-' + hex.slice(0, 60);
}

export function lastPractice() {
  return localStorage.getItem(PRACTICE) || '';
}

async function configuration() {
  const res = await fetch(fhirBase() + '/.well-known/smart-configuration', {headers: {Accept: 'application/json'}});
  if (!res.ok) throw new Error('The server did not answer its SMART configuration (' + res.status + ').');
  return res.json();
}

/** Leave for the server's login page. */
export async function signIn(practice) {
  if (!window.crypto || !crypto.subtle) {
    throw new Error('This browser offers no Web Crypto here: open the app over HTTPS (or on localhost).');
  }
  const conf = await configuration();
  const clientId = await clientIdFor(practice);
  const verifier = randomText(48);
  const state = randomText(24);
  const challenge = b64url(await sha256(verifier));
  sessionStorage.setItem(PENDING, JSON.stringify({
    state, verifier, practice, clientId,
    tokenEndpoint: conf.token_endpoint, revocationEndpoint: conf.revocation_endpoint,
  }));
  localStorage.setItem(PRACTICE, practice);
  const query = new URLSearchParams({
    response_type: 'code', client_id: clientId, redirect_uri: appUrl(), scope: SCOPES, state,
    aud: fhirBase(), code_challenge: challenge, code_challenge_method: 'S256', practice,
  });
  location.assign(conf.authorization_endpoint + '?' + query);
}

function claimsOf(jwt) {
  try {
    const part = jwt.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(decodeURIComponent(escape(atob(part))));
  } catch {
    return {};
  }
}

/** Finish a redirect back from the login page, if this is one. Returns the session or null. */
export async function handleCallback() {
  const params = new URLSearchParams(location.search);
  if (!params.has('code') && !params.has('error')) return null;
  history.replaceState(null, '', appUrl() + '#/dashboard'); // the code never stays in the URL
  const pending = JSON.parse(sessionStorage.getItem(PENDING) || 'null');
  sessionStorage.removeItem(PENDING);
  if (params.has('error')) {
    throw new Error('Sign-in did not complete: ' + (params.get('error_description') || params.get('error')));
  }
  if (!pending || pending.state !== params.get('state')) {
    throw new Error('This sign-in answer does not belong to this tab; sign in again.');
  }
  const res = await fetch(pending.tokenEndpoint, {
    method: 'POST',
    headers: {'Content-Type': 'application/x-www-form-urlencoded', Accept: 'application/json'},
    body: new URLSearchParams({
      grant_type: 'authorization_code', code: params.get('code'), redirect_uri: appUrl(),
      client_id: pending.clientId, code_verifier: pending.verifier,
    }),
  });
  const answer = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error('Sign-in failed: ' + (answer.error_description || answer.error || res.status));
  const identity = answer.id_token ? claimsOf(answer.id_token) : {};
  const session = {
    accessToken: answer.access_token,
    expiresAt: Date.now() + (answer.expires_in || 3600) * 1000,
    scope: answer.scope || '',
    practice: answer.practice || pending.practice,
    practices: answer.practices || [],
    refreshToken: answer.refresh_token || null,
    tokenEndpoint: pending.tokenEndpoint,
    clientId: pending.clientId,
    revocationEndpoint: pending.revocationEndpoint,
    user: String(identity.sub || '').split('/').slice(1).join('/') || 'signed in',
    fhirUser: identity.fhirUser || null,
  };
  sessionStorage.setItem(SESSION, JSON.stringify(session));
  return session;
}

/** The current session, or null when there is none or it has expired. */
export function currentSession() {
  const session = JSON.parse(sessionStorage.getItem(SESSION) || 'null');
  if (!session || session.expiresAt <= Date.now()) return null;
  return session;
}

export function forget() {
  sessionStorage.removeItem(SESSION);
  others.clear();
}

/** The practices the signed-in person may see: more than one only with grants to other practices. */
export function practicesOf(session) {
  return (session && session.practices) || [];
}

// Tokens for the session's other practices (combined view), by practice: memory only, never stored.
const others = new Map();
// Refresh tokens rotate on every use and reusing a rotated one revokes the grant, so refreshes
// run one at a time.
let refreshing = Promise.resolve();

async function refreshFor(practice) {
  const session = currentSession();
  if (!session || !session.refreshToken) throw new Error('This session cannot switch practice; sign in again.');
  const res = await fetch(session.tokenEndpoint, {
    method: 'POST',
    headers: {'Content-Type': 'application/x-www-form-urlencoded', Accept: 'application/json'},
    body: new URLSearchParams({grant_type: 'refresh_token', refresh_token: session.refreshToken,
      client_id: session.clientId, practice}),
  });
  const answer = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error('Switching practice failed: ' + (answer.error_description || answer.error || res.status));
  if (answer.practice !== practice) throw new Error('The server issued a token for another practice.');
  // The rotated refresh token replaces the old one whichever practice the token is for.
  sessionStorage.setItem(SESSION, JSON.stringify({...session, refreshToken: answer.refresh_token,
    practices: answer.practices || session.practices}));
  return {accessToken: answer.access_token, practice: answer.practice, scope: answer.scope || '',
    expiresAt: Date.now() + (answer.expires_in || 3600) * 1000};
}

function serially(work) {
  const next = refreshing.then(work, work);
  refreshing = next.catch(() => null);
  return next;
}

/** Make ``practice`` the session's practice (refresh grant with ``practice``): no password again. */
export function switchPractice(practice) {
  return serially(async () => {
    const token = await refreshFor(practice);
    const session = currentSession();
    const previous = {accessToken: session.accessToken, practice: session.practice, expiresAt: session.expiresAt};
    others.set(previous.practice, previous);
    others.delete(practice);
    sessionStorage.setItem(SESSION, JSON.stringify({...session, ...token}));
    return currentSession();
  });
}

/** A token issued for ``practice``: the session's own, or one got by the refresh grant (kept in memory). */
export function tokenFor(practice) {
  return serially(async () => {
    const session = currentSession();
    if (!session) throw new Error('Your session has ended; sign in again.');
    if (session.practice === practice) return {accessToken: session.accessToken, practice};
    const known = others.get(practice);
    if (known && known.expiresAt > Date.now() + 30000) return known;
    const token = await refreshFor(practice);
    others.set(practice, token);
    return token;
  });
}

/** Revoke the token at the server and forget it. */
export async function signOut() {
  const session = JSON.parse(sessionStorage.getItem(SESSION) || 'null');
  forget();
  if (session && session.revocationEndpoint) {
    // A refresh token revokes its whole grant: every practice's token of this session.
    for (const token of [session.refreshToken, session.accessToken].filter(Boolean)) {
      await fetch(session.revocationEndpoint, {
        method: 'POST',
        headers: {'Content-Type': 'application/x-www-form-urlencoded'},
        body: new URLSearchParams({token, client_id: session.clientId}),
      }).catch(() => null);
    }
  }
}
