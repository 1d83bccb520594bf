/**
 * The OpenID Connect relying-party negative cases, against a hostile provider: every ID
 * token or authorization response that OpenID Connect Core 3.1.3.7 / RFC 9207 say to
 * reject ends with a 400 login_failed, no session and nothing upstream.
 */
import t, { type Test } from 'tap';
import {
  attemptLogin,
  HOSTILE_CLIENT_ID,
  isSignedIn,
  newSigningKey,
  setCookieOf,
  spaCall,
  startHostileStack,
  type HostileStack,
  type LoginAttempt,
  type MintOptions,
} from '../helpers/hostile-provider.js';

const now = () => Math.floor(Date.now() / 1000);
/** The gateway's default clock tolerance is 30 s; these are well outside it. */
const OUTSIDE = 120;

const shared = await startHostileStack();
t.teardown(() => shared.close());

/** The login ended without a session anywhere: the answer, the cookie, the jar, the upstreams, the logs. */
async function assertRefused(t: Test, stack: HostileStack, attempt: LoginAttempt, opts: { tokenRequested?: boolean } = {}) {
  const res = attempt.callback;
  t.ok(res, 'the provider sent the browser back to the callback');
  if (!res) return;
  t.equal(res.status, 400, 'the callback answers 400');
  t.match(String(res.headers['content-type']), /^application\/problem\+json/, 'problem+json');
  let body: Record<string, unknown> = {};
  try {
    body = JSON.parse(res.body) as Record<string, unknown>;
  } catch {
    // asserted below
  }
  t.equal(body.error, 'login_failed', 'error login_failed');
  t.equal(res.headers.location, undefined, 'no redirect');
  t.notMatch(res.body, /eyJ|\n\s+at /, 'no token or stack in the body');
  t.notOk(await isSignedIn(stack, setCookieOf(res, stack.cookieName)), 'the Set-Cookie of the answer is not a working session');
  t.notOk(await isSignedIn(stack, attempt.jar.header(stack.url)), 'the browser is not signed in (/auth/user 401)');
  const before = stack.upstreamCount();
  const api = await spaCall(stack, '/api/orders', attempt.jar.header(stack.url));
  t.equal(api.status, 401, 'a route call answers 401');
  t.equal(stack.upstreamCount(), before, 'nothing reached an upstream');
  if (opts.tokenRequested !== false) t.ok(stack.provider.issued.length > 0, 'the provider did issue tokens');
  for (const token of stack.provider.issued) {
    if (stack.logs.text.includes(token)) t.fail('a token the provider issued appears in the gateway logs');
  }
}

/** One login whose code grant returns an ID token minted as `mint` says. */
async function loginWith(stack: HostileStack, mint: MintOptions): Promise<LoginAttempt> {
  stack.provider.behaviour = { subject: 'alice', codeIdToken: mint };
  const grants = stack.provider.counts.codeGrants;
  const attempt = await attemptLogin(stack);
  if (stack.provider.counts.codeGrants !== grants + 1) throw new Error('the code was not redeemed: the case did not reach ID token validation');
  return attempt;
}

async function assertSignedInAfter(t: Test, stack: HostileStack, attempt: LoginAttempt, what: string) {
  t.equal(attempt.callback?.status, 302, `${what}: the callback redirects to returnTo`);
  t.equal(attempt.callback?.headers.location, '/', `${what}: to /`);
  t.ok(await isSignedIn(stack, attempt.jar.header(stack.url)), `${what}: the browser is signed in`);
}

t.test('an honest provider signs the user in (the control for every refusal below)', async (t) => {
  const attempt = await loginWith(shared, {});
  await assertSignedInAfter(t, shared, attempt, 'honest ID token');
  const user = await spaCall(shared, '/auth/user', attempt.jar.header(shared.url));
  t.equal(user.json?.sub, 'alice');
  const api = await spaCall(shared, '/api/orders', attempt.jar.header(shared.url));
  t.equal(api.status, 200, 'a route call reaches the upstream');
  t.match(String(shared.apiUpstream.received.at(-1)?.headers.authorization), /^Bearer at-api\.read-/, 'with the route token');
});

