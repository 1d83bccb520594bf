import t from 'tap';
import { randomBytes } from 'node:crypto';
import { decodeJwt } from 'jose';
import { browse, CookieJar } from '../helpers/browserless.js';
import { API_RESOURCE, API2_RESOURCE, CLIENT_SECRET, SECRET_CLIENT, startEntraEnv, uniqueUser } from '../helpers/entra-stack.js';
import { EntraBackend } from '../../src/identity/entra.js';
import { MemoryPartitionStore, homeAccountIdsOf } from '../../src/identity/entra-cache.js';
import type { FetchLike } from '../../src/identity/entra-network.js';
import { IdentityError, type AccountRef } from '../../src/identity/types.js';
import type { IdentityConfig } from '../../src/config/resolve.js';

// The back end in-process, against the development provider over https; its fetch option
// trusts the test CA (the gateway process uses NODE_EXTRA_CA_CERTS instead).
const env = await startEntraEnv(1);
t.teardown(() => env.close());
const redirectUri = `http://127.0.0.1:${env.ports[0]}/auth/callback`;

type Tamper = (url: string, init: RequestInit | undefined, res: () => Promise<Response>) => Promise<Response>;
let tamper: Tamper | undefined;
const fetched: string[] = [];
const fetchVia: FetchLike = (input, init) => {
  fetched.push(String(input));
  const real = () => env.fetch(input, init);
  return tamper ? tamper(String(input), init, real) : real();
};

function config(extra: Partial<IdentityConfig> = {}): IdentityConfig {
  return {
    provider: 'entra',
    authority: env.provider.issuer,
    knownAuthorities: [new URL(env.provider.issuer).host],
    clientId: SECRET_CLIENT,
    clientSecret: CLIENT_SECRET,
    authMethod: 'client_secret_basic',
    scopes: ['offline_access', 'openid', 'profile', 'api.read'],
    extraAuthorizeParams: {},
    timeoutMs: 1500,
    clockToleranceSec: 30,
    allowInsecureRequests: false,
    ...extra,
  };
}

const store = new MemoryPartitionStore();
const backend = new EntraBackend(config(), store, { fetch: fetchVia, partitionTtlMs: 60_000 });
await backend.init();

async function signInAs(login: string, b = backend): Promise<{ account: AccountRef; idToken?: string }> {
  const state = randomBytes(16).toString('base64url');
  const nonce = randomBytes(16).toString('base64url');
  const codeVerifier = randomBytes(32).toString('base64url');
  const url = await b.signInUrl({ redirectUri, state, nonce, codeVerifier, scopes: ['offline_access', 'openid', 'profile', 'api.read'], resources: [API_RESOURCE, API2_RESOURCE] });
  const res = await browse(url.href, new CookieJar(), { login, dispatcher: env.agent, stopAt: (l) => l.href.startsWith(redirectUri) });
  if (!res.location) throw new Error(`sign-in stopped at ${res.url}`);
  return b.redeemCode(new URL(res.location), { state, nonce, codeVerifier, redirectUri });
}

t.test('init reads the discovery document once, where MSAL itself would in OIDC protocol mode', async (t) => {
  t.ok(backend.ready());
  t.ok(backend.oidcMode, 'the authority is a known authority');
  t.equal(backend.discoveryUrl, `${env.provider.issuer}/.well-known/openid-configuration`);
  t.equal(backend.metadata?.issuer, env.provider.issuer);
  t.ok(backend.ownsRefreshTokens);
  const aad = new EntraBackend(config({ authority: 'https://login.microsoftonline.com/organizations', knownAuthorities: [] }), undefined);
  t.notOk(aad.oidcMode);
  t.equal(aad.discoveryUrl, 'https://login.microsoftonline.com/organizations/v2.0/.well-known/openid-configuration', 'Entra ID: the v2.0 document');
  await t.rejects(aad.signInUrl({ redirectUri, state: 's', nonce: 'n', codeVerifier: 'v'.repeat(43), scopes: ['openid'] }), { kind: 'unavailable' }, 'nothing before init');
});

t.test('no operation fetches the discovery document again: every MSAL application gets the metadata init() read', async (t) => {
  const { account } = await signInAs(uniqueUser('ivan'));
  await backend.refresh(account, undefined, ['api.read'], API2_RESOURCE);
  await backend.clientCredentials(['api.write']);
  t.same(fetched.filter((u) => u.includes('/.well-known/')), [`${env.provider.issuer}/.well-known/openid-configuration`], 'one discovery, at init');
});

