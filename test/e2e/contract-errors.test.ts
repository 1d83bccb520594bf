import t, { type Test } from 'tap';
import { CookieJar, browse, followRedirects, signIn, type BrowseResponse } from '../helpers/browserless.js';
import { rawRequest } from '../helpers/raw-http.js';
import { API_RESOURCE, apiCall, freePort, startStack, type Stack } from '../helpers/stack.js';

const COOKIE = 'bff';
const SAME_ORIGIN = { 'x-csrf': '1', 'sec-fetch-site': 'same-origin' };

const closedPort = await freePort();
const stack = await startStack({
  extraRoutes: `  - name: down
    prefix: /down
    upstream: http://127.0.0.1:${closedPort}
    auth: user
    scopes: [api.read]
    resource: ${API_RESOURCE}
`,
});
t.teardown(() => stack.close());
const alice = await signIn(stack.url, { login: 'alice' });

/** Requests that reached either upstream so far. */
const upstreamCount = (s: Stack) => s.api.received.length + s.otherApi.received.length;

function assertProblem(t: Test, res: { status: number; headers: Headers | Record<string, unknown>; text: string; json?: Record<string, unknown> }, status: number, error: string) {
  const header = (name: string) => (res.headers instanceof Headers ? res.headers.get(name) : (res.headers[name] as string | undefined));
  t.equal(res.status, status, `status ${status}`);
  t.match(header('content-type'), /^application\/problem\+json/, 'problem+json');
  t.equal(res.json?.error, error, `error ${error}`);
  t.equal(res.json?.status, status, 'the body repeats the status');
  t.notMatch(res.text, /eyJ|\n\s+at |Error:/, 'no token or stack in the body');
}

/** GET /auth/login in this jar; answers the provider's authorize URL (not followed). */
async function startLogin(jar: CookieJar, returnTo = '/'): Promise<BrowseResponse> {
  const res = await followRedirects(`${stack.url}/auth/login?returnTo=${encodeURIComponent(returnTo)}`, jar, { stopAt: () => true });
  if (res.status !== 302 || !res.location) throw new Error(`login answered ${res.status}: ${res.body}`);
  return res;
}

/** Through the provider's pages from an authorize URL; answers the callback URL (not followed). */
async function throughProvider(authorizeUrl: string, jar: CookieJar): Promise<string> {
  const gateway = new URL(stack.url);
  const res = await browse(authorizeUrl, jar, { stopAt: (loc) => loc.origin === gateway.origin && loc.pathname === '/auth/callback' });
  if (!res.location) throw new Error(`the provider did not send the browser back: ${res.status} ${res.url}`);
  return res.location;
}

/** One request to the callback URL in this jar (the redirect to returnTo is not followed). */
function callback(url: string, jar: CookieJar): Promise<BrowseResponse> {
  return followRedirects(url, jar, { stopAt: () => true });
}

/** The session cookie a response sets, as a Cookie header value, if it sets one. */
function sessionCookieOf(res: { headers: Record<string, string | string[] | undefined> }): string | undefined {
  const setCookie = res.headers['set-cookie'];
  const line = (Array.isArray(setCookie) ? setCookie : setCookie ? [setCookie] : []).find((l) => l.startsWith(`${COOKIE}=`));
  return line?.split(';')[0];
}

/** True when this cookie header is a signed-in session for /auth/user. */
async function isSignedIn(cookie: string | undefined): Promise<boolean> {
  if (!cookie) return false;
  return (await apiCall(stack, '/auth/user', cookie)).status === 200;
}

async function assertNoSessionStarted(t: Test, res: BrowseResponse) {
  t.notOk(await isSignedIn(sessionCookieOf(res)), 'no Set-Cookie with a session that works on /auth/user');
}

t.test('a call without a session answers 401 problem+json with a loginUrl and reaches no upstream', async (t) => {
  const before = upstreamCount(stack);
  const res = await apiCall(stack, '/api/orders', '');
  assertProblem(t, res, 401, 'session_expired');
  t.equal(res.json?.loginUrl, '/auth/login');
  t.equal(res.headers.get('location'), null, 'never a redirect to the provider');
  t.equal(upstreamCount(stack), before, 'the upstream received nothing');
});

