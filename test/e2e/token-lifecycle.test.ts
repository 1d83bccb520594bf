import t from 'tap';
import { decodeJwt } from 'jose';
import { signIn } from '../helpers/browserless.js';
import { apiCall, freePort, startStack } from '../helpers/stack.js';

const bearerOf = (h: unknown) => String(h).replace(/^Bearer /, '');

t.test('an access token near expiry is refreshed and the upstream sees a new, valid token with no error', async (t) => {
  const stack = await startStack({ provider: { accessTokenTTL: 3 }, tokenCache: '  refreshSkew: 1s' });
  t.teardown(() => stack.close());
  const { gatewayCookie } = await signIn(stack.url);
  t.equal((await apiCall(stack, '/api/a', gatewayCookie)).status, 200);
  const first = bearerOf(stack.api.received.at(-1)!.headers.authorization);
  t.equal((await apiCall(stack, '/api/a', gatewayCookie)).status, 200);
  t.equal(bearerOf(stack.api.received.at(-1)!.headers.authorization), first, 'a fresh token is served from the cache');
  await new Promise((r) => setTimeout(r, 2200));
  const res = await apiCall(stack, '/api/a', gatewayCookie);
  t.equal(res.status, 200, res.text);
  const seen = stack.api.received.at(-1)!;
  t.notOk(seen.verifyError);
  t.not(bearerOf(seen.headers.authorization), first, 'a new token after expiry');
  t.ok(decodeJwt(bearerOf(seen.headers.authorization)).exp! > Date.now() / 1000);
});

t.test('20 concurrent requests that need a refresh make exactly one refresh call to the provider', async (t) => {
  const stack = await startStack();
  t.teardown(() => stack.close());
  const { gatewayCookie } = await signIn(stack.url);
  const before = stack.provider.counts.refreshGrants;
  const results = await Promise.all(Array.from({ length: 20 }, () => apiCall(stack, '/api/x', gatewayCookie)));
  t.same(results.map((r) => r.status), Array(20).fill(200), 'no request failed');
  t.equal(stack.provider.counts.refreshGrants - before, 1, 'the provider counted one refresh');
});

t.test('concurrent requests for two routes with different scopes never spend a rotated refresh token twice', async (t) => {
  const stack = await startStack({ signInScopes: ['openid', 'profile', 'offline_access', 'api.read', 'other.read'] });
  t.teardown(() => stack.close());
  const { gatewayCookie } = await signIn(stack.url);
  const results = await Promise.all(Array.from({ length: 10 }, (_, i) => apiCall(stack, i % 2 ? '/api/x' : '/other/x', gatewayCookie)));
  t.same(results.map((r) => r.status), Array(10).fill(200), results.map((r) => r.text).join('\n'));
  t.equal(stack.provider.counts.refreshGrants, 2, 'one refresh per scope set');
  const other = stack.otherApi.received.at(-1)!;
  t.same(decodeJwt(bearerOf(other.headers.authorization)).scope, 'other.read', 'each route gets its own scopes');
});

t.test('a route whose scopes were not granted asks for incremental consent, and after it both routes work', async (t) => {
  const stack = await startStack();
  t.teardown(() => stack.close());
  const { gatewayCookie, jar } = await signIn(stack.url);
  const denied = await apiCall(stack, '/other/x', gatewayCookie);
  t.equal(denied.status, 401);
  t.equal(denied.json?.error, 'consent_required');
  t.equal(denied.json?.loginUrl, '/auth/login?scopes=other.read');
  t.equal(stack.otherApi.received.length, 0);

  const again = await signIn(stack.url, { jar, loginPath: String(denied.json?.loginUrl) });
  const other = await apiCall(stack, '/other/x', again.gatewayCookie);
  t.equal(other.status, 200, other.text);
  t.equal(decodeJwt(bearerOf(stack.otherApi.received.at(-1)!.headers.authorization)).scope, 'other.read');
  const api = await apiCall(stack, '/api/x', again.gatewayCookie);
  t.equal(api.status, 200, 'the earlier grant remains');
});