t.test('an Entra ID authority gets the v2.0 metadata and the cloud instance discovery once, and MSAL builds its URLs from them without the network', async (t) => {
  const tenant = '72f988bf-86f1-41af-91ab-2d7cd011db47';
  const base = 'https://login.microsoftonline.com';
  const calls: string[] = [];
  const fake: FetchLike = async (input) => {
    const url = String(input);
    calls.push(url);
    const json = (body: unknown) => new Response(JSON.stringify(body), { status: 200, headers: { 'content-type': 'application/json' } });
    if (url === `${base}/${tenant}/v2.0/.well-known/openid-configuration`) {
      return json({
        issuer: `${base}/${tenant}/v2.0`,
        authorization_endpoint: `${base}/${tenant}/oauth2/v2.0/authorize`,
        token_endpoint: `${base}/${tenant}/oauth2/v2.0/token`,
        jwks_uri: `${base}/${tenant}/discovery/v2.0/keys`,
        end_session_endpoint: `${base}/${tenant}/oauth2/v2.0/logout`,
        id_token_signing_alg_values_supported: ['RS256'],
        scopes_supported: ['openid', 'profile', 'email', 'offline_access'],
        cloud_instance_name: 'microsoftonline.com',
        msgraph_host: 'graph.microsoft.com',
      });
    }
    if (url.startsWith(`${base}/common/discovery/instance?`)) {
      return json({
        tenant_discovery_endpoint: `${base}/${tenant}/v2.0/.well-known/openid-configuration`,
        'api-version': '1.1',
        metadata: [{ preferred_network: 'login.microsoftonline.com', preferred_cache: 'login.windows.net', aliases: ['login.microsoftonline.com', 'login.windows.net', 'login.microsoft.com', 'sts.windows.net'] }],
      });
    }
    return new Response('not here', { status: 404 });
  };
  const entra = new EntraBackend(config({ authority: `${base}/${tenant}`, knownAuthorities: [], clientId: 'c0ffee00-0000-0000-0000-000000000000' }), undefined, { fetch: fake });
  await entra.init();
  t.equal(calls.length, 2, 'the metadata and the instance discovery');
  t.match(calls[1], /authorization_endpoint=https%3A%2F%2Flogin\.microsoftonline\.com%2F72f988bf/);
  for (let i = 0; i < 3; i++) {
    const url = await entra.signInUrl({ redirectUri: 'https://app.example/auth/callback', state: `s${i}`, nonce: 'n', codeVerifier: 'v'.repeat(43), scopes: ['openid', 'profile', 'offline_access', 'User.Read'] });
    t.equal(url.origin + url.pathname, `${base}/${tenant}/oauth2/v2.0/authorize`);
    t.match(url.searchParams.get('scope'), /User\.Read/);
  }
  t.equal(calls.length, 2, 'no discovery per request');
  const logout = entra.logoutUrl({ postLogoutRedirectUri: 'https://app.example/' })!;
  t.equal(logout.origin + logout.pathname, `${base}/${tenant}/oauth2/v2.0/logout`);
  t.equal(await entra.revoke('x'), false, 'Entra ID has no revocation endpoint');
});

t.test('the authorization URL carries PKCE S256, state, nonce, the scopes, resource indicators, claims and prompt', async (t) => {
  const verifier = 'x'.repeat(43);
  const url = await backend.signInUrl({ redirectUri, state: 'the-state', nonce: 'the-nonce', codeVerifier: verifier, scopes: ['openid', 'api.read'], resources: [API_RESOURCE], extra: { claims: '{"access_token":{"acr":{"essential":true}}}', prompt: 'login', ui_locales: 'de' } });
  const q = url.searchParams;
  t.equal(url.origin + url.pathname, String(backend.metadata?.authorization_endpoint));
  t.equal(q.get('code_challenge_method'), 'S256');
  t.equal(q.get('code_challenge'), (await import('node:crypto')).createHash('sha256').update(verifier).digest('base64url'));
  t.equal(q.get('state'), 'the-state');
  t.equal(q.get('nonce'), 'the-nonce');
  t.equal(q.get('redirect_uri'), redirectUri);
  t.match(q.get('scope'), /api\.read/);
  t.same(q.getAll('resource'), [API_RESOURCE]);
  t.same(JSON.parse(q.get('claims')!).access_token, { acr: { essential: true } });
  t.equal(q.get('prompt'), 'login');
  t.equal(q.get('ui_locales'), 'de', 'other extra parameters pass through');
});

