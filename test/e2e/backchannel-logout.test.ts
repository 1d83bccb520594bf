import t from 'tap';
import { decodeJwt } from 'jose';
import { browse, CookieJar, signIn } from '../helpers/browserless.js';
import {
  BACKCHANNEL_EVENT,
  forgedLogoutToken,
  gatewayClient,
  postLogoutToken,
  providerSignedLogoutToken,
  recordIdTokens,
  startCaptureProxy,
} from '../helpers/logout-tokens.js';
import { SHARED_REDIS_URL } from '../helpers/redis.js';
import { apiCall, freePort, startReplicas, startStack, type Stack } from '../helpers/stack.js';
import { accountKeyOf } from '../../src/identity/oidc.js';

const OTHER_CLIENT = 'other-app';
const events = { [BACKCHANNEL_EVENT]: {} };
const now = () => Math.floor(Date.now() / 1000);
const jti = () => crypto.randomUUID();

async function assertSignedIn(t: Tap.Test, stack: Stack, cookie: string, what: string) {
  const user = await apiCall(stack, '/auth/user', cookie);
  t.equal(user.status, 200, `${what}: /auth/user still answers the user`);
  t.equal((await apiCall(stack, '/api/x', cookie)).status, 200, `${what}: the proxied route still works`);
}

async function assertSignedOut(t: Tap.Test, stack: Stack, cookie: string, what: string) {
  const user = await apiCall(stack, '/auth/user', cookie);
  t.equal(user.status, 401, `${what}: the cookie gets 401 on /auth/user`);
  t.equal(user.json?.loginUrl, '/auth/login');
  t.equal((await apiCall(stack, '/api/x', cookie)).status, 401, `${what}: and 401 on a proxied route`);
}

/** Signs out at the provider (RP-initiated logout): the browser confirms the provider's logout page. */
async function signOutAtProvider(stack: Stack, jar: CookieJar, idTokenHint: string) {
  const meta = (await (await fetch(stack.provider.issuer + '/.well-known/openid-configuration')).json()) as { end_session_endpoint: string };
  const url = new URL(meta.end_session_endpoint);
  url.searchParams.set('id_token_hint', idTokenHint);
  url.searchParams.set('post_logout_redirect_uri', stack.url + '/');
  const gatewayOrigin = new URL(stack.url).origin;
  // Stop at the redirect back to the gateway: the provider has done its part by then.
  return browse(url.href, jar, { stopAt: (location) => location.origin === gatewayOrigin });
}

t.test("the provider's back-channel logout, sent when the user signs out at the provider, ends the gateway session and drops its tokens", async (t) => {
  const stack = await startStack();
  t.teardown(() => stack.close());
  const idTokens = recordIdTokens(stack.provider);
  const { jar, gatewayCookie: cookie } = await signIn(stack.url, { login: 'alice' });
  const accountKey = accountKeyOf(stack.provider.issuer, 'alice');
  await assertSignedIn(t, stack, cookie, 'before');
  const delivered = stack.provider.counts.backchannelDeliveries;
  const failed = stack.provider.counts.backchannelErrors;

  const res = await signOutAtProvider(stack, jar, idTokens.at(-1)!);
  t.equal(res.location, stack.url + '/', 'the provider sent the browser back to the gateway after the logout');
  t.equal(stack.provider.counts.backchannelDeliveries, delivered + 1, 'the provider delivered one back-channel logout');
  t.equal(stack.provider.counts.backchannelErrors, failed, 'and the gateway accepted it');

  await assertSignedOut(t, stack, cookie, 'after the provider logout');
  t.equal(await stack.gateway.deps.tokens.refreshTokenOf(accountKey), undefined, "the account's token cache entry is gone");
});

t.test('a back-channel logout delivered to replica A is refused at once by replica B, even right after B served that session', async (t) => {
  const { a, b } = await startReplicas(t, SHARED_REDIS_URL);
  const idTokens = recordIdTokens(a.provider);
  const { jar, gatewayCookie: cookie } = await signIn(a.url, { login: 'alice' });
  await assertSignedIn(t, b, cookie, 'replica B before');
  const delivered = a.provider.counts.backchannelDeliveries;
  await signOutAtProvider(a, jar, idTokens.at(-1)!);
  t.equal(a.provider.counts.backchannelDeliveries, delivered + 1, 'the provider delivered the back-channel logout (to replica A)');
  await assertSignedOut(t, b, cookie, 'replica B');
});

/** A stack whose provider also knows another client, and alice signed in; `sid` is her provider session. */
async function signedInWithTwoClients(t: Tap.Test) {
  const port = await freePort();
  const publicUrl = `http://127.0.0.1:${port}`;
  const stack = await startStack({
    gatewayPort: port,
    provider: {
      clients: [
        gatewayClient(publicUrl),
        { client_id: OTHER_CLIENT, client_secret: 'other-app-secret-0123456789abcdef0123', redirect_uris: ['http://127.0.0.1:9/cb'], token_endpoint_auth_method: 'client_secret_basic' },
      ],
    },
  });
  t.teardown(() => stack.close());
  const idTokens = recordIdTokens(stack.provider);
  const { gatewayCookie: cookie } = await signIn(stack.url, { login: 'alice' });
  const accountKey = accountKeyOf(stack.provider.issuer, 'alice');
  const sid = decodeJwt(idTokens.at(-1)!).sid as string;
  t.ok(sid, "the ID token carries the provider's session id");
  return { stack, dev: stack.provider, cookie, accountKey, sid };
}

