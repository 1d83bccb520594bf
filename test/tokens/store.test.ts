import t from 'tap';
import { openStore } from '../../src/tokens/store.js';
import { SHARED_REDIS_URL } from '../helpers/redis.js';

for (const url of ['memory://', SHARED_REDIS_URL]) {
  const kind = url.split(':')[0];

  t.test(`the ${kind} store gives back strings, numbers and string lists as they were set`, async (t) => {
    const store = openStore(url);
    t.teardown(() => store.close());
    const prefix = `store-test:${Date.now()}:${Math.random()}:`;
    const values: Record<string, unknown> = { text: 'v1.abc.def', empty: '', number: 1, list: ['a', 'b'], emptyList: [] };
    for (const [k, v] of Object.entries(values)) await store.set(prefix + k, v, 60_000);
    t.teardown(async () => {
      for (const k of Object.keys(values)) await store.delete(prefix + k);
    });
    for (const [k, v] of Object.entries(values)) t.same(await store.get(prefix + k), v, k);
    t.equal(await store.get(prefix + 'absent'), undefined);
  });

  t.test(`the ${kind} store forgets an entry once its time to live is over`, async (t) => {
    const store = openStore(url);
    t.teardown(() => store.close());
    const key = `store-test:${Date.now()}:${Math.random()}`;
    await store.set(key, 'short-lived', 200);
    t.equal(await store.get(key), 'short-lived');
    await new Promise((r) => setTimeout(r, 400));
    t.equal(await store.get(key), undefined);
  });
}