t.test('a tampered session cookie answers 401 problem+json with a loginUrl and reaches no upstream', async (t) => {
  const value = alice.jar.get(stack.url, COOKIE)!;
  t.ok(value, 'signed in');
  const i = Math.floor(value.length / 2);
  const tampered = value.slice(0, i) + (value[i] === 'A' ? 'B' : 'A') + value.slice(i + 1);
  const before = upstreamCount(stack);
  const res = await apiCall(stack, '/api/orders', `${COOKIE}=${tampered}`);
  assertProblem(t, res, 401, 'session_expired');
  t.equal(res.json?.loginUrl, '/auth/login');
  t.equal(upstreamCount(stack), before, 'the upstream received nothing');
  t.equal((await apiCall(stack, '/api/orders', alice.gatewayCookie)).status, 200, 'the real cookie still works');
});

t.test('an API call without X-CSRF answers 403 csrf_required and the upstream receives nothing', async (t) => {
  const before = upstreamCount(stack);
  const res = await apiCall(stack, '/api/orders', alice.gatewayCookie, { headers: { 'x-csrf': '' } });
  assertProblem(t, res, 403, 'csrf_required');
  const wrong = await apiCall(stack, '/api/orders', alice.gatewayCookie, { headers: { 'x-csrf': 'yes' } });
  assertProblem(t, wrong, 403, 'csrf_required');
  const post = await rawRequest(stack.url, '/api/orders', { method: 'POST', headers: { cookie: alice.gatewayCookie, 'content-type': 'application/json' } });
  assertProblem(t, post, 403, 'csrf_required');
  t.equal(upstreamCount(stack), before, 'the upstream received nothing');
});

t.test('an API call from another site answers 403 cross_site and the upstream receives nothing', async (t) => {
  const before = upstreamCount(stack);
  const byOrigin = await apiCall(stack, '/api/orders', alice.gatewayCookie, { headers: { origin: 'https://evil.example', 'sec-fetch-site': '' } });
  assertProblem(t, byOrigin, 403, 'cross_site');
  const byFetchSite = await apiCall(stack, '/api/orders', alice.gatewayCookie, { headers: { 'sec-fetch-site': 'cross-site' } });
  assertProblem(t, byFetchSite, 403, 'cross_site');
  t.equal(upstreamCount(stack), before, 'the upstream received nothing');
  const sameOrigin = await apiCall(stack, '/api/orders', alice.gatewayCookie, { headers: { origin: new URL(stack.url).origin } });
  t.equal(sameOrigin.status, 200, 'our own Origin is fine');
});

t.test('/auth/login refuses a returnTo that leads off-site with 400 and no redirect', async (t) => {
  const paths = [
    '/auth/login?returnTo=https://evil.example',
    '/auth/login?returnTo=https%3A%2F%2Fevil.example',
    '/auth/login?returnTo=//evil',
    '/auth/login?returnTo=%2F%2Fevil',
    '/auth/login?returnTo=/\\evil',
    '/auth/login?returnTo=%2F%5Cevil',
    '/auth/login?returnTo=/%2F%2Fevil',
    '/auth/login?returnTo=/%252F%252Fevil',
    '/auth/login?returnTo=/%09/evil',
    '/auth/login?returnTo=javascript:alert(1)',
  ];
  for (const path of paths) {
    const res = await rawRequest(stack.url, path);
    t.equal(res.status, 400, `${path} answers 400`);
    t.equal(res.json?.error, 'invalid_return_to', path);
    t.equal(res.headers.location, undefined, `${path} redirects nowhere`);
  }
  const ok = await rawRequest(stack.url, '/auth/login?returnTo=/orders%3Ftab%3D1');
  t.equal(ok.status, 302, 'a same-origin path is fine');
});

t.test('a returnTo with non-ASCII characters signs in and lands there, percent-encoded (bug: the callback answered 500)', async (t) => {
  const jar = new CookieJar();
  const login = await startLogin(jar, '/日本?q=é');
  const done = await callback(await throughProvider(login.location!, jar), jar);
  t.equal(done.status, 302, done.body);
  t.equal(done.headers.location, '/%E6%97%A5%E6%9C%AC?q=%C3%A9');
  t.ok(await isSignedIn(jar.header(stack.url)));
});