async function assertRefused(t: Tap.Test, stack: Stack, cookie: string, what: string, token: string) {
  const res = await postLogoutToken(stack.url, token);
  t.equal(res.status, 400, `a logout token ${what} is refused with 400`);
  t.equal(res.headers.get('cache-control'), 'no-store', `${what}: Cache-Control: no-store`);
  t.equal(await res.text(), JSON.stringify({ error: 'invalid_request' }), `${what}: error invalid_request`);
  await assertSignedIn(t, stack, cookie, `after a token ${what}`);
}

/** The control: a valid token for the same provider session ends the gateway session. */
async function assertValidTokenEndsSession(t: Tap.Test, stack: Stack, cookie: string, accountKey: string, sid: string) {
  t.ok(await stack.gateway.deps.tokens.refreshTokenOf(accountKey), 'the tokens were still cached');
  const valid = await postLogoutToken(stack.url, await providerSignedLogoutToken(stack.provider, 'alice', { claims: { events, sid, jti: jti() } }));
  t.equal(valid.status, 200, 'a valid logout token signed by the provider is accepted');
  t.equal(valid.headers.get('cache-control'), 'no-store');
  await assertSignedOut(t, stack, cookie, 'after the valid token');
  t.equal(await stack.gateway.deps.tokens.refreshTokenOf(accountKey), undefined, "the account's token cache entry is gone");
}

t.test('forged, expired, wrong-audience, nonce-bearing, event-less and malformed logout tokens are refused with 400 and no-store, and the session survives each', async (t) => {
  const { stack, dev, cookie, accountKey, sid } = await signedInWithTwoClients(t);
  const cases: Array<[string, () => Promise<string>]> = [
    ['signed by another key (claiming the provider key id)', () => forgedLogoutToken(dev, 'alice', { events, sid, jti: jti() })],
    ['expired', () => providerSignedLogoutToken(dev, 'alice', { claims: { events, sid, jti: jti(), iat: now() - 300 }, expiresAt: now() - 180 })],
    ['issued long ago', () => providerSignedLogoutToken(dev, 'alice', { claims: { events, sid, jti: jti(), iat: now() - 3600 } })],
    ['issued to another client (wrong audience)', () => providerSignedLogoutToken(dev, 'alice', { clientId: OTHER_CLIENT, claims: { events, sid, jti: jti() } })],
    ['carrying a nonce', () => providerSignedLogoutToken(dev, 'alice', { claims: { events, sid, jti: jti(), nonce: 'n-0S6_WzA2Mj' } })],
    ['without events', () => providerSignedLogoutToken(dev, 'alice', { claims: { sid, jti: jti() } })],
    ['with another event only', () => providerSignedLogoutToken(dev, 'alice', { claims: { events: { 'https://example.com/other-event': {} }, sid, jti: jti() } })],
    ['without jti', () => providerSignedLogoutToken(dev, 'alice', { claims: { events, sid } })],
    ['that is not a JWT', async () => 'not.a.jwt'],
  ];
  for (const [what, make] of cases) await assertRefused(t, stack, cookie, what, await make());
  const empty = await fetch(stack.url + '/auth/backchannel-logout', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: '' });
  t.equal(empty.status, 400, 'a delivery without logout_token is refused with 400');
  t.equal(empty.headers.get('cache-control'), 'no-store');
  await assertSignedIn(t, stack, cookie, 'after a delivery without token');
  await assertValidTokenEndsSession(t, stack, cookie, accountKey, sid);
});

t.test('a logout token whose back-channel event is null or an array instead of a JSON object is refused, and the session survives', async (t) => {
  const { stack, dev, cookie, accountKey, sid } = await signedInWithTwoClients(t);
  await assertRefused(t, stack, cookie, 'whose event is null', await providerSignedLogoutToken(dev, 'alice', { claims: { events: { [BACKCHANNEL_EVENT]: null }, sid, jti: jti() } }));
  await assertRefused(t, stack, cookie, 'whose event is an array', await providerSignedLogoutToken(dev, 'alice', { claims: { events: { [BACKCHANNEL_EVENT]: [] }, sid, jti: jti() } }));
  await assertValidTokenEndsSession(t, stack, cookie, accountKey, sid);
});

t.test("a logout token the provider really delivered is refused with 400 when replayed, and the user's new session survives", async (t) => {
  const port = await freePort();
  const publicUrl = `http://127.0.0.1:${port}`;
  const capture = await startCaptureProxy(() => `${publicUrl}/auth/backchannel-logout`);
  t.teardown(() => capture.close());
  const stack = await startStack({ gatewayPort: port, provider: { clients: [gatewayClient(publicUrl, capture.url)] } });
  t.teardown(() => stack.close());
  const idTokens = recordIdTokens(stack.provider);
  const accountKey = accountKeyOf(stack.provider.issuer, 'alice');

  const first = await signIn(stack.url, { login: 'alice' });
  await signOutAtProvider(stack, first.jar, idTokens.at(-1)!);
  t.equal(capture.tokens.length, 1, 'the provider delivered one logout token (through the capture proxy)');
  t.equal(stack.provider.counts.backchannelErrors, 0, 'the gateway accepted it');
  await assertSignedOut(t, stack, first.gatewayCookie, 'the first session');

  const second = await signIn(stack.url, { login: 'alice' });
  await assertSignedIn(t, stack, second.gatewayCookie, 'the new session');
  const replay = await postLogoutToken(stack.url, capture.tokens[0]);
  t.equal(replay.status, 400, 'the replayed logout token is refused with 400');
  t.equal(replay.headers.get('cache-control'), 'no-store');
  await assertSignedIn(t, stack, second.gatewayCookie, 'after the replay, the new session');
  t.ok(await stack.gateway.deps.tokens.refreshTokenOf(accountKey), "the account's tokens are still cached");
});
