import t from 'tap';
import { decodeJwt } from 'jose';
import { signIn } from '../helpers/browserless.js';
import { SHARED_REDIS_URL } from '../helpers/redis.js';
import { apiCall, CLIENT_ID, startReplicas, startStack, type Stack } from '../helpers/stack.js';
import { accountKeyOf } from '../../src/identity/oidc.js';

async function endSessionEndpoint(stack: Stack): Promise<string> {
  const meta = (await (await fetch(stack.provider.issuer + '/.well-known/openid-configuration')).json()) as { end_session_endpoint: string };
  return meta.end_session_endpoint;
}

async function signedInStack(t: Tap.Test) {
  const stack = await startStack();
  t.teardown(() => stack.close());
  const { gatewayCookie } = await signIn(stack.url, { login: 'alice' });
  const accountKey = accountKeyOf(stack.provider.issuer, 'alice');
  return { stack, cookie: gatewayCookie, accountKey };
}

/** What the browser sees: the user and a proxied route both answer as signed in. */
async function assertSignedIn(t: Tap.Test, stack: Stack, cookie: string, what: string) {
  const user = await apiCall(stack, '/auth/user', cookie);
  t.equal(user.status, 200, `${what}: /auth/user still answers the user`);
  t.equal(user.json?.sub, 'alice');
  const api = await apiCall(stack, '/api/x', cookie);
  t.equal(api.status, 200, `${what}: the proxied route still works`);
}

async function assertSignedOut(t: Tap.Test, stack: Stack, cookie: string) {
  const user = await apiCall(stack, '/auth/user', cookie);
  t.equal(user.status, 401, 'the replayed cookie gets 401 on /auth/user');
  t.equal(user.json?.error, 'session_expired');
  t.equal(user.json?.loginUrl, '/auth/login');
  const before = stack.api.received.length;
  const api = await apiCall(stack, '/api/x', cookie);
  t.equal(api.status, 401, 'and 401 on a proxied route');
  t.equal(api.json?.error, 'session_expired');
  t.equal(stack.api.received.length, before, 'nothing reached the upstream');
}

/** The logout answer: a 302 to the provider's end-session endpoint for this user. */
async function assertEndSessionRedirect(t: Tap.Test, stack: Stack, res: Response) {
  t.equal(res.status, 302, 'logout answers a redirect');
  const location = new URL(res.headers.get('location') ?? '');
  t.equal(location.origin + location.pathname, await endSessionEndpoint(stack), "to the provider's end-session endpoint");
  t.equal(location.searchParams.get('post_logout_redirect_uri'), stack.url + '/', 'back to the public URL afterwards');
  const hint = location.searchParams.get('id_token_hint');
  t.ok(hint, 'with an id_token_hint');
  const claims = decodeJwt(hint!);
  t.equal(claims.sub, 'alice', 'the hint is the signed-in user ID token');
  t.equal(claims.aud, CLIENT_ID);
  t.equal(claims.iss, stack.provider.issuer);
  t.equal(res.headers.get('cache-control'), 'no-store');
  t.match(res.headers.get('set-cookie') ?? '', /Max-Age=0|Expires=Thu, 01 Jan 1970/i, 'the browser is told to drop the cookie');
}

t.test('/auth/user hands out the logoutUrl and the session expiry', async (t) => {
  const { stack, cookie } = await signedInStack(t);
  const before = Date.now();
  const user = await apiCall(stack, '/auth/user', cookie);
  t.equal(user.status, 200);
  t.match(user.json?.logoutUrl, /^\/auth\/logout\?sid=[A-Za-z0-9_-]{16,}$/, 'a logout URL with an unguessable sid');
  const expiresAt = Date.parse(String(user.json?.expiresAt));
  t.ok(Number.isFinite(expiresAt), 'expiresAt is a date');
  // Default idle timeout 30m (shorter than the 12h absolute one): the session expires 30 minutes after the last request.
  t.ok(expiresAt > before + 29 * 60_000 && expiresAt <= Date.now() + 30 * 60_000, `expiresAt is about 30 minutes ahead (${user.json?.expiresAt})`);
  const other = await signIn(stack.url, { login: 'alice' });
  const otherUser = await apiCall(stack, '/auth/user', other.gatewayCookie);
  t.not(otherUser.json?.logoutUrl, user.json?.logoutUrl, 'each session has its own logout sid');
});

t.test('GET /auth/logout with the sid from /auth/user ends the session, drops the tokens, revokes the refresh token and redirects to the provider', async (t) => {
  const { stack, cookie, accountKey } = await signedInStack(t);
  await assertSignedIn(t, stack, cookie, 'before logout');
  const rt = await stack.gateway.deps.tokens.refreshTokenOf(accountKey);
  t.ok(rt, 'a refresh token is cached before logout');
  t.notOk(await stack.provider.isRevoked(rt!), 'and the provider still accepts it');
  const revocationsBefore = stack.provider.counts.revocations;

  const { logoutUrl } = (await apiCall(stack, '/auth/user', cookie)).json as { logoutUrl: string };
  const res = await fetch(stack.url + logoutUrl, { redirect: 'manual', headers: { cookie } });
  await assertEndSessionRedirect(t, stack, res);

  await assertSignedOut(t, stack, cookie);
  t.equal(await stack.gateway.deps.tokens.refreshTokenOf(accountKey), undefined, "the account's token cache entry is gone");
  t.ok(await stack.provider.isRevoked(rt!), 'the provider reports the refresh token revoked');
  t.equal(stack.provider.counts.revocations, revocationsBefore + 1, 'the provider counted one revocation');
});