t.test("code redemption keys the account by MSAL's homeAccountId and stores a partition holding only it", async (t) => {
  const user = uniqueUser('alice');
  const signed = await signInAs(user);
  t.equal(signed.account.key, user, 'homeAccountId is the sub for a provider that sends no client_info');
  t.equal(signed.account.sub, user);
  t.equal(signed.account.iss, env.provider.issuer);
  t.equal(backend.accountKeyOf(env.provider.issuer, user), signed.account.key, 'a logout token sub maps to the same key');
  t.notOk((signed as { refreshToken?: string }).refreshToken, 'the refresh token stays in the MSAL cache');
  t.same(homeAccountIdsOf((await store.load(`acct:${user}`))!), [user]);
});

t.test('concurrent refreshes for several accounts never mix their partitions or their tokens', async (t) => {
  const users = [uniqueUser('u1'), uniqueUser('u2'), uniqueUser('u3'), uniqueUser('u4')];
  const accounts = await Promise.all(users.map((u) => signInAs(u)));
  const jobs = accounts.flatMap(({ account }) =>
    [API_RESOURCE, API2_RESOURCE, API_RESOURCE, API2_RESOURCE, undefined].map(async (resource) => ({ user: account.sub, resource, grant: await backend.refresh(account, undefined, ['api.read'], resource) })),
  );
  const results = await Promise.all(jobs);
  for (const r of results) {
    const claims = decodeJwt(r.grant.accessToken);
    t.equal(claims.sub, r.user, 'the token is for the account asked for');
    t.equal(claims.aud, r.resource ?? API_RESOURCE);
  }
  for (const u of users) t.same(homeAccountIdsOf((await store.load(`acct:${u}`))!), [u], `${u}'s partition holds only ${u}`);
});

t.test("a route without a resource indicator never gets the token MSAL cached for another route's resource (bug: MSAL matched it by scopes alone)", async (t) => {
  const { account } = await signInAs(uniqueUser('rita'));
  const api2 = await backend.refresh(account, undefined, ['api.read'], API2_RESOURCE);
  t.equal(decodeJwt(api2.accessToken).aud, API2_RESOURCE);
  const refreshes = env.provider.counts.refreshGrants;
  const plain = await backend.refresh(account, undefined, ['api.read'], undefined);
  t.not(plain.accessToken, api2.accessToken, 'not the cached token of the other resource');
  t.equal(decodeJwt(plain.accessToken).aud, API_RESOURCE, "the provider's default resource");
  t.equal(env.provider.counts.refreshGrants, refreshes + 1, 'one forced refresh');
  const again = await backend.refresh(account, undefined, ['api.read'], undefined);
  t.equal(again.accessToken, plain.accessToken, 'then served from the cache');
});

t.test('an account without a partition needs a new sign-in', async (t) => {
  await t.rejects(backend.refresh({ key: 'nobody', iss: env.provider.issuer, sub: 'nobody' }, undefined, ['api.read'], API_RESOURCE), { kind: 'invalid_grant' });
});

t.test('a scope the user has not granted is interaction_required (consent), not an error', async (t) => {
  const { account } = await signInAs(uniqueUser('bob'));
  const err = await backend.refresh(account, undefined, ['other.read'], 'https://other.example.test').catch((e: unknown) => e);
  t.ok(err instanceof IdentityError);
  t.equal((err as IdentityError).kind, 'interaction_required');
});

t.test('a revoked refresh token is invalid_grant; forgetting the account revokes it and deletes the partition', async (t) => {
  const user = uniqueUser('carol');
  const { account } = await signInAs(user);
  const partition = JSON.parse((await store.load(`acct:${user}`))!) as { RefreshToken: Record<string, { secret: string }> };
  const rt = Object.values(partition.RefreshToken)[0]!.secret;
  await backend.forgetAccount(account.key);
  t.equal(await store.load(`acct:${user}`), undefined);
  t.ok(await env.provider.isRevoked(rt));
  await t.rejects(backend.refresh(account, undefined, ['api.read'], API2_RESOURCE), { kind: 'invalid_grant' }, 'no partition, no token');

  const other = uniqueUser('dan');
  const signed = await signInAs(other);
  const secret = Object.values((JSON.parse((await store.load(`acct:${other}`))!) as typeof partition).RefreshToken)[0]!.secret;
  t.equal(await backend.revoke(secret), true);
  await t.rejects(backend.refresh(signed.account, undefined, ['api.read'], API2_RESOURCE), { kind: 'invalid_grant' });
});

