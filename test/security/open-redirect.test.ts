/**
 * Open redirects: hostile returnTo values through the whole sign-in, and hostile
 * post-logout targets. The gateway's Location is on its own origin, or the provider's
 * authorize / end-session endpoint, never anywhere an attacker names.
 */
import t, { type Test } from 'tap';
import { rawRequest } from '../helpers/raw-http.js';
import { attemptLogin, isSignedIn, spaCall, startHostileStack, type HostileStack } from '../helpers/hostile-provider.js';

const stack = await startHostileStack();
t.teardown(() => stack.close());
const publicOrigin = new URL(stack.publicUrl).origin;

/** Values an attacker puts in returnTo to make the gateway send the browser elsewhere. */
const HOSTILE_RETURN_TO = [
  '//evil.example',
  '//evil.example/path',
  '///evil.example',
  '/\\evil.example',
  '\\\\evil.example',
  '\\/evil.example',
  '/\t/evil.example',
  '/%09/evil.example',
  '/%2F%2Fevil.example',
  '%2F%2Fevil.example',
  '/%2f%2fevil.example',
  '/%5C%5Cevil.example',
  '/%5cevil.example',
  'https:evil.example',
  'https:/evil.example',
  'https://evil.example',
  'HTTPS://evil.example',
  'http://evil.example',
  'ftp://evil.example',
  '@evil.example',
  'evil.example',
  '.evil.example',
  'javascript:alert(1)',
  'JaVaScRiPt:alert(1)',
  ' javascript:alert(1)',
  'java\tscript:alert(1)',
  'data:text/html,<script>alert(1)</script>',
  'vbscript:msgbox(1)',
  '/\r\nLocation: https://evil.example',
  '/\r\nSet-Cookie: bff=attacker',
  '/%0d%0aLocation:%20https://evil.example',
  '/%0D%0ASet-Cookie:%20bff=attacker',
  '/a\u0000b',
  '/%00//evil.example',
  '/' + 'a'.repeat(5000),
  '/' + '%2F'.repeat(2000),
  '\u2028//evil.example',
  ' //evil.example',
  '/\\/evil.example',
];

/**
 * Values that look hostile but are same-origin paths (a browser resolves each of them on
 * the gateway's origin): accepted, and the sign-in must land on the gateway.
 */
const LOOKALIKES = [
  '/%252F%252Fevil.example',
  '/..//evil.example',
  '/.//evil.example',
  '/%2e%2e//evil.example',
  '/@evil.example',
  '/\u3000/evil.example',
  '/\uFF0F\uFF0Fevil.example',
  '/ok?next=//evil.example',
  '/ok#//evil.example',
];