t.test('POST /auth/logout with X-CSRF: 1 ends the session, drops the tokens, revokes the refresh token and redirects to the provider', async (t) => {
  const { stack, cookie, accountKey } = await signedInStack(t);
  await assertSignedIn(t, stack, cookie, 'before logout');
  const rt = await stack.gateway.deps.tokens.refreshTokenOf(accountKey);
  t.ok(rt, 'a refresh token is cached before logout');
  const revocationsBefore = stack.provider.counts.revocations;

  const res = await fetch(stack.url + '/auth/logout', {
    method: 'POST',
    redirect: 'manual',
    headers: { cookie, 'x-csrf': '1', origin: stack.url, 'sec-fetch-site': 'same-origin' },
  });
  await assertEndSessionRedirect(t, stack, res);

  await assertSignedOut(t, stack, cookie);
  t.equal(await stack.gateway.deps.tokens.refreshTokenOf(accountKey), undefined, "the account's token cache entry is gone");
  t.ok(await stack.provider.isRevoked(rt!), 'the provider reports the refresh token revoked');
  t.equal(stack.provider.counts.revocations, revocationsBefore + 1, 'the provider counted one revocation');
});

t.test('a cross-site logout attempt changes nothing', async (t) => {
  const { stack, cookie, accountKey } = await signedInStack(t);
  const revocationsBefore = stack.provider.counts.revocations;
  const { logoutUrl } = (await apiCall(stack, '/auth/user', cookie)).json as { logoutUrl: string };
  const realSid = new URL(logoutUrl, stack.url).searchParams.get('sid')!;

  const attempts: Array<{ what: string; status: number; error?: string; init: RequestInit & { path: string } }> = [
    { what: 'a GET without sid (an <img> on another site)', status: 400, init: { path: '/auth/logout', headers: { cookie, 'sec-fetch-site': 'cross-site' } } },
    { what: 'a GET with a wrong sid', status: 400, init: { path: '/auth/logout?sid=' + 'A'.repeat(realSid.length), headers: { cookie } } },
    { what: 'a GET with the sid given twice, one wrong', status: 400, init: { path: `/auth/logout?sid=x&sid=${realSid}`, headers: { cookie } } },
    { what: 'a POST without X-CSRF (a cross-site form)', status: 403, error: 'csrf_required', init: { path: '/auth/logout', method: 'POST', headers: { cookie } } },
    {
      what: 'a POST from https://evil.example',
      status: 403,
      error: 'cross_site',
      init: { path: '/auth/logout', method: 'POST', headers: { cookie, 'x-csrf': '1', origin: 'https://evil.example' } },
    },
    {
      what: 'a POST marked Sec-Fetch-Site: cross-site',
      status: 403,
      error: 'cross_site',
      init: { path: '/auth/logout', method: 'POST', headers: { cookie, 'x-csrf': '1', 'sec-fetch-site': 'cross-site' } },
    },
  ];
  for (const { what, status, error, init } of attempts) {
    const res = await fetch(stack.url + init.path, { ...init, redirect: 'manual' });
    t.equal(res.status, status, `${what} is refused with ${status}`);
    t.match(res.headers.get('content-type'), /^application\/problem\+json/, `${what}: a problem+json body`);
    if (error) t.equal(((await res.json()) as { error?: string }).error, error, `${what}: error ${error}`);
    t.notOk(res.headers.get('location'), `${what}: no redirect to the provider`);
    await assertSignedIn(t, stack, cookie, what);
  }
  // The proxied calls above may have rotated it; whichever is cached now must be live.
  const current = await stack.gateway.deps.tokens.refreshTokenOf(accountKey);
  t.ok(current, 'a refresh token is still cached');
  t.notOk(await stack.provider.isRevoked(current!), 'and still valid at the provider');
  t.equal(stack.provider.counts.revocations, revocationsBefore, 'nothing was revoked');
});

t.test('with two replicas sharing Redis, a logout on replica A is refused by replica B at once, even right after B served that session', async (t) => {
  const { a, b } = await startReplicas(t, SHARED_REDIS_URL);
  const accountKey = accountKeyOf(a.provider.issuer, 'alice');

  for (const method of ['GET', 'POST'] as const) {
    const { gatewayCookie: cookie } = await signIn(a.url, { login: 'alice' });
    // B has just served this session: whatever B remembers of it must not outlive the logout.
    await assertSignedIn(t, b, cookie, `${method}: replica B before logout`);
    const { logoutUrl } = (await apiCall(a, '/auth/user', cookie)).json as { logoutUrl: string };
    const res =
      method === 'GET'
        ? await fetch(a.url + logoutUrl, { redirect: 'manual', headers: { cookie } })
        : await fetch(a.url + '/auth/logout', { method: 'POST', redirect: 'manual', headers: { cookie, 'x-csrf': '1', origin: a.url } });
    t.equal(res.status, 302, `${method} logout on A redirects to the provider`);

    const onB = await apiCall(b, '/auth/user', cookie);
    t.equal(onB.status, 401, `${method}: replica B refuses the cookie at once`);
    const apiOnB = await apiCall(b, '/api/x', cookie);
    t.equal(apiOnB.status, 401, `${method}: and on a proxied route`);
    t.equal(await b.gateway.deps.tokens.refreshTokenOf(accountKey), undefined, `${method}: B finds no tokens for the account either`);
  }
});
