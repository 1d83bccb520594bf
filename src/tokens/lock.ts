import { randomBytes } from 'node:crypto';
import type KeyvRedis from '@keyv/redis';
import { StoreUnavailableError } from './store.js';
import { KeyedMutex } from '../util/keyed-mutex.js';

/** Serialises work per key: within a process always, across replicas when backed by Redis. */
export interface KeyedLock {
  run<T>(key: string, fn: () => Promise<T>): Promise<T>;
}

/** In-process: a promise chain per key. */
export class LocalLock extends KeyedMutex implements KeyedLock {}

const RELEASE = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end`;

interface RedisLike {
  set(key: string, value: string, opts: { NX: true; PX: number }): Promise<string | null>;
  eval(script: string, opts: { keys: string[]; arguments: string[] }): Promise<unknown>;
}

/**
 * Across replicas: SET NX PX with a lease longer than the slowest provider call (the
 * provider timeout bounds it), released only by its owner. Inside a process the local
 * chain queues waiters first, so one replica holds at most one Redis lease per key.
 */
export class RedisLock implements KeyedLock {
  readonly #local = new LocalLock();

  constructor(
    private readonly redis: KeyvRedis<unknown>,
    private readonly leaseMs: number,
    private readonly waitMs: number,
  ) {}

  run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    return this.#local.run(key, async () => {
      const client = (await this.redis.getClient()) as unknown as RedisLike;
      const lockKey = `lock:${key}`;
      const owner = randomBytes(12).toString('base64url');
      const deadline = Date.now() + this.waitMs;
      let delay = 10;
      for (;;) {
        let got: string | null;
        try {
          got = await client.set(lockKey, owner, { NX: true, PX: this.leaseMs });
        } catch (err) {
          throw new StoreUnavailableError('lock store unavailable', { cause: err });
        }
        if (got === 'OK') break;
        if (Date.now() > deadline) throw new StoreUnavailableError(`lock ${key} not acquired in ${this.waitMs} ms`);
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 200);
      }
      try {
        return await fn();
      } finally {
        await client.eval(RELEASE, { keys: [lockKey], arguments: [owner] }).catch(() => undefined);
      }
    });
  }
}
