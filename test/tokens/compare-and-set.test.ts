import t from 'tap';
import { openStore } from '../../src/tokens/store.js';
import { SHARED_REDIS_URL } from '../helpers/redis.js';
import { signIn } from '../helpers/browserless.js';
import { apiCall, startStack } from '../helpers/stack.js';
import { accountKeyOf } from '../../src/identity/oidc.js';

for (const url of ['memory://', SHARED_REDIS_URL]) {
  t.test(`compareAndSet on ${url.split(':')[0]} writes only over the value it expects`, async (t) => {
    const store = openStore(url);
    t.teardown(() => store.close());
    const key = `cas-test:${Date.now()}:${Math.random()}`;
    t.teardown(() => store.delete(key));
    t.equal(await store.compareAndSet(key, undefined, 'one', 60_000), true, 'absent as expected: written');
    t.equal(await store.get(key), 'one', 'readable through Keyv');
    t.equal(await store.compareAndSet(key, undefined, 'two', 60_000), false, 'no longer absent: refused');
    t.equal(await store.compareAndSet(key, 'stale', 'two', 60_000), false, 'another value: refused');
    t.equal(await store.get(key), 'one');
    t.equal(await store.compareAndSet(key, 'one', 'two', 60_000), true, 'the expected value: replaced');
    t.equal(await store.get(key), 'two');
  });
}

t.test('a refresh whose entry another replica rewrote meanwhile keeps that replica\'s refresh token and still serves the request', async (t) => {
  const stack = await startStack({ env: { CACHE_URL: SHARED_REDIS_URL } });
  t.teardown(() => stack.close());
  const { gatewayCookie } = await signIn(stack.url);
  const accountKey = accountKeyOf(stack.provider.issuer, 'alice');
  const { tokens, identity } = stack.gateway.deps;
  const cache = (tokens as unknown as { cache: import('../../src/tokens/cache.js').TokenCache }).cache;

  // Another writer lands between this replica's read and its write-back (its lease ran out).
  const original = identity.refresh.bind(identity);
  identity.refresh = async (...args) => {
    const grant = await original(...args);
    const { entry } = await cache.readAccount(accountKey);
    await cache.setAccount(accountKey, { ...entry!, refreshToken: 'written-by-the-other-replica' });
    return grant;
  };
  t.teardown(() => {
    identity.refresh = original;
  });

  const res = await apiCall(stack, '/api/x', gatewayCookie);
  t.equal(res.status, 200, 'the request is served with the token just granted');
  t.notOk(stack.api.received.at(-1)!.verifyError);
  t.equal(await tokens.refreshTokenOf(accountKey), 'written-by-the-other-replica', 'the other writer\'s entry was not overwritten');
  t.match(stack.logs.text, /changed during a refresh/);
});
