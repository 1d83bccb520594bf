import type { Sealer } from './sealed.js';
import type { Store } from './store.js';
import { L1_TTL_MS, ShortCache } from './short-cache.js';
import type { InvalidationBus } from './invalidation.js';

export interface CachedToken {
  accessToken: string;
  /** Epoch milliseconds. */
  expiresAt: number;
  /** Epoch milliseconds from which the token is refreshed ahead of its expiry. */
  refreshAt?: number;
}

/** Everything the gateway holds for one account, sealed as one entry. */
export interface AccountEntry {
  refreshToken?: string;
  /** Access tokens by route token key (scopes + resource). */
  tokens: Record<string, CachedToken>;
  /** Epoch milliseconds when the entry may be forgotten. */
  expiresAt: number;
}

const ACCOUNT = 'acct:';
const APP = 'app:';

/** Drops the entry's expired access tokens; returns how long the store should keep the entry. */
function pruned(entry: AccountEntry): number {
  const now = Date.now();
  for (const [k, t] of Object.entries(entry.tokens)) if (t.expiresAt <= now) delete entry.tokens[k];
  return Math.max(1000, entry.expiresAt - now);
}

/** The per-account token cache: sealed entries in the store, a miss for anything unreadable. */
export class TokenCache {
  readonly #l1 = new ShortCache<AccountEntry>(L1_TTL_MS);
  readonly #appL1 = new ShortCache<CachedToken>(L1_TTL_MS);

  constructor(
    private readonly store: Store,
    private readonly sealer: Sealer,
    private readonly bus?: InvalidationBus,
  ) {
    bus?.subscribe((key) => {
      if (key === '*') {
        this.#l1.clear();
        this.#appL1.clear();
      } else if (key.startsWith(ACCOUNT)) this.#l1.delete(key.slice(ACCOUNT.length));
    });
  }

  /**
   * The account's entry. `fromStore` skips the in-process copy: a refresh must start from the
   * refresh token the store holds now, never from one another replica may have spent.
   * Callers must not mutate what they get without writing it back.
   */
  async getAccount(accountKey: string, fromStore = false): Promise<AccountEntry | undefined> {
    return this.#readThrough(this.#l1, accountKey, ACCOUNT + accountKey, fromStore);
  }

  /** The in-process copy of the account's entry, if there is one; never reads the store. */
  peekAccount(accountKey: string): AccountEntry | undefined {
    return this.#l1.get(accountKey);
  }

  async setAccount(accountKey: string, entry: AccountEntry): Promise<void> {
    const ttlMs = pruned(entry);
    this.#l1.delete(accountKey);
    // Not copied in-process here: copies are for accounts being read (10,000 sign-ins in a
    // burst would otherwise all be held twice until their copies time out).
    await this.#write(ACCOUNT + accountKey, entry, ttlMs);
  }

  /** The entry as the store holds it now, with its sealed form for a later compareAndSet. */
  async readAccount(accountKey: string): Promise<{ entry?: AccountEntry; sealed?: string }> {
    const key = ACCOUNT + accountKey;
    const sealed = await this.store.get<string>(key);
    const text = this.sealer.open(sealed, key);
    let entry: AccountEntry | undefined;
    try {
      entry = text === undefined ? undefined : (JSON.parse(text) as AccountEntry);
    } catch {
      entry = undefined;
    }
    return { entry, sealed };
  }

  /** Writes the entry only if the store still holds `expectedSealed`; false when someone wrote first. */
  async replaceAccount(accountKey: string, entry: AccountEntry, expectedSealed: string | undefined): Promise<boolean> {
    const key = ACCOUNT + accountKey;
    const ttlMs = pruned(entry);
    this.#l1.delete(accountKey);
    return this.store.compareAndSet(key, expectedSealed, this.sealer.seal(JSON.stringify(entry), key), ttlMs);
  }

  async deleteAccount(accountKey: string): Promise<void> {
    this.#l1.delete(accountKey);
    await this.store.delete(ACCOUNT + accountKey);
    // Other replicas drop their copy now rather than when it times out.
    await this.bus?.publish(ACCOUNT + accountKey).catch(() => undefined);
  }

  /** The app token for these scopes; `fromStore` skips the in-process copy (under the lock). */
  async getApp(tokenKey: string, fromStore = false): Promise<CachedToken | undefined> {
    return this.#readThrough(this.#appL1, tokenKey, APP + tokenKey, fromStore);
  }

  /** The in-process copy of an app token, if there is one; never reads the store. */
  peekApp(tokenKey: string): CachedToken | undefined {
    return this.#appL1.get(tokenKey);
  }

  async setApp(tokenKey: string, token: CachedToken): Promise<void> {
    this.#appL1.delete(tokenKey);
    await this.#write(APP + tokenKey, token, Math.max(1000, token.expiresAt - Date.now()));
  }

  /** The in-process copy unless `fromStore`; else the store's value, which the copy then follows. */
  async #readThrough<T>(l1: ShortCache<T>, id: string, key: string, fromStore: boolean): Promise<T | undefined> {
    if (!fromStore) {
      const hit = l1.get(id);
      if (hit) return hit;
    }
    const value = await this.#read<T>(key);
    if (value) l1.set(id, value);
    else l1.delete(id);
    return value;
  }

  async #read<T>(key: string): Promise<T | undefined> {
    const text = this.sealer.open(await this.store.get<string>(key), key);
    if (text === undefined) return undefined;
    try {
      return JSON.parse(text) as T;
    } catch {
      return undefined;
    }
  }

  async #write(key: string, value: unknown, ttlMs: number): Promise<void> {
    await this.store.set(key, this.sealer.seal(JSON.stringify(value), key), ttlMs);
  }
}