t.test('a provider that does not answer in time makes a refresh unavailable within the timeout', async (t) => {
  const { account } = await signInAs(uniqueUser('erin'));
  tamper = (url, init, real) => {
    if (!url.includes('/token')) return real();
    return new Promise((_, reject) => init?.signal?.addEventListener('abort', () => reject(init.signal!.reason)));
  };
  t.teardown(() => (tamper = undefined));
  const started = Date.now();
  await t.rejects(backend.refresh(account, undefined, ['api.read'], API2_RESOURCE), { kind: 'unavailable' });
  t.ok(Date.now() - started < 5000, 'within the timeout');
  tamper = undefined;
  t.ok((await backend.refresh(account, undefined, ['api.read'], API2_RESOURCE)).accessToken, 'and works once the provider answers again');
});

t.test('an ID token whose signature does not verify is refused and nothing of the sign-in is stored', async (t) => {
  const user = uniqueUser('mallory');
  tamper = async (url, _init, real) => {
    const res = await real();
    if (!url.includes('/token')) return res;
    const body = (await res.json()) as { id_token: string };
    const [h, p] = body.id_token.split('.');
    body.id_token = `${h}.${p}.${Buffer.from('not the signature').toString('base64url')}`;
    return new Response(JSON.stringify(body), { status: res.status, headers: { 'content-type': 'application/json' } });
  };
  t.teardown(() => (tamper = undefined));
  await t.rejects(signInAs(user), { kind: 'invalid_response' });
  t.equal(await store.load(`acct:${user}`), undefined);
});

t.test('a callback whose state or iss does not match is refused before the code is redeemed', async (t) => {
  const checks = { state: 's1', nonce: 'n', codeVerifier: 'v'.repeat(43), redirectUri };
  const codes = env.provider.counts.codeGrants;
  await t.rejects(backend.redeemCode(new URL(`${redirectUri}?code=c&state=s2&iss=${encodeURIComponent(env.provider.issuer)}`), checks), { kind: 'invalid_request' });
  await t.rejects(backend.redeemCode(new URL(`${redirectUri}?code=c&state=s1&iss=https%3A%2F%2Fevil.example`), checks), { kind: 'invalid_request' });
  await t.rejects(backend.redeemCode(new URL(`${redirectUri}?error=access_denied&state=s1`), checks), { kind: 'invalid_request' });
  await t.rejects(backend.redeemCode(new URL(`${redirectUri}?error=consent_required&state=s1`), checks), { kind: 'interaction_required' });
  t.equal(env.provider.counts.codeGrants, codes);
});

t.test('the logout URL is the end_session_endpoint with id_token_hint, post_logout_redirect_uri and client_id', async (t) => {
  const url = backend.logoutUrl({ idTokenHint: 'the.id.token', postLogoutRedirectUri: 'http://127.0.0.1:1/' })!;
  t.equal(url.origin + url.pathname, String(backend.metadata?.end_session_endpoint));
  t.equal(url.searchParams.get('id_token_hint'), 'the.id.token');
  t.equal(url.searchParams.get('post_logout_redirect_uri'), 'http://127.0.0.1:1/');
  t.equal(url.searchParams.get('client_id'), SECRET_CLIENT);
});

t.test('without a revocation endpoint in the metadata (Entra ID) revoke answers false and forgetting only deletes', async (t) => {
  tamper = async (url, _init, real) => {
    const res = await real();
    if (!url.endsWith('/.well-known/openid-configuration')) return res;
    const meta = (await res.json()) as Record<string, unknown>;
    delete meta.revocation_endpoint;
    return new Response(JSON.stringify(meta), { status: 200, headers: { 'content-type': 'application/json' } });
  };
  t.teardown(() => (tamper = undefined));
  const plain = new EntraBackend(config(), store, { fetch: fetchVia });
  await plain.init();
  tamper = undefined;
  t.equal(await plain.revoke('anything'), false);
  const user = uniqueUser('frank');
  await signInAs(user, plain);
  const rt = Object.values((JSON.parse((await store.load(`acct:${user}`))!) as { RefreshToken: Record<string, { secret: string }> }).RefreshToken)[0]!.secret;
  await plain.forgetAccount(user);
  t.equal(await store.load(`acct:${user}`), undefined);
  t.notOk(await env.provider.isRevoked(rt), 'nothing was revoked');
});
