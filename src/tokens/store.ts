import Keyv, { type KeyvStoreAdapter } from 'keyv';
import KeyvRedis from '@keyv/redis';
import { KeyvCacheableMemory } from '@cacheable/memory';

/** A typed failure of the store, so callers fail closed instead of reading "no token". */
export class StoreUnavailableError extends Error {
  override readonly name = 'StoreUnavailableError';
}

export const STORE_TIMEOUT_MS = 1500;

const COMPARE_AND_SET = `
local cur = redis.call('GET', KEYS[1])
local value = ''
if cur then
  local ok, decoded = pcall(cjson.decode, cur)
  if ok and type(decoded) == 'table' and type(decoded['value']) == 'string' then value = decoded['value'] else value = false end
end
if value == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0`;

/**
 * The one Keyv of the process. Account tokens, app tokens, sessions and login state live
 * in it under their own key prefixes (one Redis connection, not one per namespace).
 */
export interface Store {
  kv: Keyv;
  /** The Redis adapter when the store is Redis (locks, pub/sub), else undefined. */
  redis?: KeyvRedis<unknown>;
  get<T>(key: string): Promise<T | undefined>;
  set(key: string, value: unknown, ttlMs?: number): Promise<void>;
  delete(key: string): Promise<boolean>;
  /**
   * Writes `value` only if the key still holds `expected` (undefined: still absent). In Redis
   * one script does the comparison and the write, so a replica whose lease ran out can never
   * overwrite what another replica wrote meanwhile (a rotated refresh token, say).
   */
  compareAndSet(key: string, expected: string | undefined, value: string, ttlMs: number): Promise<boolean>;
  ping(timeoutMs: number): Promise<boolean>;
  /** Connects now rather than at the first request (commands fail fast while disconnected). */
  connect(timeoutMs: number): Promise<boolean>;
  close(): Promise<void>;
}

export function openStore(url: string): Store {
  let kv: Keyv;
  let redis: KeyvRedis<unknown> | undefined;
  if (url.startsWith('memory://')) {
    // Keyv's default Map forgets expired entries only when they are read again: abandoned
    // sessions would pile up until restart. This store sweeps them every minute.
    // Values are kept as they are, not as JSON text: every value here is a string (sealed),
    // a number or a string array never changed in place, and a JSON copy of each costs
    // ~400 bytes per entry and a parse per read.
    kv = new Keyv({
      store: new KeyvCacheableMemory({ checkInterval: 60_000, useClone: false }),
      throwOnErrors: true,
      useKeyPrefix: false,
      serialize: undefined,
      deserialize: undefined,
    });
  } else {
    redis = new KeyvRedis(
      {
        url,
        // Fail commands at once while disconnected rather than queueing them forever.
        disableOfflineQueue: true,
        socket: { connectTimeout: 2000, reconnectStrategy: (retries: number) => Math.min(100 * 2 ** retries, 2000) },
      },
      { throwOnConnectError: false, throwOnErrors: true, connectionTimeout: 2000 },
    );
    // @redis/client reconnects by itself; an unheard 'error' event would end the process.
    redis.on('error', () => undefined);
    kv = new Keyv({ store: redis as unknown as KeyvStoreAdapter, throwOnErrors: true, useKeyPrefix: false });
    kv.on('error', () => undefined);
  }
  // Only a remote store can hang; the in-process one needs no timer per call.
  const guard = <T>(p: Promise<T>): Promise<T> =>
    (redis ? withTimeout(p, STORE_TIMEOUT_MS) : p).catch((err: unknown) => {
      throw err instanceof StoreUnavailableError ? err : new StoreUnavailableError('token store unavailable', { cause: err });
    });
  return {
    kv,
    redis,
    get: <T>(key: string) => guard(kv.get(key) as Promise<T | undefined>),
    set: async (key, value, ttlMs) => {
      await guard(kv.set(key, value, ttlMs));
    },
    delete: (key) => guard(kv.delete(key)),
    async compareAndSet(key, expected, value, ttlMs) {
      if (!redis) {
        // One process owns the in-memory store, and the caller holds the key's local lock.
        if ((await kv.get(key)) !== expected) return false;
        await kv.set(key, value, ttlMs);
        return true;
      }
      const client = (await guard(redis.getClient())) as unknown as { eval(script: string, opts: { keys: string[]; arguments: string[] }): Promise<unknown> };
      // Keyv's Redis format: JSON {value, expires} under the adapter's key prefix.
      const raw = JSON.stringify({ value, expires: Date.now() + ttlMs });
      const done = await guard(client.eval(COMPARE_AND_SET, { keys: [redis.createKeyPrefix(key, redis.namespace)], arguments: [expected ?? '', raw, String(ttlMs)] }));
      return done === 1;
    },
    async connect(timeoutMs) {
      if (!redis) return true;
      return withTimeout(redis.getClient(), timeoutMs).then(
        () => true,
        () => false,
      );
    },
    async ping(timeoutMs) {
      if (!redis) return true;
      try {
        const client = (await withTimeout(redis.getClient(), timeoutMs)) as unknown as { ping(): Promise<string> };
        return (await withTimeout(client.ping(), timeoutMs)) === 'PONG';
      } catch {
        return false;
      }
    },
    async close() {
      // A graceful quit waits for a server that may be gone: then drop the connection.
      await withTimeout(kv.disconnect(), 1000).catch(() => redis?.disconnect(true).catch(() => undefined));
    },
  };
}

export function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new StoreUnavailableError(`store did not answer in ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