const idTokenCases: Array<{ name: string; mint: () => MintOptions | Promise<MintOptions> }> = [
  { name: 'an ID token with a bad signature is refused (bug: openid-client checks no signature on a token endpoint response, and the gateway did not either)', mint: () => ({ signature: 'tampered' }) },
  { name: 'an unsigned ID token (alg: none) is refused', mint: () => ({ signature: 'none' }) },
  {
    name: "an ID token signed by an attacker's key under the provider's kid is refused (bug: no signature check)",
    mint: async () => ({ key: await newSigningKey('attacker'), kid: 'k-initial' }),
  },
  { name: 'an ID token MACed with HS256 using the public key as the secret is refused (algorithm confusion)', mint: () => ({ signature: 'hs256-public-key' }) },
  { name: 'an ID token from another issuer is refused', mint: () => ({ claims: { iss: 'https://evil.example' } }) },
  { name: 'an ID token for another client (wrong aud) is refused', mint: () => ({ claims: { aud: 'another-client' } }) },
  { name: 'an ID token with an extra untrusted audience and no azp is refused', mint: () => ({ claims: { aud: [HOSTILE_CLIENT_ID, 'another-client'] } }) },
  {
    name: 'an ID token with an extra untrusted audience is refused even when azp names this client (bug: accepted when azp named this client)',
    mint: () => ({ claims: { aud: [HOSTILE_CLIENT_ID, 'another-client'], azp: HOSTILE_CLIENT_ID } }),
  },
  { name: 'an ID token whose azp names another client is refused (bug: azp was only checked with several audiences)', mint: () => ({ claims: { azp: 'another-client' } }) },
  {
    name: 'an ID token with two audiences whose azp names another client is refused',
    mint: () => ({ claims: { aud: [HOSTILE_CLIENT_ID, 'another-client'], azp: 'another-client' } }),
  },
  { name: 'an ID token without sub is refused', mint: () => ({ claims: { sub: undefined } }) },
  { name: 'an ID token whose sub is not a string is refused', mint: () => ({ claims: { sub: 42 } }) },
  { name: 'an ID token without iat is refused', mint: () => ({ claims: { iat: undefined } }) },
  { name: 'an ID token without exp is refused', mint: () => ({ claims: { exp: undefined } }) },
  { name: 'an ID token with a wrong nonce is refused', mint: () => ({ claims: { nonce: 'not-the-nonce-we-sent' } }) },
  { name: 'an ID token without the nonce is refused', mint: () => ({ claims: { nonce: undefined } }) },
  { name: 'an ID token that expired beyond the clock tolerance is refused', mint: () => ({ claims: { iat: now() - 600, exp: now() - OUTSIDE } }) },
  { name: 'an ID token issued in the future beyond the clock tolerance is refused (bug: iat was not checked)', mint: () => ({ claims: { iat: now() + OUTSIDE, exp: now() + OUTSIDE + 300 } }) },
  { name: 'an ID token not valid before a time beyond the clock tolerance is refused', mint: () => ({ claims: { nbf: now() + OUTSIDE } }) },
  { name: 'an ID token signed by a key the JWKS does not have (unknown kid) is refused (bug: no signature check)', mint: async () => ({ key: await newSigningKey('unknown-kid') }) },
];

for (const c of idTokenCases) {
  t.test(c.name, async (t) => {
    const attempt = await loginWith(shared, await c.mint());
    await assertRefused(t, shared, attempt);
  });
}

t.test('an ID token without kid is accepted when the JWKS has exactly one key (OpenID Connect Core 10.1)', async (t) => {
  const stack = await startHostileStack();
  t.teardown(() => stack.close());
  const attempt = await loginWith(stack, { kid: null });
  await assertSignedInAfter(t, stack, attempt, 'no kid, one key');
});

t.test('an ID token without kid is refused when the JWKS has several keys (bug: no signature check)', async (t) => {
  const stack = await startHostileStack();
  t.teardown(() => stack.close());
  stack.provider.published.push(await newSigningKey('second'));
  const attempt = await loginWith(stack, { kid: null });
  await assertRefused(t, stack, attempt);
});

t.test('an unparseable key beside a good one: the good key still signs users in, a token naming the broken key is refused (bug: no signature check)', async (t) => {
  const stack = await startHostileStack();
  t.teardown(() => stack.close());
  stack.provider.rawJwks.push({ kty: 'RSA', kid: 'broken', alg: 'RS256', use: 'sig', n: '%%%not-base64url%%%', e: 'AQAB' });
  stack.provider.rawJwks.push({ kty: 'XYZ', kid: 'alien' });
  await assertSignedInAfter(t, stack, await loginWith(stack, {}), 'token signed by the good key');
  const broken = await loginWith(stack, { kid: 'broken' });
  await assertRefused(t, stack, broken);
  await assertSignedInAfter(t, stack, await loginWith(stack, {}), 'the good key afterwards');
});