t.test('/auth/login and /auth/callback answers are never cached', async (t) => {
  const jar = new CookieJar();
  const login = await startLogin(jar);
  t.equal(login.headers['cache-control'], 'no-store', '/auth/login 302');
  const callbackUrl = await throughProvider(login.location!, jar);
  const done = await callback(callbackUrl, jar);
  t.equal(done.status, 302);
  t.equal(done.headers['cache-control'], 'no-store', '/auth/callback 302');
  const refused = await callback(callbackUrl, jar);
  t.equal(refused.status, 400);
  t.equal(refused.headers['cache-control'], 'no-store', '/auth/callback 400');
  const bad = await rawRequest(stack.url, '/auth/login?returnTo=//evil');
  t.equal(bad.headers['cache-control'], 'no-store', '/auth/login 400');
});

t.test('a callback with a wrong state answers 400 problem+json and starts no session', async (t) => {
  const jar = new CookieJar();
  const login = await startLogin(jar);
  const callbackUrl = new URL(await throughProvider(login.location!, jar));
  callbackUrl.searchParams.set('state', 'not-the-state-we-sent');
  const res = await callback(callbackUrl.href, jar);
  assertProblem(t, { ...res, text: res.body, json: JSON.parse(res.body) as Record<string, unknown> }, 400, 'login_failed');
  await assertNoSessionStarted(t, res);
  t.notOk(await isSignedIn(jar.header(stack.url)), 'the browser is not signed in');
});

t.test('a callback without a state answers 400 problem+json and starts no session', async (t) => {
  const jar = new CookieJar();
  const login = await startLogin(jar);
  const callbackUrl = new URL(await throughProvider(login.location!, jar));
  callbackUrl.searchParams.delete('state');
  const res = await callback(callbackUrl.href, jar);
  assertProblem(t, { ...res, text: res.body, json: JSON.parse(res.body) as Record<string, unknown> }, 400, 'login_failed');
  await assertNoSessionStarted(t, res);
  t.notOk(await isSignedIn(jar.header(stack.url)), 'the browser is not signed in');
});

t.test('a replayed callback (same state, same code) answers 400 problem+json and starts no session', async (t) => {
  const jar = new CookieJar();
  const login = await startLogin(jar);
  const callbackUrl = await throughProvider(login.location!, jar);
  const first = await callback(callbackUrl, jar);
  t.equal(first.status, 302, 'the first use signs in');
  t.ok(await isSignedIn(sessionCookieOf(first)), 'with a working session');
  const codeGrants = stack.provider.counts.codeGrants;

  const replay = await callback(callbackUrl, jar);
  assertProblem(t, { ...replay, text: replay.body, json: JSON.parse(replay.body) as Record<string, unknown> }, 400, 'login_failed');
  await assertNoSessionStarted(t, replay);
  const elsewhere = await callback(callbackUrl, new CookieJar());
  t.equal(elsewhere.status, 400, 'replayed from another browser too');
  await assertNoSessionStarted(t, elsewhere);
  t.equal(stack.provider.counts.codeGrants, codeGrants, 'the code was not sent to the provider again');
});

t.test('a replayed authorization code with a fresh state answers 400 problem+json and starts no session', async (t) => {
  const jar = new CookieJar();
  const first = await startLogin(jar);
  const second = await startLogin(jar);
  const used = new URL(await throughProvider(first.location!, jar));
  t.equal((await callback(used.href, jar)).status, 302, 'the code is redeemed once');

  const replay = new URL(used);
  replay.searchParams.set('state', new URL(second.location!).searchParams.get('state')!);
  const codeGrants = stack.provider.counts.codeGrants;
  const res = await callback(replay.href, jar);
  assertProblem(t, { ...res, text: res.body, json: JSON.parse(res.body) as Record<string, unknown> }, 400, 'login_failed');
  await assertNoSessionStarted(t, res);
  t.equal(stack.provider.counts.codeGrants, codeGrants, 'the provider issued nothing for it');
});

