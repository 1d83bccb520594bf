import t from 'tap';
import type { TokenCacheContext } from '@azure/msal-node';
import { KeyedMutex, MemoryPartitionStore, PartitionCachePlugin, assertSinglePartition, cachedResourceOf, homeAccountIdsOf, mergeSignIn } from '../../src/identity/entra-cache.js';

const ENV = 'login.example';

function account(home: string) {
  return { [`${home}-${ENV}-`]: { home_account_id: home, environment: ENV, realm: '', local_account_id: home, username: home, authority_type: 'Generic' } };
}
function at(home: string, target: string, secret: string): Record<string, Record<string, string>> {
  return { [`${home}-${ENV}-accesstoken-app--${target}-`]: { home_account_id: home, environment: ENV, credential_type: 'AccessToken', client_id: 'app', secret, realm: '', target } };
}
function rt(home: string, secret: string) {
  return { [`${home}-${ENV}-refreshtoken-app---`]: { home_account_id: home, environment: ENV, credential_type: 'RefreshToken', client_id: 'app', secret } };
}
function idt(home: string, secret: string) {
  return { [`${home}-${ENV}-idtoken-app---`]: { home_account_id: home, environment: ENV, credential_type: 'IdToken', client_id: 'app', secret, realm: '' } };
}
function cache(parts: { Account?: object; AccessToken?: object; RefreshToken?: object; IdToken?: object }): string {
  return JSON.stringify({ Account: {}, IdToken: {}, AccessToken: {}, RefreshToken: {}, AppMetadata: {}, ...parts });
}

/** What MSAL hands the plugin: a cache it can serialize and deserialize. */
class FakeContext {
  deserialized: string[] = [];
  constructor(
    public content: string,
    readonly cacheHasChanged: boolean,
  ) {}
  get tokenCache() {
    return {
      serialize: () => this.content,
      deserialize: (s: string) => {
        this.deserialized.push(s);
      },
    };
  }
  asContext(): TokenCacheContext {
    return this as unknown as TokenCacheContext;
  }
}

class CountingStore extends MemoryPartitionStore {
  loads = 0;
  saves = 0;
  override async load(key: string) {
    this.loads++;
    return super.load(key);
  }
  override async save(key: string, serialized: string) {
    this.saves++;
    return super.save(key, serialized);
  }
}

t.test('the home account ids of a serialized cache are read from accounts and tokens alike', async (t) => {
  t.same(homeAccountIdsOf(cache({ Account: account('a'), AccessToken: at('a', 'x', 's') })), ['a']);
  t.same(homeAccountIdsOf(cache({ Account: account('a'), RefreshToken: rt('b', 'r') })).sort(), ['a', 'b']);
  t.throws(() => assertSinglePartition(cache({ Account: account('a'), RefreshToken: rt('b', 'r') }), 'a'), /another account/);
  t.doesNotThrow(() => assertSinglePartition(cache({ AccessToken: at('', 'x', 's') }), ''));
});

t.test("a sign-in folds into the account's partition: new refresh and ID tokens, overlapping access tokens replaced, others kept", async (t) => {
  const existing = cache({ Account: account('a'), AccessToken: { ...at('a', 'api.read', 'old-api'), ...at('a', 'other.read', 'old-other') }, RefreshToken: rt('a', 'old-rt'), IdToken: idt('a', 'old-id') });
  const fresh = cache({ Account: account('a'), AccessToken: at('a', 'openid profile api.read', 'new-api'), RefreshToken: rt('a', 'new-rt'), IdToken: idt('a', 'new-id') });
  const merged = JSON.parse(mergeSignIn(existing, fresh)) as Record<string, Record<string, { secret?: string }>>;
  const secrets = (section: string) => Object.values(merged[section] ?? {}).map((e) => e.secret).sort();
  t.same(secrets('AccessToken'), ['new-api', 'old-other']);
  t.same(secrets('RefreshToken'), ['new-rt']);
  t.same(secrets('IdToken'), ['new-id']);
  t.equal(Object.keys(merged.Account!).length, 1);
  t.same(JSON.parse(mergeSignIn(undefined, fresh)), JSON.parse(fresh), 'a first sign-in is stored as it is');
});

t.test('a bound plugin loads its partition once per operation and writes it back only when MSAL changed it', async (t) => {
  const store = new CountingStore();
  const content = cache({ Account: account('a'), RefreshToken: rt('a', 'r') });
  await store.save('acct:a', content);
  store.saves = 0;
  const plugin = new PartitionCachePlugin(store, { kind: 'account', homeAccountId: 'a' }, 60_000);
  const read = new FakeContext(content, false);
  await plugin.beforeCacheAccess(read.asContext());
  await plugin.afterCacheAccess(read.asContext());
  await plugin.beforeCacheAccess(read.asContext());
  t.same(read.deserialized, [content, content], 'each access sees the partition');
  t.equal(store.loads, 1, 'read from the store once');
  t.equal(store.saves, 0, 'nothing written without a change');
  const changed = cache({ Account: account('a'), RefreshToken: rt('a', 'r2') });
  await plugin.afterCacheAccess(new FakeContext(changed, true).asContext());
  t.equal(store.saves, 1);
  t.equal(await store.load('acct:a'), changed);
  const next = new FakeContext('', false);
  await plugin.beforeCacheAccess(next.asContext());
  t.same(next.deserialized, [changed], 'the next access of the operation sees what it wrote');
});

