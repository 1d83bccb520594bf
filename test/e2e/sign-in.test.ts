import t from 'tap';
import { decodeJwt } from 'jose';
import { signIn } from '../helpers/browserless.js';
import { API_RESOURCE, apiCall, startStack } from '../helpers/stack.js';

t.test('a signed-in user calls a proxied route and the upstream receives a valid token for exactly its scopes', async (t) => {
  const stack = await startStack();
  t.teardown(() => stack.close());

  const { gatewayCookie, status, finalUrl } = await signIn(stack.url, { login: 'alice', returnTo: '/home' });
  t.equal(status, 302, 'the callback redirects');
  t.equal(new URL(finalUrl, stack.url).pathname, '/home', 'back to returnTo');

  const res = await apiCall(stack, '/api/orders?x=1', gatewayCookie + '; other=keep', { headers: { authorization: 'Bearer browser-token' } });
  t.equal(res.status, 200, res.text);
  t.equal(res.json?.sub, 'alice');
  const seen = stack.api.received.at(-1)!;
  t.equal(seen.url, '/v1/orders?x=1', 'prefix rewritten, query kept');
  t.notOk(seen.verifyError, 'the upstream verified the token with jose');
  const claims = decodeJwt(String(seen.headers.authorization).replace(/^Bearer /, ''));
  t.equal(claims.aud, API_RESOURCE, 'audience is the route resource');
  t.same(String(claims.scope).split(' ').sort(), ['api.read'], 'scopes are exactly the route scopes');
  t.not(seen.headers.authorization, 'Bearer browser-token', 'the browser Authorization never reaches the upstream');
  t.equal(seen.headers.cookie, 'other=keep', 'the gateway cookie is stripped, other cookies kept');
  t.equal(seen.headers['x-forwarded-for'], '127.0.0.1');
  t.equal(seen.headers['x-forwarded-proto'], 'http');
  t.ok(seen.headers['x-forwarded-host']);

  const user = await apiCall(stack, '/auth/user', gatewayCookie);
  t.equal(user.status, 200);
  t.equal(user.json?.sub, 'alice');
  t.match(user.json?.logoutUrl, /^\/auth\/logout\?sid=/);
  t.ok(Date.parse(String(user.json?.expiresAt)) > Date.now());
  t.notMatch(user.text, /eyJ/, '/auth/user never hands out a token');
  t.equal(user.headers.get('cache-control'), 'no-store');
});

t.test('anonymous call to a user route returns 401 problem+json with a loginUrl', async (t) => {
  const stack = await startStack();
  t.teardown(() => stack.close());
  const res = await apiCall(stack, '/api/orders', '');
  t.equal(res.status, 401);
  t.match(res.headers.get('content-type'), /^application\/problem\+json/);
  t.equal(res.json?.error, 'session_expired');
  t.equal(res.json?.loginUrl, '/auth/login');
  t.equal(stack.api.received.length, 0, 'nothing reached the upstream');
});
