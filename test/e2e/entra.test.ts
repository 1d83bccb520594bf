import t from 'tap';
import { randomUUID } from 'node:crypto';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { apiCall } from '../helpers/stack.js';
import { BACKCHANNEL_EVENT, providerSignedLogoutToken } from '../helpers/logout-tokens.js';
import { API_RESOURCE, CERT_CLIENT, CLI, CLIENT_SECRET, DEFAULT_CACHE_KEY, OTHER_RESOURCE, SECRET_CLIENT, SESSION_SECRET, entraSignIn, gatewayYaml, startEntraEnv, startEntraGateway, uniqueUser } from '../helpers/entra-stack.js';

// One provider (https, the test's own CA) for the file; gateways are child processes.
const env = await startEntraEnv(2);
t.teardown(() => env.close());
const gw = await startEntraGateway(env, { slot: 0, credential: 'secret' });
t.teardown(() => gw.close());
const certGw = await startEntraGateway(env, { slot: 1, credential: 'certificate' });
t.teardown(() => certGw.close());

t.test('a user signs in through MSAL against a known authority and a route gets a token from the silent path that the API verifies', async (t) => {
  const user = uniqueUser('alice');
  const codes = env.provider.counts.codeGrants;
  const { gatewayCookie: cookie, finalUrl } = await entraSignIn(env, gw, { login: user, returnTo: '/after' });
  t.equal(new URL(finalUrl).pathname, '/after', 'the callback redirects to returnTo');
  t.equal(env.provider.counts.codeGrants, codes + 1, 'MSAL redeemed the code');
  const me = await apiCall(gw, '/auth/user', cookie);
  t.equal(me.status, 200, me.text);
  t.equal(me.json?.sub, user);
  t.equal(me.json?.iss, env.provider.issuer);
  t.notMatch(me.text, /eyJ/, 'no token reaches the browser');

  const refreshes = env.provider.counts.refreshGrants;
  const plain = await apiCall(gw, '/plain/x', cookie);
  t.equal(plain.status, 200, 'a route without a resource indicator');
  t.equal(plain.json?.sub, user);
  t.equal(env.provider.counts.refreshGrants, refreshes, "MSAL answered it with the sign-in's access token, from its cache");

  const res = await apiCall(gw, '/api/orders', cookie);
  t.equal(res.status, 200, res.text);
  t.equal(res.json?.sub, user);
  t.equal(res.json?.aud, API_RESOURCE);
  t.equal(res.json?.path, '/v1/orders');
  t.equal(env.provider.counts.refreshGrants, refreshes + 1, 'acquireTokenSilent refreshed for the route resource');
  t.equal((await apiCall(gw, '/api/orders', cookie)).status, 200);
  t.equal(env.provider.counts.refreshGrants, refreshes + 1, 'the second call is served from the cache');
});

t.test('app-only routes get client credentials tokens through MSAL, with the resource indicator MSAL itself does not send', async (t) => {
  const app = await apiCall(gw, '/app-api/x', '');
  t.equal(app.status, 200, app.text);
  t.equal(app.json?.sub, SECRET_CLIENT);
  t.equal(app.json?.scope, 'api.write');
  const other = await apiCall(gw, '/app-other/x', '');
  t.equal(other.status, 200, other.text);
  t.equal(other.json?.aud, OTHER_RESOURCE, 'the token is for the route resource, not the default one');
  t.equal(other.json?.scope, 'other.write');
});

t.test('a route whose scope was not asked at sign-in answers 401 consent_required, and after the consent sign-in it works', async (t) => {
  const user = uniqueUser('carol');
  const first = await entraSignIn(env, gw, { login: user });
  const denied = await apiCall(gw, '/other/x', first.gatewayCookie);
  t.equal(denied.status, 401, denied.text);
  t.equal(denied.json?.error, 'consent_required');
  const loginUrl = String(denied.json?.loginUrl);
  t.equal(new URL(loginUrl, gw.url).searchParams.get('scopes'), 'other.read', 'the loginUrl asks for the route scope');

  const login = await fetch(new URL(loginUrl, gw.url), { redirect: 'manual', headers: { cookie: first.gatewayCookie } });
  const authorize = new URL(login.headers.get('location')!);
  t.match(authorize.searchParams.get('scope'), /other\.read/, 'the authorization request carries the new scope');
  t.ok(authorize.searchParams.getAll('resource').includes(OTHER_RESOURCE), 'and the resource indicator of that scope (MSAL has no place for it: the back end adds it)');

  const again = await entraSignIn(env, gw, { login: user, loginPath: loginUrl, jar: first.jar });
  const res = await apiCall(gw, '/other/x', again.gatewayCookie);
  t.equal(res.status, 200, res.text);
  t.equal(res.json?.aud, OTHER_RESOURCE);
  t.equal(res.json?.scope, 'other.read');
  t.equal((await apiCall(gw, '/api/x', again.gatewayCookie)).status, 200, 'the routes consented before still work');
});

