import type KeyvRedis from '@keyv/redis';

/**
 * Tells every replica that an entry it may hold in its in-process cache is gone (a logout,
 * an ended session). While it is not live, callers must not trust their in-process copies.
 */
export interface InvalidationBus {
  /** True while this replica is subscribed and so hears every invalidation. */
  live(): boolean;
  publish(key: string): Promise<void>;
  /** `key` is what was published, or '*' after a gap in which messages may have been missed. */
  subscribe(handler: (key: string) => void): void;
  close(): Promise<void>;
}

const CHANNEL = 'bff-gateway:invalidate';

interface RedisClientLike {
  duplicate(): RedisClientLike;
  connect(): Promise<unknown>;
  subscribe(channel: string, listener: (message: string) => void): Promise<unknown>;
  publish(channel: string, message: string): Promise<unknown>;
  on(event: string, listener: (...args: unknown[]) => void): unknown;
  isReady: boolean;
  close?(): Promise<unknown>;
  quit?(): Promise<unknown>;
}

/** Redis pub/sub on a connection of its own; node-redis re-subscribes after a reconnect. */
export async function redisInvalidationBus(redis: KeyvRedis<unknown>): Promise<InvalidationBus> {
  const handlers: Array<(key: string) => void> = [];
  const main = (await redis.getClient()) as unknown as RedisClientLike;
  const sub = main.duplicate();
  let listening = false;
  let subscribed = false;
  const emit = (key: string) => {
    for (const h of handlers) h(key);
  };
  const listen = async () => {
    if (listening) return;
    try {
      await sub.subscribe(CHANNEL, (message) => emit(message));
      listening = true;
      subscribed = true;
    } catch {
      // Not connected yet: the next 'ready' tries again.
    }
  };
  sub.on('error', () => undefined);
  sub.on('end', () => {
    subscribed = false;
  });
  sub.on('reconnecting', () => {
    subscribed = false;
  });
  sub.on('ready', () => {
    // Whatever was published while we were away is lost: forget every in-process copy.
    emit('*');
    if (listening) subscribed = true; // node-redis re-subscribes by itself after a reconnect
    else void listen();
  });
  // Never wait long: with Redis down at startup the bus simply starts not live.
  await Promise.race([sub.connect().then(listen, () => undefined), new Promise((r) => setTimeout(r, 2000).unref())]);
  return {
    live: () => subscribed && sub.isReady,
    async publish(key) {
      await main.publish(CHANNEL, key);
    },
    subscribe(handler) {
      handlers.push(handler);
    },
    async close() {
      subscribed = false;
      try {
        // destroy, not quit: a quit waits for a server that may be gone.
        (sub as unknown as { destroy(): void }).destroy();
      } catch {
        // already closed
      }
    },
  };
}