t.test('a callback finished in another browser fails: the state is bound to the browser that started the login', async (t) => {
  const jar = new CookieJar();
  const login = await startLogin(jar);
  const callbackUrl = await throughProvider(login.location!, jar);

  const attacker = new CookieJar();
  const noCookie = await callback(callbackUrl, attacker);
  assertProblem(t, { ...noCookie, text: noCookie.body, json: JSON.parse(noCookie.body) as Record<string, unknown> }, 400, 'login_failed');
  await assertNoSessionStarted(t, noCookie);
  t.notOk(await isSignedIn(attacker.header(stack.url)), 'the other browser is not signed in');

  // Another browser with a login of its own: its binding is not this state's binding.
  const jar2 = new CookieJar();
  const login2 = await startLogin(jar2);
  const callbackUrl2 = await throughProvider(login2.location!, jar2);
  const other = new CookieJar();
  await startLogin(other);
  const foreign = await callback(callbackUrl2, other);
  t.equal(foreign.status, 400, 'a different binding fails too');
  await assertNoSessionStarted(t, foreign);
  t.notOk(await isSignedIn(other.header(stack.url)));

  // The real browser finishes afterwards: the foreign attempts did not spend its state.
  const real = await callback(callbackUrl2, jar2);
  t.equal(real.status, 302, 'the real sign-in still completes (bug: a foreign callback used to spend the state)');
  t.ok(await isSignedIn(jar2.header(stack.url)));
});

t.test('50 logins in one browser keep its cookie header under 1 KB, and the last one still completes', async (t) => {
  const jar = new CookieJar();
  let last: BrowseResponse | undefined;
  for (let i = 0; i < 50; i++) last = await startLogin(jar, `/page/${i}`);
  const header = jar.header(stack.url);
  t.ok(header.length < 1024, `cookie header is ${header.length} bytes`);
  const done = await callback(await throughProvider(last!.location!, jar), jar);
  t.equal(done.status, 302);
  t.equal(done.headers.location, '/page/49');
  t.ok(await isSignedIn(jar.header(stack.url)));
});

t.test('two tabs logging in at once in one browser both succeed, the second finished first', async (t) => {
  const jar = new CookieJar();
  const tab1 = await startLogin(jar, '/tab-1');
  const tab2 = await startLogin(jar, '/tab-2');
  const done2 = await callback(await throughProvider(tab2.location!, jar), jar);
  t.equal(done2.status, 302, 'tab 2 signs in');
  t.equal(done2.headers.location, '/tab-2');
  t.ok(await isSignedIn(jar.header(stack.url)));
  const done1 = await callback(await throughProvider(tab1.location!, jar), jar);
  t.equal(done1.status, 302, 'tab 1 signs in as well');
  t.equal(done1.headers.location, '/tab-1');
  t.ok(await isSignedIn(jar.header(stack.url)), 'the browser is signed in');
  t.equal((await apiCall(stack, '/api/orders', jar.header(stack.url))).status, 200, 'and its API calls work');
});

t.test('the session cookie is HttpOnly, SameSite=Lax, Path=/ and under 1 KB', async (t) => {
  const jar = new CookieJar();
  const login = await startLogin(jar);
  const res = await callback(await throughProvider(login.location!, jar), jar);
  const setCookie = res.headers['set-cookie'];
  const line = (Array.isArray(setCookie) ? setCookie : [String(setCookie)]).find((l) => l.startsWith(`${COOKIE}=`));
  t.ok(line, 'the callback sets the session cookie');
  const attributes = line!.split(';').slice(1).map((a) => a.trim().toLowerCase());
  t.ok(attributes.includes('httponly'), 'HttpOnly');
  t.ok(attributes.includes('samesite=lax'), 'SameSite=Lax');
  t.ok(attributes.includes('path=/'), 'Path=/');
  t.notOk(attributes.some((a) => a.startsWith('domain=')), 'no Domain: host-only');
  t.ok(line!.length < 1024, `Set-Cookie is ${line!.length} bytes`);
  t.ok(jar.header(stack.url).length < 1024, 'the Cookie header the browser sends is under 1 KB');
});