/** A value as test output can carry it: ASCII only (U+2028 would break a TAP line). */
function show(value: string): string {
  return JSON.stringify(value.slice(0, 40)).replace(/[^\x20-\x7e]/g, (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'));
}

/** Where a browser goes with this Location, resolved as a browser would (WHATWG URL). */
function resolved(location: string): URL {
  return new URL(location, stack.publicUrl + '/somewhere/deep');
}

function assertOnOrigin(t: Test, location: string | undefined, what: string) {
  t.ok(location !== undefined, `${what}: has a Location`);
  if (location === undefined) return;
  t.notMatch(location, /[\u0000-\u001f\u007f]/, `${what}: no control characters in Location`);
  t.equal(resolved(location).origin, publicOrigin, `${what}: Location ${show(location)} stays on the gateway's origin`);
}

t.test('every hostile returnTo is refused at /auth/login with 400 (414 when the URL is overlong) and no Location', async (t) => {
  for (const value of HOSTILE_RETURN_TO) {
    const what = show(value);
    const login = await rawRequest(stack.url, `/auth/login?returnTo=${encodeURIComponent(value)}`);
    if (login.status === 414) t.ok(encodeURIComponent(value).length > 8000, `${what}: 414, for an overlong URL only`);
    else {
      t.equal(login.status, 400, `${what}: 400`);
      t.equal(login.json?.error, 'invalid_return_to', `${what}: invalid_return_to`);
    }
    t.equal(login.headers.location, undefined, `${what}: no Location`);
    t.notOk(login.headers['set-cookie'], `${what}: no cookie set`);
  }
});

t.test('returnTo values that only look hostile sign the user in and land on the gateway origin', async (t) => {
  for (const value of LOOKALIKES) {
    const what = show(value);
    const login = await rawRequest(stack.url, `/auth/login?returnTo=${encodeURIComponent(value)}`);
    t.equal(login.status, 302, `${what}: a 302 to the provider`);
    const authorize = new URL(String(login.headers.location));
    t.equal(authorize.origin + authorize.pathname, `${stack.provider.issuer}/authorize`, `${what}: to the authorize endpoint`);
    const attempt = await attemptLogin(stack, { returnTo: value });
    t.equal(attempt.callback?.status, 302, `${what}: the sign-in completes`);
    assertOnOrigin(t, attempt.callback?.headers.location as string | undefined, what);
  }
});

t.test('a returnTo sent unencoded or given twice is refused with 400', async (t) => {
  for (const query of ['returnTo=//evil.example', 'returnTo=/\\evil.example', 'returnTo=https://evil.example', 'returnTo=/ok&returnTo=//evil.example', 'returnTo=//evil.example&returnTo=/ok']) {
    const res = await rawRequest(stack.url, `/auth/login?${query}`);
    t.equal(res.status, 400, `${query}: 400`);
    t.equal(res.headers.location, undefined, `${query}: no Location`);
  }
});

t.test('bracketed returnTo[] parameters are not read as returnTo: the sign-in lands on /', async (t) => {
  for (const query of ['returnTo[]=//evil.example', 'returnTo[a]=//evil.example', 'returnTo.x=//evil.example']) {
    const attempt = await attemptLogin(stack, { query });
    t.equal(attempt.callback?.status, 302, `${query}: signs in`);
    t.equal(attempt.callback?.headers.location, '/', `${query}: lands on /`);
  }
});

t.test('the callback redirect carries the stored returnTo, not one an attacker appends to the callback URL', async (t) => {
  stack.provider.behaviour.callbackExtra = [['returnTo', '//evil.example']];
  t.teardown(() => {
    stack.provider.behaviour.callbackExtra = undefined;
  });
  const attempt = await attemptLogin(stack, { returnTo: '/home' });
  t.equal(attempt.callback?.status, 302);
  t.equal(attempt.callback?.headers.location, '/home', 'the returnTo given at /auth/login');
});

/** A signed-in browser's cookie and the logout URL /auth/user hands it. */
async function signedIn(target: HostileStack = stack): Promise<{ cookie: string; logoutUrl: string }> {
  const attempt = await attemptLogin(target);
  const cookie = attempt.jar.header(target.url);
  const user = await spaCall(target, '/auth/user', cookie);
  if (user.status !== 200) throw new Error('sign-in failed: ' + user.text);
  return { cookie, logoutUrl: String(user.json?.logoutUrl) };
}

const HOSTILE_LOGOUT_PARAMS = ['returnTo', 'post_logout_redirect_uri', 'redirect_uri', 'redirect', 'next', 'target', 'url'];

function assertEndSession(t: Test, location: string | undefined, what: string) {
  const url = new URL(String(location));
  t.equal(url.origin + url.pathname, `${stack.provider.issuer}/logout`, `${what}: Location is the provider's end_session endpoint`);
  t.equal(url.searchParams.getAll('post_logout_redirect_uri').join(','), `${stack.publicUrl}/`, `${what}: back to the public URL only`);
  t.notMatch(location!, /evil/, `${what}: nothing of the attacker's target`);
}

t.test('a GET logout with hostile redirect targets goes to the end_session endpoint and back to the public URL only', async (t) => {
  const hostile = HOSTILE_LOGOUT_PARAMS.map((p) => `${p}=${encodeURIComponent('https://evil.example')}`).join('&');
  const { cookie, logoutUrl } = await signedIn();
  const res = await rawRequest(stack.url, `${logoutUrl}&${hostile}`, { headers: { cookie } });
  t.equal(res.status, 302);
  assertEndSession(t, res.headers.location as string, 'signed in');
  t.notOk(await isSignedIn(stack, cookie), 'the session ended');
  const anonymous = await rawRequest(stack.url, `/auth/logout?${hostile}`);
  t.equal(anonymous.status, 302);
  assertEndSession(t, anonymous.headers.location as string, 'without a session');
});

t.test('a POST logout with hostile redirect targets in the query or a form body goes to the end_session endpoint only', async (t) => {
  const { cookie } = await signedIn();
  const body = HOSTILE_LOGOUT_PARAMS.map((p) => `${p}=${encodeURIComponent('//evil.example')}`).join('&');
  const res = await fetch(`${stack.url}/auth/logout?${body}`, {
    method: 'POST',
    redirect: 'manual',
    headers: { cookie, 'x-csrf': '1', origin: publicOrigin, 'content-type': 'application/x-www-form-urlencoded' },
    body,
  });
  t.equal(res.status, 302);
  assertEndSession(t, res.headers.get('location') ?? undefined, 'POST');
});

t.test('a spoofed Host or X-Forwarded-Host never changes where logout sends the browser', async (t) => {
  const { cookie, logoutUrl } = await signedIn();
  const res = await rawRequest(stack.url, logoutUrl, { headers: { cookie, host: 'evil.example', 'x-forwarded-host': 'evil.example', 'x-forwarded-proto': 'https' } });
  t.equal(res.status, 302);
  assertEndSession(t, res.headers.location as string, 'spoofed host');
});

t.test('without an end_session endpoint, logout redirects to the public URL and nowhere else', async (t) => {
  const bare = await startHostileStack({ provider: { discovery: { end_session_endpoint: undefined } } });
  t.teardown(() => bare.close());
  const { cookie, logoutUrl } = await signedIn(bare);
  const res = await rawRequest(bare.url, `${logoutUrl}&returnTo=${encodeURIComponent('//evil.example')}&post_logout_redirect_uri=https://evil.example`, { headers: { cookie } });
  t.equal(res.status, 302);
  t.equal(res.headers.location, `${bare.publicUrl}/`, 'the configured post-logout URL');
  t.notOk(await isSignedIn(bare, cookie), 'the session ended');
});