t.test("a bound plugin refuses to write another account's tokens into a partition", async (t) => {
  const store = new CountingStore();
  const plugin = new PartitionCachePlugin(store, { kind: 'account', homeAccountId: 'a' }, 60_000);
  await plugin.beforeCacheAccess(new FakeContext('', false).asContext());
  await t.rejects(plugin.afterCacheAccess(new FakeContext(cache({ Account: account('a'), RefreshToken: rt('b', 'rb') }), true).asContext()), /another account/);
  t.equal(store.saves, 0);
  const app = new PartitionCachePlugin(store, { kind: 'app' }, 60_000);
  await t.rejects(app.afterCacheAccess(new FakeContext(cache({ RefreshToken: rt('a', 'r') }), true).asContext()), /another account/);
  await app.afterCacheAccess(new FakeContext(cache({ AccessToken: at('', 'api.write', 'app-token') }), true).asContext());
  t.ok(await store.load('app'), 'app tokens go to the app partition');
  const withResource = new PartitionCachePlugin(store, { kind: 'app', resource: 'https://r.example' }, 60_000);
  t.equal(withResource.partition, 'app:https://r.example', 'app tokens for a resource indicator have a partition of their own');
});

t.test("a sign-in plugin starts empty, admits the ID token, then merges into the account's partition", async (t) => {
  const store = new CountingStore();
  await store.save('acct:a', cache({ Account: account('a'), AccessToken: at('a', 'other.read', 'kept'), RefreshToken: rt('a', 'old') }));
  const admitted: string[] = [];
  const plugin = new PartitionCachePlugin(store, { kind: 'sign-in' }, 60_000, { mutex: new KeyedMutex(), admitSignIn: async (idToken) => void admitted.push(idToken) });
  const before = new FakeContext('', false);
  await plugin.beforeCacheAccess(before.asContext());
  t.same(before.deserialized, [], 'nothing is loaded before the account is known');
  t.equal(plugin.partition, undefined);
  await plugin.afterCacheAccess(new FakeContext(cache({ Account: account('a'), IdToken: idt('a', 'the-id-token'), RefreshToken: rt('a', 'new') }), true).asContext());
  t.same(admitted, ['the-id-token']);
  t.equal(plugin.partition, 'acct:a');
  const stored = JSON.parse((await store.load('acct:a'))!) as Record<string, Record<string, { secret: string }>>;
  t.same(Object.values(stored.RefreshToken!).map((e) => e.secret), ['new']);
  t.same(Object.values(stored.AccessToken!).map((e) => e.secret), ['kept']);
});

t.test('a sign-in whose ID token is not admitted stores nothing', async (t) => {
  const store = new CountingStore();
  const plugin = new PartitionCachePlugin(store, { kind: 'sign-in' }, 60_000, {
    admitSignIn: async () => {
      throw new Error('bad signature');
    },
  });
  await t.rejects(plugin.afterCacheAccess(new FakeContext(cache({ Account: account('a'), IdToken: idt('a', 'forged'), RefreshToken: rt('a', 'r') }), true).asContext()), /bad signature/);
  t.equal(store.saves, 0);
  const two = new PartitionCachePlugin(store, { kind: 'sign-in' }, 60_000);
  await t.rejects(two.afterCacheAccess(new FakeContext(cache({ Account: { ...account('a'), ...account('b') } }), true).asContext()), /exactly one account/);
});

t.test('the keyed mutex runs work on one key one at a time and on different keys side by side', async (t) => {
  const mutex = new KeyedMutex();
  const log: string[] = [];
  const step = (name: string, ms: number) => async () => {
    log.push(`${name}:start`);
    await new Promise((r) => setTimeout(r, ms));
    log.push(`${name}:end`);
    return name;
  };
  const results = await Promise.all([mutex.run('a', step('a1', 30)), mutex.run('a', step('a2', 5)), mutex.run('b', step('b1', 5))]);
  t.same(results, ['a1', 'a2', 'b1']);
  t.ok(log.indexOf('a1:end') < log.indexOf('a2:start'), 'a2 waited for a1');
  t.ok(log.indexOf('b1:end') < log.indexOf('a1:end'), 'b1 did not wait for a1');
  await t.rejects(mutex.run('a', async () => Promise.reject(new Error('boom'))), /boom/);
  t.equal(await mutex.run('a', async () => 'after a failure'), 'after a failure');
  await new Promise((r) => setImmediate(r));
  t.equal(mutex.size, 0, 'no key is held once its work is done');
});

t.test('the resource a cached access token was acquired for is found by the token value', async (t) => {
  const withResource = at('a', 'api.read', 'tok-1');
  Object.values(withResource)[0]!.resource = 'https://api.example';
  const serialized = cache({ AccessToken: { ...withResource, ...at('a', 'other.read', 'tok-2') } });
  t.equal(cachedResourceOf(serialized, 'tok-1'), 'https://api.example');
  t.equal(cachedResourceOf(serialized, 'tok-2'), undefined);
  t.equal(cachedResourceOf(serialized, 'unknown'), undefined);
  t.equal(cachedResourceOf(undefined, 'tok-1'), undefined);
});