t.test('a path with dot segments or encoded slashes answers 400 and the upstream receives nothing', async (t) => {
  const before = upstreamCount(stack);
  const headers = { cookie: alice.gatewayCookie, ...SAME_ORIGIN };
  for (const path of ['/api/../other/x', '/api/..', '/api/%2e%2e/other/x', '/api/%2E%2E/other', '/api%2f..%2fother', '/api/a%2Fb', '/other/..%2f..%2fapi/x', '/api/.%2e/x', '/api/x%5c..%5c..', '/app-api/../api']) {
    const res = await rawRequest(stack.url, path, { headers });
    assertProblem(t, res, 400, 'invalid_path');
  }
  t.equal(upstreamCount(stack), before, 'the upstream received nothing');
});

t.test('Connection: authorization does not strip the injected token', async (t) => {
  const res = await rawRequest(stack.url, '/api/orders', { headers: { cookie: alice.gatewayCookie, ...SAME_ORIGIN, authorization: 'Bearer browser-token', connection: 'authorization' } });
  t.equal(res.status, 200, res.text);
  const seen = stack.api.received.at(-1)!;
  t.equal(seen.url, '/v1/orders');
  t.match(seen.headers.authorization, /^Bearer eyJ/, 'the route token reached the upstream');
  t.notOk(seen.verifyError, 'and it verified');
  const keepAlive = await rawRequest(stack.url, '/api/orders', { headers: { cookie: alice.gatewayCookie, ...SAME_ORIGIN, connection: 'keep-alive, Authorization, x-csrf' } });
  t.equal(keepAlive.status, 200, 'several names, any case');
  t.notOk(stack.api.received.at(-1)!.verifyError);
});

t.test('an upstream 401 or 403 passes through unchanged', async (t) => {
  t.teardown(() => stack.api.setStatus(null));
  for (const status of [401, 403]) {
    const challenge = status === 401 ? 'Bearer error="invalid_token"' : 'Bearer error="insufficient_scope", scope="api.admin"';
    stack.api.setStatus(status, { 'www-authenticate': challenge, 'x-api-detail': 'kept' });
    const res = await apiCall(stack, '/api/orders', alice.gatewayCookie);
    t.equal(res.status, status);
    t.equal(res.text, JSON.stringify({ error: 'forced', status }), 'the upstream body, as it was');
    t.match(res.headers.get('content-type'), /^application\/json/, 'not turned into a gateway problem');
    t.equal(res.headers.get('www-authenticate'), challenge);
    t.equal(res.headers.get('x-api-detail'), 'kept');
  }
  stack.api.setStatus(null);
  t.equal((await apiCall(stack, '/api/orders', alice.gatewayCookie)).status, 200, 'the session is untouched');
});

t.test('an upstream that is down answers 502 problem+json upstream_unavailable', async (t) => {
  const res = await apiCall(stack, '/down/orders', alice.gatewayCookie);
  assertProblem(t, res, 502, 'upstream_unavailable');
  t.notMatch(res.text, new RegExp(`ECONNREFUSED|${closedPort}|127\\.0\\.0\\.1`), 'no upstream address or error code in the body');
  t.equal((await apiCall(stack, '/api/orders', alice.gatewayCookie)).status, 200, 'other routes still work');
});

t.test('/api-internal does not reach the /api upstream route (prefix confusion)', async (t) => {
  const before = stack.api.received.length;
  const res = await apiCall(stack, '/api-internal/secrets', alice.gatewayCookie);
  t.not(res.status, 200, 'no data');
  const seen = stack.api.received.slice(before);
  t.notOk(seen.some((r) => r.url.startsWith('/v1')), 'not proxied by the /api route (no rewrite to /v1)');
  t.notOk(seen.some((r) => r.headers.authorization), 'no token went with it');
  t.same(seen.map((r) => r.url), ['/api-internal/secrets'], 'it went to the catch-all route as it was');
  const also = await apiCall(stack, '/apix', alice.gatewayCookie);
  t.not(also.status, 200);
  t.notOk(stack.api.received.slice(before).some((r) => r.headers.authorization), 'nor for /apix');
});
