import t from 'tap';
import { execFileSync } from 'node:child_process';
import { signIn } from '../helpers/browserless.js';
import { DedicatedRedis } from '../helpers/redis.js';
import { apiCall, freePort, startStack } from '../helpers/stack.js';

/** How many GETs the Redis server has answered (its own count, not ours). */
function redisGets(port: number): number {
  const info = execFileSync('redis-cli', ['-p', String(port), 'INFO', 'commandstats'], { encoding: 'utf8' });
  return Number(/cmdstat_get:calls=(\d+)/.exec(info)?.[1] ?? 0);
}

t.test('with Redis, repeated requests of a session are served from the in-process copy, and a logout on another replica still ends it at once', async (t) => {
  const redis = await DedicatedRedis.start();
  t.teardown(() => redis.stop());
  const portA = await freePort();
  const a = await startStack({ gatewayPort: portA, env: { CACHE_URL: redis.url } });
  const b = await startStack({ publicUrl: `http://127.0.0.1:${portA}`, sharedProvider: a.provider, env: { CACHE_URL: redis.url } });
  t.teardown(async () => {
    await b.close();
    await a.close();
  });
  const { gatewayCookie } = await signIn(a.url);
  t.equal((await apiCall(b, '/api/x', gatewayCookie)).status, 200);

  const before = redisGets(redis.port);
  for (let i = 0; i < 10; i++) t.equal((await apiCall(b, '/api/x', gatewayCookie)).status, 200);
  t.ok(redisGets(redis.port) - before <= 2, `10 requests made ${redisGets(redis.port) - before} GETs, not one or two per request`);

  const user = await apiCall(a, '/auth/user', gatewayCookie);
  const logout = await fetch(a.url + String(user.json?.logoutUrl), { redirect: 'manual', headers: { cookie: gatewayCookie } });
  t.equal(logout.status, 302);
  const after = await apiCall(b, '/api/x', gatewayCookie);
  t.equal(after.status, 401, 'replica B refuses the session at once, though it held a copy');
});

t.test('with Redis, repeated calls to a client-credentials route read the app token from the in-process copy, not Redis each time', async (t) => {
  const redis = await DedicatedRedis.start();
  t.teardown(() => redis.stop());
  const stack = await startStack({ env: { CACHE_URL: redis.url } });
  t.teardown(() => stack.close());
  t.equal((await apiCall(stack, '/app-api/x', '')).status, 200);
  const before = redisGets(redis.port);
  for (let i = 0; i < 10; i++) t.equal((await apiCall(stack, '/app-api/x', '')).status, 200);
  t.ok(redisGets(redis.port) - before <= 2, `10 requests made ${redisGets(redis.port) - before} GETs, not one per request`);
  t.equal(stack.api.received.at(-1)?.verifyError, undefined, 'the upstream verified the app token');
});

t.test('when the invalidation channel is lost, replicas stop trusting their copies: Redis down is a 503, never a stale session', async (t) => {
  const redis = await DedicatedRedis.start();
  t.teardown(() => redis.stop());
  const stack = await startStack({ env: { CACHE_URL: redis.url } });
  t.teardown(() => stack.close());
  const { gatewayCookie } = await signIn(stack.url);
  t.equal((await apiCall(stack, '/api/x', gatewayCookie)).status, 200, 'the session is now held in-process');
  await redis.stop();
  let status = 0;
  for (let i = 0; i < 20 && status !== 503; i++) {
    status = (await apiCall(stack, '/api/x', gatewayCookie)).status;
    if (status !== 503) await new Promise((r) => setTimeout(r, 20));
  }
  t.equal(status, 503, 'token_store_unavailable once the channel is gone');
});
