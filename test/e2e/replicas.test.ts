import t from 'tap';
import { signIn } from '../helpers/browserless.js';
import { DedicatedRedis, SHARED_REDIS_URL } from '../helpers/redis.js';
import { apiCall, startReplicas, startStack } from '../helpers/stack.js';
import { L1_TTL_MS } from '../../src/tokens/short-cache.js';

/** Past the in-process cache's lifetime, what the store says is what every replica sees. */
const pastL1 = () => new Promise((r) => setTimeout(r, L1_TTL_MS + 50));


t.test('sign-in on replica A, proxied call on replica B', async (t) => {
  const { a, b } = await startReplicas(t, SHARED_REDIS_URL);
  const { gatewayCookie } = await signIn(a.url);
  const res = await apiCall(b, '/api/x', gatewayCookie);
  t.equal(res.status, 200, res.text);
  t.equal(res.json?.sub, 'alice');
  t.equal((await apiCall(b, '/auth/user', gatewayCookie)).json?.sub, 'alice');
});

t.test('20 concurrent requests split across two replicas sharing Redis make at most one refresh and none fails', async (t) => {
  const { a, b } = await startReplicas(t, SHARED_REDIS_URL);
  const { gatewayCookie } = await signIn(a.url);
  const before = a.provider.counts.refreshGrants;
  const results = await Promise.all(Array.from({ length: 20 }, (_, i) => apiCall(i % 2 ? a : b, '/api/x', gatewayCookie)));
  t.same(results.map((r) => r.status), Array(20).fill(200), results.map((r) => r.text).filter((x) => !x.includes('alice')).join('\n'));
  t.equal(a.provider.counts.refreshGrants - before, 1, 'the provider counted one refresh');
});

t.test('Redis stopped mid-test: 503 and a failing /readyz, the process stays up, and it recovers when Redis returns', async (t) => {
  const redis = await DedicatedRedis.start();
  t.teardown(() => redis.stop());
  const stack = await startStack({ env: { CACHE_URL: redis.url } });
  t.teardown(() => stack.close());
  const { gatewayCookie } = await signIn(stack.url);
  t.equal((await apiCall(stack, '/api/x', gatewayCookie)).status, 200);
  t.equal((await fetch(stack.url + '/readyz')).status, 200);

  await redis.stop();
  await pastL1();
  const down = await apiCall(stack, '/api/x', gatewayCookie);
  t.equal(down.status, 503, down.text);
  t.equal(down.json?.error, 'token_store_unavailable');
  t.ok(down.headers.get('retry-after'));
  t.equal((await fetch(stack.url + '/readyz')).status, 503);
  t.equal((await fetch(stack.url + '/healthz')).status, 200, 'alive throughout');
  const login = await fetch(stack.url + '/auth/login', { redirect: 'manual' });
  t.equal(login.status, 503, 'sign-in cannot start without the store');

  await redis.start();
  let ready = 0;
  for (let i = 0; i < 50 && ready !== 200; i++) {
    await new Promise((r) => setTimeout(r, 100));
    ready = (await fetch(stack.url + '/readyz')).status;
  }
  t.equal(ready, 200, 'ready again');
  await pastL1();
  // The restarted Redis is empty: the session is gone, which is a 401, not a 5xx.
  t.equal((await apiCall(stack, '/api/x', gatewayCookie)).status, 401);
  const again = await signIn(stack.url);
  t.equal((await apiCall(stack, '/api/x', again.gatewayCookie)).status, 200);
});
