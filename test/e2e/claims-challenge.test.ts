import t from 'tap';
import { signIn } from '../helpers/browserless.js';
import { apiCall, startStack } from '../helpers/stack.js';

const CLAIMS = { access_token: { acr: { essential: true, value: 'urn:mfa' } } };
const encoded = Buffer.from(JSON.stringify(CLAIMS)).toString('base64');

t.test('an upstream claims challenge becomes a 401 claims_challenge whose loginUrl carries the claims to the provider', async (t) => {
  const stack = await startStack();
  t.teardown(() => stack.close());
  const { gatewayCookie } = await signIn(stack.url);
  stack.api.setStatus(401, { 'www-authenticate': `Bearer realm="api", error="insufficient_claims", claims="${encoded}"` });
  const refreshesBefore = stack.provider.counts.refreshGrants;
  const res = await apiCall(stack, '/api/x', gatewayCookie);
  t.equal(res.status, 401);
  t.match(res.headers.get('content-type'), /^application\/problem\+json/);
  t.equal(res.json?.error, 'claims_challenge');
  const loginUrl = new URL(String(res.json?.loginUrl), stack.url);
  t.equal(loginUrl.pathname, '/auth/login');
  t.equal(loginUrl.searchParams.get('claims'), encoded);
  t.notMatch(res.text, /realm="api"/, 'the upstream body and headers do not leak');
  t.equal(stack.provider.counts.refreshGrants - refreshesBefore, 1, 'the gateway did not retry the refresh blindly (one refresh for the first token only)');

  const login = await fetch(loginUrl, { redirect: 'manual', headers: { cookie: gatewayCookie } });
  t.equal(login.status, 302);
  const authorize = new URL(login.headers.get('location')!);
  t.same(JSON.parse(authorize.searchParams.get('claims')!), CLAIMS, 'the authorization request asks for the claims');
});

t.test('an upstream 401 without a claims challenge passes through unchanged', async (t) => {
  const stack = await startStack();
  t.teardown(() => stack.close());
  const { gatewayCookie } = await signIn(stack.url);
  stack.api.setStatus(401, { 'www-authenticate': 'Bearer error="invalid_token"' });
  const res = await apiCall(stack, '/api/x', gatewayCookie);
  t.equal(res.status, 401);
  t.equal(res.headers.get('www-authenticate'), 'Bearer error="invalid_token"');
  t.notMatch(String(res.headers.get('content-type')), /problem/);
});

t.test('a login with malformed claims is refused with 400', async (t) => {
  const stack = await startStack();
  t.teardown(() => stack.close());
  for (const bad of ['not-json', Buffer.from('[1,2]').toString('base64'), '%%%']) {
    const res = await fetch(`${stack.url}/auth/login?claims=${encodeURIComponent(bad)}`, { redirect: 'manual' });
    t.equal(res.status, 400, bad);
  }
});