t.test('a signing key rotated between two logins signs the next user in without a restart, once the JWKS cooldown has passed', async (t) => {
  const stack = await startHostileStack();
  t.teardown(() => stack.close());
  const first = await loginWith(stack, {});
  await assertSignedInAfter(t, stack, first, 'before the rotation');
  const fetches = stack.provider.counts.jwks;
  t.equal(fetches, 1, 'the JWKS was fetched once');
  await stack.provider.rotate();
  // jose refetches a JWKS for an unknown kid only after a 30 s cooldown since the last
  // fetch; move this process's clock past it rather than wait (provider and gateway share it).
  const realNow = Date.now;
  Date.now = () => realNow() + 31_000;
  t.teardown(() => {
    Date.now = realNow;
  });
  const second = await loginWith(stack, {});
  await assertSignedInAfter(t, stack, second, 'after the rotation');
  t.equal(stack.provider.counts.jwks, fetches + 1, 'the JWKS was fetched again, once');
  Date.now = realNow;
  t.ok(await isSignedIn(stack, first.jar.header(stack.url)), 'the session from before the rotation still works');
});

t.test('a flood of ID tokens with unknown kids makes at most one JWKS fetch per cooldown', async (t) => {
  const stack = await startHostileStack();
  t.teardown(() => stack.close());
  await assertSignedInAfter(t, stack, await loginWith(stack, {}), 'an honest login first');
  const before = stack.provider.counts.jwks;
  const attacker = await newSigningKey('attacker');
  const attempts = [];
  for (let i = 0; i < 20; i++) attempts.push(await loginWith(stack, { key: attacker, kid: `flood-${i}` }));
  for (const a of attempts) t.equal(a.callback?.status, 400, 'refused');
  t.ok(stack.provider.counts.jwks - before <= 1, `${stack.provider.counts.jwks - before} JWKS fetches for 20 unknown kids`);
  // Concurrently, too.
  let n = 0;
  stack.provider.behaviour = { subject: 'alice', codeIdToken: { key: attacker, kid: () => `burst-${n++}` } };
  const burst = await Promise.all(Array.from({ length: 20 }, () => attemptLogin(stack)));
  t.equal(n, 20, '20 different kids were minted');
  t.same(burst.map((a) => a.callback?.status), Array(20).fill(400), 'every one refused');
  t.ok(stack.provider.counts.jwks - before <= 1, `${stack.provider.counts.jwks - before} JWKS fetches for 40 unknown kids`);
  await assertRefused(t, stack, attempts[0]!);
  // Once the cooldown is over, an unknown kid may fetch the JWKS again: once.
  const realNow = Date.now;
  Date.now = () => realNow() + 31_000;
  t.teardown(() => {
    Date.now = realNow;
  });
  const afterCooldown = stack.provider.counts.jwks;
  for (let i = 0; i < 5; i++) t.equal((await loginWith(stack, { key: attacker, kid: `late-${i}` })).callback?.status, 400, 'refused');
  t.equal(stack.provider.counts.jwks - afterCooldown, 1, 'one JWKS fetch for the next cooldown period');
  Date.now = realNow;
  await assertSignedInAfter(t, stack, await loginWith(stack, {}), 'an honest login afterwards');
});

t.test('ID token timestamps inside the clock tolerance are accepted (the tolerance is not zero)', async (t) => {
  const attempt = await loginWith(shared, { claims: { iat: now() + 10, nbf: now() + 10, exp: now() + 300 } });
  await assertSignedInAfter(t, shared, attempt, 'iat and nbf 10 s ahead');
  const expired = await loginWith(shared, { claims: { iat: now() - 300, exp: now() - 10 } });
  await assertSignedInAfter(t, shared, expired, 'exp 10 s ago');
});

/** A login whose authorization response (the redirect back) the provider tampers with. */
async function callbackWith(stack: HostileStack, behaviour: Partial<typeof stack.provider.behaviour>): Promise<LoginAttempt> {
  stack.provider.behaviour = { subject: 'alice', codeIdToken: {}, ...behaviour };
  try {
    return await attemptLogin(stack);
  } finally {
    stack.provider.behaviour = { subject: 'alice', codeIdToken: {} };
  }
}

t.test('the discovery document advertises the RFC 9207 iss parameter (the cases below rely on it)', async (t) => {
  const meta = (await (await fetch(shared.provider.issuer + '/.well-known/openid-configuration')).json()) as Record<string, unknown>;
  t.equal(meta.authorization_response_iss_parameter_supported, true);
});