t.test('a claims challenge from the upstream becomes 401 claims_challenge whose loginUrl takes the claims to the provider through MSAL', async (t) => {
  const claims = { access_token: { acr: { essential: true, value: 'urn:mfa' } } };
  const encoded = Buffer.from(JSON.stringify(claims)).toString('base64');
  const user = uniqueUser('dave');
  const { gatewayCookie: cookie, jar } = await entraSignIn(env, gw, { login: user });
  t.equal((await apiCall(gw, '/api/x', cookie)).status, 200);
  env.api.setStatus(401, { 'www-authenticate': `Bearer error="insufficient_claims", claims="${encoded}"` });
  t.teardown(() => env.api.setStatus(null));
  const res = await apiCall(gw, '/api/x', cookie);
  env.api.setStatus(null);
  t.equal(res.status, 401, res.text);
  t.equal(res.json?.error, 'claims_challenge');
  const loginUrl = new URL(String(res.json?.loginUrl), gw.url);
  t.equal(loginUrl.searchParams.get('claims'), encoded);

  const login = await fetch(loginUrl, { redirect: 'manual', headers: { cookie } });
  t.equal(login.status, 302);
  const authorize = new URL(login.headers.get('location')!);
  t.equal(authorize.origin, new URL(env.provider.issuer).origin);
  t.same(JSON.parse(authorize.searchParams.get('claims')!).access_token, claims.access_token, 'MSAL put the challenge claims into the authorization request');

  const again = await entraSignIn(env, gw, { login: user, loginPath: loginUrl.pathname + loginUrl.search, jar });
  t.equal((await apiCall(gw, '/api/x', again.gatewayCookie)).status, 200, 'after the new sign-in the route works');
});

t.test('the certificate credential: the provider verifies the private_key_jwt assertion MSAL signs for the code, refresh and client credentials grants', async (t) => {
  const user = uniqueUser('erin');
  const { gatewayCookie: cookie } = await entraSignIn(env, certGw, { login: user });
  t.equal((await apiCall(certGw, '/auth/user', cookie)).json?.sub, user);
  const res = await apiCall(certGw, '/api/x', cookie);
  t.equal(res.status, 200, res.text);
  t.equal(res.json?.client_id, CERT_CLIENT);
  t.equal(res.json?.sub, user);
  const app = await apiCall(certGw, '/app-api/x', '');
  t.equal(app.status, 200, app.text);
  t.equal(app.json?.client_id, CERT_CLIENT);
  t.equal(env.provider.serverErrors.length, 0);
});

t.test("a back-channel logout token for the user's sub ends the session: the account key is MSAL's homeAccountId", async (t) => {
  const user = uniqueUser('frank');
  const { gatewayCookie: cookie } = await entraSignIn(env, gw, { login: user });
  t.equal((await apiCall(gw, '/api/x', cookie)).status, 200);
  const token = await providerSignedLogoutToken(env.provider, user, { clientId: SECRET_CLIENT, claims: { events: { [BACKCHANNEL_EVENT]: {} }, jti: randomUUID() } });
  const res = await fetch(`${gw.url}/auth/backchannel-logout`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ logout_token: token }).toString() });
  t.equal(res.status, 200, await res.text());
  t.equal((await apiCall(gw, '/auth/user', cookie)).status, 401, 'the session is over');
});

t.test('while the provider is unreachable a route that needs a refresh answers 503 provider_unavailable, and works again once it is back', async (t) => {
  const user = uniqueUser('grace');
  const { gatewayCookie: cookie } = await entraSignIn(env, gw, { login: user });
  await env.provider.stop();
  let restarted = false;
  t.teardown(async () => {
    if (!restarted) await env.provider.start();
  });
  const res = await apiCall(gw, '/api/x', cookie);
  t.equal(res.status, 503, res.text);
  t.equal(res.json?.error, 'provider_unavailable');
  t.ok(res.headers.get('retry-after'));
  await env.provider.start();
  restarted = true;
  const ok = await apiCall(gw, '/api/x', cookie);
  t.equal(ok.status, 200, ok.text);
});

t.test('bff-gateway check loads the Entra config and the authority metadata, trusting the CA only through NODE_EXTRA_CA_CERTS', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'bff-entra-check-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'routes.yaml');
  writeFileSync(file, gatewayYaml(env, { slot: 0, credential: 'certificate' }));
  const base = { ...process.env, ENTRA_CLIENT_SECRET: CLIENT_SECRET, SESSION_SECRET, CACHE_KEY: DEFAULT_CACHE_KEY };
  delete base.NODE_EXTRA_CA_CERTS;
  // Not spawnSync: the provider answers from this process.
  const check = (childEnv: NodeJS.ProcessEnv) =>
    new Promise<{ status: number; stdout: string; stderr: string }>((resolve) => {
      execFile(process.execPath, [CLI, 'check', '--config', file], { env: childEnv, encoding: 'utf8' }, (err, stdout, stderr) => resolve({ status: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }));
    });
  const ok = await check({ ...base, NODE_EXTRA_CA_CERTS: env.pki.caCertFile });
  t.equal(ok.status, 0, ok.stderr);
  t.match(ok.stdout, /ok \(\d+ routes\)/);
  const untrusted = await check(base);
  t.equal(untrusted.status, 1, 'without the CA the https authority is not trusted');
  t.match(untrusted.stderr, /unreachable \((SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT_LOCALLY)\)/, 'and the message says why');
});
