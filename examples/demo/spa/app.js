// The demo SPA: plain JavaScript, no build step. Everything it knows about the user comes
// from GET /auth/user; every API call goes through the gateway with the X-CSRF header.
'use strict';

const $ = (id) => document.getElementById(id);
const RETRY_KEY = 'bff-demo:retry';
const HIDDEN_CLAIMS = new Set(['logoutUrl', 'expiresAt']);
const CLAIM_ORDER = ['sub', 'name', 'preferred_username', 'email', 'email_verified'];
const rank = (key) => (CLAIM_ORDER.includes(key) ? CLAIM_ORDER.indexOf(key) : CLAIM_ORDER.length);

let user = null;

async function loadUser() {
  let res;
  try {
    res = await fetch('/auth/user', { headers: { 'X-CSRF': '1' } });
  } catch (err) {
    $('session-loading').textContent = 'The gateway cannot be reached: ' + err.message;
    return;
  }
  $('session-loading').hidden = true;
  user = res.ok ? await res.json() : null;
  if (!res.ok && res.status !== 401) {
    $('session-loading').hidden = false;
    $('session-loading').textContent = `GET /auth/user answered ${res.status}`;
  }
  renderUser();
}

function renderUser() {
  $('signed-in').hidden = !user;
  $('signed-out').hidden = !!user;
  $('header-user').textContent = user ? `Signed in as ${user.name ?? user.sub}` : 'Signed out';
  if (!user) return;
  $('user-name').textContent = user.name ?? user.sub;
  const table = $('claims');
  table.replaceChildren();
  const claims = Object.entries(user).filter(([key]) => !HIDDEN_CLAIMS.has(key));
  claims.sort(([a], [b]) => rank(a) - rank(b));
  for (const [key, value] of claims) {
    const row = table.insertRow();
    row.dataset.claim = key;
    const th = document.createElement('th');
    th.textContent = key;
    row.append(th);
    row.insertCell().textContent = typeof value === 'string' ? value : JSON.stringify(value);
  }
  $('expires').textContent = user.expiresAt ? new Date(user.expiresAt).toLocaleString() : 'when the gateway says so';
}

function summary(entries) {
  const dl = $('api-summary');
  dl.replaceChildren();
  for (const [label, value, id, className] of entries) {
    const dt = document.createElement('dt');
    dt.textContent = label;
    const dd = document.createElement('dd');
    dd.textContent = value ?? '—';
    if (id) dd.id = id;
    if (className) dd.className = className;
    dl.append(dt, dd);
  }
}

async function callApi(path) {
  const buttons = document.querySelectorAll('#api-card button');
  buttons.forEach((b) => (b.disabled = true));
  const result = $('api-result');
  $('api-path').textContent = 'GET ' + path;
  $('api-action').hidden = true;
  let res;
  let body;
  try {
    res = await fetch(path, { headers: { 'X-CSRF': '1' } });
    const text = await res.text();
    try {
      body = JSON.parse(text);
    } catch {
      body = text;
    }
  } catch (err) {
    result.dataset.state = 'error';
    $('api-status').className = 'pill err';
    $('api-status').textContent = 'network error';
    summary([['Error', err.message]]);
    $('api-json').textContent = '';
    buttons.forEach((b) => (b.disabled = false));
    return;
  }
  buttons.forEach((b) => (b.disabled = false));

  $('api-status').textContent = `${res.status} ${res.statusText}`.trim();
  $('api-json').textContent = typeof body === 'string' ? body : JSON.stringify(body, null, 2);
  if (res.ok) {
    result.dataset.state = 'ok';
    $('api-status').className = 'pill ok';
    summary([
      ['The API saw subject', body.sub, 'api-subject'],
      ['with scopes', body.scope, 'api-scopes'],
      ['audience', Array.isArray(body.aud) ? body.aud.join(' ') : body.aud, 'api-aud'],
    ]);
    return;
  }

  result.dataset.state = 'error';
  $('api-status').className = res.status === 401 ? 'pill warn' : 'pill err';
  const problem = typeof body === 'object' && body ? body : {};
  summary([
    ['error', problem.error, 'api-error'],
    ['title', problem.title, 'api-title', 'prose'],
  ]);
  if (res.status === 401 && problem.loginUrl) {
    // Incremental consent (or a sign-in): go to the gateway's loginUrl and come back here.
    const url = new URL(problem.loginUrl, location.origin);
    if (!url.searchParams.has('returnTo')) url.searchParams.set('returnTo', location.pathname);
    const link = $('login-link');
    link.href = url.pathname + url.search;
    link.dataset.retry = path;
    if (problem.error === 'consent_required') {
      const scopes = (problem.scopes ?? []).join(' ');
      $('api-action-text').textContent = `This route needs ${scopes || 'more scopes'}, which you have not granted yet.`;
      link.textContent = 'Grant access';
    } else {
      $('api-action-text').textContent = 'The gateway has no session for this browser.';
      link.textContent = 'Sign in';
    }
    $('api-action').hidden = false;
  }
}

$('sign-in').addEventListener('click', () => {
  location.href = '/auth/login?returnTo=/';
});
$('sign-out').addEventListener('click', () => {
  sessionStorage.removeItem(RETRY_KEY);
  location = user.logoutUrl;
});
$('login-link').addEventListener('click', (event) => {
  // After the round trip, repeat the call that asked for it.
  sessionStorage.setItem(RETRY_KEY, event.currentTarget.dataset.retry ?? '');
});
for (const id of ['call-api', 'call-admin']) {
  $(id).addEventListener('click', (event) => callApi(event.currentTarget.dataset.path));
}

loadUser().then(() => {
  const retry = sessionStorage.getItem(RETRY_KEY);
  sessionStorage.removeItem(RETRY_KEY);
  if (user && retry) callApi(retry);
});