const callbackCases: Array<{ name: string; behaviour: Partial<HostileStack['provider']['behaviour']> }> = [
  { name: 'a callback whose iss names another issuer is refused before the code is redeemed (RFC 9207 mix-up)', behaviour: { callbackIss: 'https://evil.example' } },
  { name: 'a callback without iss is refused when the provider advertises it (RFC 9207)', behaviour: { callbackIss: null } },
  { name: 'a callback with iss given twice is refused before the code is redeemed', behaviour: { callbackExtra: [['iss', 'https://evil.example']] } },
  { name: 'a callback with two code parameters is refused before either is redeemed', behaviour: { callbackExtra: [['code', 'attacker-code']] } },
  { name: 'a callback with two state parameters is refused before the code is redeemed', behaviour: { callbackExtra: [['state', 'attacker-state']] } },
];

for (const c of callbackCases) {
  t.test(c.name, async (t) => {
    const grants = shared.provider.counts.codeGrants;
    const refused = shared.provider.counts.refusedTokenRequests;
    const attempt = await callbackWith(shared, c.behaviour);
    await assertRefused(t, shared, attempt, { tokenRequested: false });
    t.equal(shared.provider.counts.codeGrants, grants, 'no code was redeemed');
    t.equal(shared.provider.counts.refusedTokenRequests, refused, 'no token request was made at all');
  });
}

/** A signed-in user whose next refresh returns an ID token minted as `mint` says. */
async function refreshCase(t: Test, mint: MintOptions) {
  const stack = await startHostileStack();
  t.teardown(() => stack.close());
  const attempt = await loginWith(stack, {});
  await assertSignedInAfter(t, stack, attempt, 'signed in');
  const cookie = attempt.jar.header(stack.url);
  stack.provider.behaviour.refreshIdToken = mint;
  const refreshes = stack.provider.counts.refreshGrants;
  const before = stack.upstreamCount();
  const res = await spaCall(stack, '/api/orders', cookie);
  t.equal(stack.provider.counts.refreshGrants, refreshes + 1, 'the gateway refreshed');
  t.equal(stack.upstreamCount(), before, 'nothing reached the upstream: not the token issued with that ID token');
  t.notMatch(res.text, /at-|rt-|eyJ/, 'no token in the answer');
  return { stack, res, cookie, refreshes };
}

t.test('a refreshed ID token with the same subject lets the route call through', async (t) => {
  const stack = await startHostileStack();
  t.teardown(() => stack.close());
  const attempt = await loginWith(stack, {});
  stack.provider.behaviour.refreshIdToken = {};
  const res = await spaCall(stack, '/api/orders', attempt.jar.header(stack.url));
  t.equal(res.status, 200, res.text);
  t.match(String(stack.apiUpstream.received.at(-1)?.headers.authorization), /^Bearer at-api\.read-/);
});

t.test("a refreshed ID token about another user (sub changed) answers 401 consent_required and never sends that user's token", async (t) => {
  const { stack, res, cookie } = await refreshCase(t, { claims: { sub: 'mallory' } });
  t.equal(res.status, 401);
  t.equal(res.json?.error, 'consent_required');
  t.equal(res.json?.loginUrl, '/auth/login?scopes=api.read');
  const refreshes = stack.provider.counts.refreshGrants;
  const again = await spaCall(stack, '/api/orders', cookie);
  t.equal(again.status, 401, 'still 401 on the next call');
  t.equal(stack.provider.counts.refreshGrants, refreshes, 'the refresh token that produced it was dropped: no second refresh');
  t.equal((await spaCall(stack, '/auth/user', cookie)).json?.sub, 'alice', 'the session is still about alice');
});

t.test('a refreshed ID token from another issuer (iss changed) answers 401 consent_required and never sends the token (bug: answered 502 provider_error and kept retrying the refresh token)', async (t) => {
  const { res } = await refreshCase(t, { claims: { iss: 'https://evil.example' } });
  t.equal(res.status, 401, res.text);
  t.equal(res.json?.error, 'consent_required');
});

t.test('a refreshed ID token for another client (aud changed) answers 401 consent_required and never sends the token (bug: answered 502 provider_error and kept retrying the refresh token)', async (t) => {
  const { res } = await refreshCase(t, { claims: { aud: 'another-client' } });
  t.equal(res.status, 401, res.text);
  t.equal(res.json?.error, 'consent_required');
});

t.test('a refreshed ID token with an extra untrusted audience answers 401 consent_required and never sends the token (bug: it was accepted)', async (t) => {
  const { res } = await refreshCase(t, { claims: { aud: [HOSTILE_CLIENT_ID, 'another-client'], azp: HOSTILE_CLIENT_ID } });
  t.equal(res.status, 401, res.text);
  t.equal(res.json?.error, 'consent_required');
});

