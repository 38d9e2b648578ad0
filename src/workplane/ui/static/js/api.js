// The dashboard's only way to the server: the public API, with the same access keys and tokens as
// any other client (runapy, curl).
//
// Session: the access token lives in sessionStorage (it survives a reload, dies with the tab); the
// secret lives only in this module's memory, so that the token can be renewed before it expires
// without ever writing the secret anywhere. After a reload there is no secret: the token is used
// until it expires, and then the person is asked to sign in again.

const STORE_KEY = 'workplane.session';
const RENEW_BEFORE_MS = 60_000; // the official client renews with 60 s left; so do we

export class ApiError extends Error {
  constructor(status, message, details) {
    super(message);
    this.status = status;
    this.details = details || '';
  }
}

let session = readStored();
let secret = null;
let renewTimer = null;
const listeners = new Set();

function readStored() {
  try {
    const stored = JSON.parse(sessionStorage.getItem(STORE_KEY) || 'null');
    return stored && stored.expiresAt > Date.now() ? stored : null;
  } catch {
    return null;
  }
}

/** Called with a message when the session ends on its own (expired or refused token). */
export function onSignedOut(listener) {
  listeners.add(listener);
}

export const signedIn = () => session !== null && session.expiresAt > Date.now();
export const clientId = () => (session ? session.clientId : '');

async function requestToken(id, key) {
  let response;
  try {
    response = await fetch('/api/v1/token', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ grantType: 'client_credentials', clientId: id, clientSecret: key }),
    });
  } catch {
    throw new ApiError(0, 'the server cannot be reached');
  }
  const body = await readBody(response);
  if (!response.ok) throw failure(response, body);
  return body;
}

export async function signIn(id, key) {
  const answer = await requestToken(id, key);
  secret = key;
  keep({ token: answer.accessToken, expiresAt: Date.now() + answer.expiresIn * 1000, clientId: id });
}

function keep(next) {
  session = next;
  sessionStorage.setItem(STORE_KEY, JSON.stringify(next));
  scheduleRenewal();
}

function scheduleRenewal() {
  clearTimeout(renewTimer);
  if (!session) return;
  const due = session.expiresAt - RENEW_BEFORE_MS - Date.now();
  renewTimer = setTimeout(renew, Math.max(due, 0));
}

async function renew() {
  if (!session) return;
  if (secret === null) {
    // Reloaded tab: no secret to renew with. End the session when the token runs out.
    renewTimer = setTimeout(() => endSession('Your session has expired. Please sign in again.'),
      Math.max(session.expiresAt - Date.now(), 0));
    return;
  }
  try {
    const answer = await requestToken(session.clientId, secret);
    keep({ ...session, token: answer.accessToken, expiresAt: Date.now() + answer.expiresIn * 1000 });
  } catch (error) {
    if (error.status === 401 || error.status === 400) endSession(`Your access key was refused: ${error.message}`);
    else renewTimer = setTimeout(renew, 10_000); // server briefly away: try again soon
  }
}

export function signOut() {
  clearTimeout(renewTimer);
  session = null;
  secret = null;
  sessionStorage.removeItem(STORE_KEY);
}

function endSession(message) {
  if (!session) return; // already ended: the first message is the one that explains why
  signOut();
  for (const listener of listeners) listener(message);
}

async function readBody(response) {
  const text = await response.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return { message: text.slice(0, 200) };
  }
}

/** The API's Error body ({code, message, details}) as an ApiError; anything else still gets a message. */
function failure(response, body) {
  const message = body && typeof body.message === 'string' ? body.message : response.statusText || 'request failed';
  return new ApiError(response.status, message, body && body.details);
}

/**
 * GET an API path. `params` values may be arrays (sent as repeated parameters, which the API reads
 * exactly like the comma-joined form). Resolves to {status, body}; 207 (a partial metrics answer) is
 * an answer, not an error.
 */
export async function get(path, params = {}, { signal } = {}) {
  if (!signedIn()) {
    // A token that ran out while the tab slept (or with no secret to renew it) ends the session.
    endSession('Your session has expired. Please sign in again.');
    throw new ApiError(401, 'not signed in');
  }
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value === undefined || value === null || value === '') continue;
    for (const item of Array.isArray(value) ? value : [value]) query.append(key, String(item));
  }
  const url = `/api/v1${path}${query.size ? `?${query}` : ''}`;
  let response;
  try {
    response = await fetch(url, { headers: { Authorization: `Bearer ${session.token}` }, signal });
  } catch (error) {
    if (error.name === 'AbortError') throw error;
    throw new ApiError(0, 'the server cannot be reached');
  }
  const body = await readBody(response);
  if (response.status === 401) {
    endSession(`Your session ended: ${body && body.message ? body.message : 'the token was refused'}. Please sign in again.`);
  }
  if (!response.ok) throw failure(response, body);
  return { status: response.status, body };
}

scheduleRenewal();