t.test('a client route gets an app token once, and user-or-client uses the user token when signed in, else the app token', async (t) => {
  const stack = await startStack();
  t.teardown(() => stack.close());
  const app1 = await apiCall(stack, '/app-api/x', '');
  t.equal(app1.status, 200, app1.text);
  const appToken = decodeJwt(bearerOf(stack.api.received.at(-1)!.headers.authorization));
  t.equal(appToken.sub, appToken.client_id, 'an app token is about the client, not a user');
  t.equal(appToken.scope, 'api.write');
  await Promise.all(Array.from({ length: 5 }, () => apiCall(stack, '/app-api/x', '')));
  t.equal(stack.provider.counts.clientCredentialsGrants, 1, 'the app token is cached for the app');

  const anon = await apiCall(stack, '/either/x', '');
  t.equal(anon.status, 200);
  t.equal(decodeJwt(bearerOf(stack.api.received.at(-1)!.headers.authorization)).sub, 'bff', 'anonymous: app token');
  const { gatewayCookie } = await signIn(stack.url);
  const user = await apiCall(stack, '/either/x', gatewayCookie);
  t.equal(user.status, 200);
  t.equal(decodeJwt(bearerOf(stack.api.received.at(-1)!.headers.authorization)).sub, 'alice', 'signed in: user token');
});

t.test('provider down: 503 with Retry-After and the session kept, then recovery when it returns', async (t) => {
  const stack = await startStack();
  t.teardown(() => stack.close());
  const { gatewayCookie } = await signIn(stack.url);
  await stack.provider.stop();
  const down = await apiCall(stack, '/api/x', gatewayCookie);
  t.equal(down.status, 503);
  t.equal(down.json?.error, 'provider_unavailable');
  t.ok(Number(down.headers.get('retry-after')) > 0);
  t.equal((await apiCall(stack, '/auth/user', gatewayCookie)).status, 200, 'the session is kept');
  await stack.provider.start();
  const up = await apiCall(stack, '/api/x', gatewayCookie);
  t.equal(up.status, 200, up.text);
});

t.test('a refresh token revoked at the provider turns into a consent-required 401, never a 500', async (t) => {
  const stack = await startStack();
  t.teardown(() => stack.close());
  const { gatewayCookie } = await signIn(stack.url);
  const user = await apiCall(stack, '/auth/user', gatewayCookie);
  const accountKey = [...(await accountKeys(stack))][0]!;
  const rt = await stack.gateway.deps.tokens.refreshTokenOf(accountKey);
  t.ok(rt, user.text);
  await stack.gateway.deps.identity.revoke(rt!);
  const res = await apiCall(stack, '/api/x', gatewayCookie);
  t.equal(res.status, 401);
  t.equal(res.json?.error, 'consent_required');
  t.match(res.json?.loginUrl, /^\/auth\/login\?scopes=/);
});

async function accountKeys(stack: Awaited<ReturnType<typeof startStack>>): Promise<Set<string>> {
  const { accountKeyOf } = await import('../../src/identity/oidc.js');
  return new Set([accountKeyOf(stack.provider.issuer, 'alice')]);
}

t.test('key rotation: sessions and tokens written under the old keys are still read after new keys are added', async (t) => {
  const port = await freePort();
  const env = { CACHE_URL: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379' };
  const oldKeys = { sessionSecrets: ['old-session-secret-0123456789abcdef-012345'], cacheKeys: ['old-cache-key-0123456789abcdef-0123456789'] };
  const newKeys = { sessionSecrets: ['new-session-secret-0123456789abcdef-012345'], cacheKeys: ['new-cache-key-0123456789abcdef-0123456789'] };
  const a = await startStack({ gatewayPort: port, env, ...oldKeys });
  t.teardown(() => a.close());
  const { gatewayCookie } = await signIn(a.url);
  t.equal((await apiCall(a, '/api/x', gatewayCookie)).status, 200);
  const refreshes = a.provider.counts.refreshGrants;
  await a.gateway.close();

  const onlyNew = await startStack({ gatewayPort: port, env, sharedProvider: a.provider, ...newKeys });
  t.equal((await apiCall(onlyNew, '/auth/user', gatewayCookie)).status, 401, 'with the new keys alone the old session is unreadable');
  await onlyNew.close();

  const rotated = await startStack({
    gatewayPort: port,
    env,
    sharedProvider: a.provider,
    sessionSecrets: [...newKeys.sessionSecrets, ...oldKeys.sessionSecrets],
    cacheKeys: [...newKeys.cacheKeys, ...oldKeys.cacheKeys],
  });
  t.teardown(() => rotated.close());
  t.equal((await apiCall(rotated, '/auth/user', gatewayCookie)).status, 200, 'the old session still works');
  const res = await apiCall(rotated, '/api/x', gatewayCookie);
  t.equal(res.status, 200, res.text);
  t.equal(a.provider.counts.refreshGrants, refreshes, 'the token cached under the old key was read: no refresh');
});
