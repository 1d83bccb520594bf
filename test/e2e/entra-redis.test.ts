import t from 'tap';
import { apiCall } from '../helpers/stack.js';
import { SHARED_REDIS_URL } from '../helpers/redis.js';
import { RawRedis, redisDatabase } from '../helpers/entra-redis.js';
import { DEFAULT_CACHE_KEY, entraSignIn, startEntraEnv, startEntraGateway, uniqueUser, API_RESOURCE, API2_RESOURCE } from '../helpers/entra-stack.js';
import { startSampleApi } from '../../examples/demo/api.js';
import { Sealer } from '../../src/tokens/sealed.js';
import { homeAccountIdsOf } from '../../src/identity/entra-cache.js';

// A database of the shared Redis that only this file uses: flushed before and after.
const REDIS = redisDatabase(SHARED_REDIS_URL, 11);
const raw = await RawRedis.connect(REDIS);
await raw.command('FLUSHDB');
const env = await startEntraEnv(2);
// A route whose token neither gateway has cached yet (same scope, another resource):
// asking for it makes gateway 1 refresh.
const api2 = await startSampleApi({ issuer: env.provider.issuer, audience: API2_RESOURCE, fetch: env.fetch });
const extraRoutes = `  - { name: api2, prefix: /api2, upstream: "${api2.url}", auth: user, scopes: [api.read], resource: "${API2_RESOURCE}" }`;
const gw1 = await startEntraGateway(env, { slot: 0, cacheUrl: REDIS, extraRoutes });
const gw2 = await startEntraGateway(env, { slot: 1, cacheUrl: REDIS, extraRoutes });
t.teardown(async () => {
  await gw1.close();
  await gw2.close();
  await api2.close();
  await env.close();
  await raw.command('FLUSHDB');
  raw.close();
});

const sealer = new Sealer([DEFAULT_CACHE_KEY], 'token-cache');

/** The sealed text Keyv wrote under a store key, straight from Redis (@keyv/redis prefixes 'keyv::'). */
async function rawEntry(key: string): Promise<{ raw: string; sealed: string } | undefined> {
  const text = (await raw.get('keyv::' + key)) ?? (await raw.get(key));
  if (text === null) return undefined;
  const sealed = text.startsWith('{') ? String((JSON.parse(text) as { value: unknown }).value) : text;
  return { raw: text, sealed };
}

interface Partition {
  Account?: Record<string, { home_account_id: string }>;
  AccessToken?: Record<string, { secret: string; home_account_id: string }>;
  RefreshToken?: Record<string, { secret: string }>;
  IdToken?: Record<string, { secret: string }>;
}

async function openPartition(t: Tap.Test, partition: string): Promise<{ raw: string; cache: Partition; text: string }> {
  const entry = await rawEntry('msal:' + partition);
  t.ok(entry, `msal:${partition} is in Redis`);
  t.match(entry!.sealed, /^v1\.[^.]+\.[^.]+\.[^.]+$/, 'it is sealed text');
  const text = sealer.open(entry!.sealed, 'msal:' + partition);
  t.ok(text, 'it opens with the token cache key, the full store key as additional data');
  return { raw: entry!.raw, cache: JSON.parse(text!) as Partition, text: text! };
}

t.test("a second gateway process serves the user from the account's MSAL partition in Redis", async (t) => {
  const alice = uniqueUser('alice');
  const { gatewayCookie: cookie } = await entraSignIn(env, gw1, { login: alice });
  const refreshes = env.provider.counts.refreshGrants;
  const plain = await apiCall(gw2, '/plain/x', cookie);
  t.equal(plain.status, 200, plain.text);
  t.equal(plain.json?.sub, alice);
  t.equal(env.provider.counts.refreshGrants, refreshes, "the access token of the sign-in came from the partition gateway 1 wrote");
  const api = await apiCall(gw2, '/api/x', cookie);
  t.equal(api.status, 200, api.text);
  t.equal(api.json?.aud, API_RESOURCE);
  t.equal(env.provider.counts.refreshGrants, refreshes + 1, "gateway 2 refreshed with the partition's refresh token");
  const back = await apiCall(gw1, '/api2/y', cookie);
  t.equal(back.status, 200, back.text);
  t.equal(back.json?.aud, API2_RESOURCE);
  t.equal(env.provider.counts.refreshGrants, refreshes + 2, 'gateway 1 refreshed with the refresh token gateway 2 rotated into the partition');
});

t.test("the token cache partitions in Redis are encrypted and each holds only its own account's tokens", async (t) => {
  const alice = uniqueUser('alice');
  const bob = uniqueUser('bob');
  const a = await entraSignIn(env, gw1, { login: alice });
  const b = await entraSignIn(env, gw2, { login: bob });
  t.equal((await apiCall(gw1, '/api/x', a.gatewayCookie)).status, 200);
  t.equal((await apiCall(gw2, '/api/x', b.gatewayCookie)).status, 200);
  t.equal((await apiCall(gw1, '/app-api/x', '')).status, 200);

  for (const user of [alice, bob]) {
    const { raw: text, cache, text: plain } = await openPartition(t, `acct:${user}`);
    t.same(homeAccountIdsOf(plain), [user], `${user}'s partition holds only ${user}`);
    t.equal(Object.keys(cache.Account ?? {}).length, 1, 'one account');
    const secrets = [...Object.values(cache.AccessToken ?? {}), ...Object.values(cache.RefreshToken ?? {}), ...Object.values(cache.IdToken ?? {})].map((e) => e.secret);
    t.ok(Object.keys(cache.RefreshToken ?? {}).length >= 1, 'the refresh token is in it');
    t.ok(Object.keys(cache.AccessToken ?? {}).length >= 1, 'and access tokens');
    for (const s of secrets) t.notOk(text.includes(s), 'no token is readable in Redis');
    t.notOk(text.includes('"AccessToken"') || text.includes('"RefreshToken"'), 'nor the cache layout');
    t.notOk(text.includes(user), 'nor the account');
  }
  const app = await openPartition(t, 'app');
  t.same(homeAccountIdsOf(app.text), [''], 'the app partition holds app tokens only');
  const refresh = Object.values((await openPartition(t, `acct:${alice}`)).cache.RefreshToken ?? {})[0]!.secret;
  t.notOk(app.text.includes(refresh), "no user's refresh token is in it");
  t.equal(sealer.open((await rawEntry(`msal:acct:${alice}`))!.sealed, `msal:acct:${bob}`), undefined, "alice's partition does not open as bob's");
});

t.test('signing out on the other gateway deletes the partition from Redis and revokes its refresh token at the provider', async (t) => {
  const alice = uniqueUser('alice');
  const { gatewayCookie: cookie } = await entraSignIn(env, gw1, { login: alice });
  const refresh = Object.values((await openPartition(t, `acct:${alice}`)).cache.RefreshToken ?? {})[0]!.secret;
  t.notOk(await env.provider.isRevoked(refresh));
  const me = await apiCall(gw2, '/auth/user', cookie);
  const logout = await fetch(new URL(String(me.json?.logoutUrl), gw2.url), { redirect: 'manual', headers: { cookie } });
  t.equal(logout.status, 302);
  t.equal(new URL(logout.headers.get('location')!).origin, new URL(env.provider.issuer).origin, 'to the end_session_endpoint');
  t.equal(await rawEntry(`msal:acct:${alice}`), undefined, 'the partition is gone');
  t.ok(await env.provider.isRevoked(refresh), 'the refresh token is revoked (the provider has a revocation endpoint)');
  t.equal((await apiCall(gw1, '/api/x', cookie)).status, 401, 'and the session is over on every gateway');
});
